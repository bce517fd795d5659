/*
 * Copyright (C) loyalty-edge authors
 *
 * Normaliser golden tests: every case in t/data/<sender>/ is a request
 * (<case>.req: headers, settings and the body file) and the exact
 * envelopes it must give (<case>.expect).  See t/data/README.md.
 *
 * LOYALTY_GOLDEN_UPDATE=1 rewrites the .expect files from what the
 * normalisers give now; review the diff before committing it.
 */


#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_case.h"


#define GOLDEN_DIR   "t/data"


typedef struct {
    char     *p;
    size_t    len;
    size_t    size;
} text_t;


static void text_add(text_t *t, const char *s, size_t len);
static void text_field(text_t *t, const char *name, const loyalty_str_t *v);
static void run_case(const char *sender, const char *dir, const char *name);
static void run_sender(const char *sender);
static int compare_names(const void *a, const void *b);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };
static int              update;
static int              cases;


static void
text_add(text_t *t, const char *s, size_t len)
{
    if (t->len + len + 1 > t->size) {
        t->size = (t->len + len + 1) * 2;
        t->p = realloc(t->p, t->size);
        if (t->p == NULL) {
            abort();
        }
    }

    memcpy(t->p + t->len, s, len);
    t->len += len;
    t->p[t->len] = '\0';
}


static void
text_field(text_t *t, const char *name, const loyalty_str_t *v)
{
    if (v->len == 0) {
        return;
    }

    text_add(t, name, strlen(name));
    text_add(t, " ", 1);
    text_add(t, (const char *) v->data, v->len);
    text_add(t, "\n", 1);
}


static void
run_case(const char *sender, const char *dir, const char *name)
{
    int                rc;
    char               path[512], line[1024], *expect;
    size_t             i, expect_len;
    FILE              *f;
    text_t             got;
    lt_case_t          c;
    loyalty_err_t      err;
    loyalty_batch_t    batch;
    loyalty_event_t   *ev;
    loyalty_request_t  req;

    memset(&got, 0, sizeof(text_t));
    memset(&batch, 0, sizeof(loyalty_batch_t));

    if (lt_case_load(&c, sender, dir, name) != 0) {
        ok(0, "%s/%s: %s", sender, name, c.error);
        lt_case_free(&c);
        return;
    }

    lt_case_request(&c, &req);

    err.code = 0;
    err.msg[0] = '\0';

    rc = c.conf.provider->normalize(&c.conf, &req, &alloc, &batch, &err);

    if (rc == LOYALTY_DECLINED) {
        snprintf(line, sizeof(line), "declined %s: %s\n",
                 err.code == LOYALTY_ERR_JSON ? "json"
                 : err.code == LOYALTY_ERR_SIGNATURE ? "signature" : "input",
                 err.msg);
        text_add(&got, line, strlen(line));

    } else if (rc != LOYALTY_OK) {
        snprintf(line, sizeof(line), "error %s\n", err.msg);
        text_add(&got, line, strlen(line));

    } else if (batch.nevents == 0) {
        text_add(&got, "none\n", 5);
    }

    for (i = 0; rc == LOYALTY_OK && i < batch.nevents; i++) {
        ev = &batch.events[i];

        if (i) {
            text_add(&got, "--\n", 3);
        }

        ok(ev->received == (int64_t) c.now * 1000 + 123,
           "%s: event %zu received is the request's", name, i);

        text_field(&got, "id", &ev->id);
        text_field(&got, "alt_id", &ev->alt_id);
        text_field(&got, "src", &ev->src);
        text_field(&got, "type", &ev->type);
        text_field(&got, "topic", &ev->topic);
        text_field(&got, "occurred", &ev->occurred);
        text_field(&got, "email", &ev->email);
        text_field(&got, "phone", &ev->phone);
        text_field(&got, "ext_id", &ev->ext_id);
        text_field(&got, "store_cid", &ev->store_cid);
        text_field(&got, "data", &ev->data);
    }

    snprintf(path, sizeof(path), "%s/%s.expect", dir, name);

    if (update) {
        f = fopen(path, "w");
        if (f == NULL || fwrite(got.p, 1, got.len, f) != got.len) {
            ok(0, "%s: write %s", name, path);
        }
        if (f != NULL) {
            fclose(f);
        }
    }

    expect = lt_read_file(path, &expect_len);

    if (expect == NULL) {
        ok(0, "%s/%s: no %s (LOYALTY_GOLDEN_UPDATE=1 writes it)",
           sender, name, path);

    } else {
        if (!ok(got.len == expect_len
                && memcmp(got.p, expect, expect_len) == 0,
                "%s/%s", sender, name))
        {
            diag("got:\n%s", got.p ? got.p : "");
            diag("expected (%s):\n%.*s", path, (int) expect_len, expect);
        }

        free(expect);
    }

    cases++;

    free(got.p);
    lt_arena_free(&arena);
    lt_case_free(&c);
}


static int
compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *) a, *(char *const *) b);
}


static void
run_sender(const char *sender)
{
    char            dir[256], *names[512];
    size_t          i, n, len;
    DIR            *d;
    struct dirent  *de;

    snprintf(dir, sizeof(dir), "%s/%s", GOLDEN_DIR, sender);

    d = opendir(dir);
    if (d == NULL) {
        return;
    }

    n = 0;

    while ((de = readdir(d)) != NULL && n < 512) {
        len = strlen(de->d_name);

        if (len > 4 && strcmp(de->d_name + len - 4, ".req") == 0) {
            names[n++] = strndup(de->d_name, len - 4);
        }
    }

    closedir(d);

    qsort(names, n, sizeof(char *), compare_names);

    for (i = 0; i < n; i++) {
        run_case(sender, dir, names[i]);
        free(names[i]);
    }
}


int
main(void)
{
    size_t       i;
    const char  *env;

    static const char  *senders[] = {
        "standard", "generic", "shopify", "bigcommerce", "loyaltylion",
        "smile", "yotpo", "voyado", "stripe", "salesforce", NULL
    };

    env = getenv("LOYALTY_GOLDEN_UPDATE");
    update = (env != NULL && strcmp(env, "1") == 0);

    for (i = 0; senders[i] != NULL; i++) {
        ok(loyalty_provider_find((const u_char *) senders[i],
                                 strlen(senders[i])) != NULL,
           "sender %s is registered", senders[i]);
        run_sender(senders[i]);
    }

    diag("%d golden cases", cases);

    return done_testing();
}
