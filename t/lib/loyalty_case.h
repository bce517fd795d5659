/*
 * Copyright (C) loyalty-edge authors
 *
 * The sender cases of t/data (see t/data/README.md), read by the golden
 * tests and by the core benchmark: a case's settings and headers, and
 * its body in an exact-size heap buffer (so ASan sees any over-read).
 */

#ifndef _LOYALTY_CASE_H_INCLUDED_
#define _LOYALTY_CASE_H_INCLUDED_


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


#define LT_CASE_NOW  1732442400            /* 2024-11-24T10:00:00Z */


typedef struct {
    loyalty_provider_conf_t   conf;
    lt_headers_t              headers;
    char                      name[LT_MAX_HEADERS][128];
    char                      value[LT_MAX_HEADERS][2048];
    char                      signature_header[128];
    char                      body_name[256];
    char                     *body;
    size_t                    body_len;
    time_t                    now;
    char                      error[1024];
} lt_case_t;


static inline char *
lt_read_file(const char *path, size_t *len)
{
    long   n;
    char  *p;
    FILE  *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fclose(f);
        return NULL;
    }

    p = malloc(n ? (size_t) n : 1);
    if (p == NULL || fread(p, 1, n, f) != (size_t) n) {
        free(p);
        fclose(f);
        return NULL;
    }

    fclose(f);
    *len = n;

    return p;
}


/* sets a header (a signature, say), replacing one of the same name */

static inline int
lt_case_header(lt_case_t *c, const char *name, const char *value)
{
    size_t  n;

    for (n = 0; n < c->headers.n; n++) {
        if (strcasecmp(c->name[n], name) == 0) {
            snprintf(c->value[n], sizeof(c->value[n]), "%s", value);
            c->headers.value[n].len = strlen(c->value[n]);
            return 0;
        }
    }

    n = c->headers.n;

    if (n == LT_MAX_HEADERS) {
        return -1;
    }

    snprintf(c->name[n], sizeof(c->name[n]), "%s", name);
    snprintf(c->value[n], sizeof(c->value[n]), "%s", value);
    lt_header_set(&c->headers, c->name[n], (const u_char *) c->value[n],
                  strlen(c->value[n]));

    return 0;
}


/*
 * Reads dir/name.req and its body for sender; 0, or -1 with c->error
 * set.  lt_case_free() releases it either way.
 */

static inline int
lt_case_load(lt_case_t *c, const char *sender, const char *dir,
    const char *name)
{
    char                       path[800], line[4096], *v, *p;
    FILE                      *f;
    loyalty_err_t              err;
    loyalty_str_t              s;
    const loyalty_provider_t  *provider;

    memset(c, 0, sizeof(lt_case_t));

    loyalty_provider_conf_init(&c->conf);

    provider = loyalty_provider_find((const u_char *) sender,
                                     strlen(sender));
    if (provider == NULL) {
        snprintf(c->error, sizeof(c->error), "unknown sender %s", sender);
        return -1;
    }

    loyalty_provider_conf_set(&c->conf, provider);

    c->now = LT_CASE_NOW;
    snprintf(c->body_name, sizeof(c->body_name), "%s.json", name);

    snprintf(path, sizeof(path), "%s/%s.req", dir, name);
    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(c->error, sizeof(c->error), "open %.800s: %.100s", path,
                 strerror(errno));
        return -1;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';

        if (line[0] == '#' || line[0] == '\0') {
            continue;
        }

        v = strchr(line, ' ');
        if (v == NULL) {
            snprintf(c->error, sizeof(c->error), "%.500s: bad line \"%.100s\"",
                     path, line);
            break;
        }

        *v++ = '\0';
        s = lt_str(v);
        err.msg[0] = '\0';

        if (strcmp(line, "body") == 0) {
            snprintf(c->body_name, sizeof(c->body_name), "%.255s", v);

        } else if (strcmp(line, "now") == 0) {
            c->now = (time_t) strtoll(v, NULL, 10);

        } else if (strcmp(line, "country") == 0) {
            if (loyalty_provider_set_country(&c->conf, &s, &err)
                != LOYALTY_OK)
            {
                snprintf(c->error, sizeof(c->error), "%.500s: %.200s", path,
                         err.msg);
                break;
            }

        } else if (strcmp(line, "org") == 0) {
            if (loyalty_provider_add_org(&c->conf, &s, &err) != LOYALTY_OK) {
                snprintf(c->error, sizeof(c->error), "%.500s: %.200s", path,
                         err.msg);
                break;
            }

        } else if (strcmp(line, "signature_header") == 0) {
            snprintf(c->signature_header, sizeof(c->signature_header), "%.127s",
                     v);
            c->conf.signature_header = c->signature_header;

        } else if (strcmp(line, "header") == 0) {
            p = strchr(v, ':');
            if (p == NULL) {
                snprintf(c->error, sizeof(c->error), "%.500s: bad header", path);
                break;
            }

            *p++ = '\0';
            while (*p == ' ') {
                p++;
            }

            if (lt_case_header(c, v, p) != 0) {
                snprintf(c->error, sizeof(c->error), "%.500s: too many headers",
                         path);
                break;
            }

        } else {
            snprintf(c->error, sizeof(c->error), "%.500s: unknown setting "
                     "\"%.100s\"", path, line);
            break;
        }
    }

    fclose(f);

    if (c->error[0]) {
        return -1;
    }

    snprintf(path, sizeof(path), "%s/%s", dir, c->body_name);

    c->body = lt_read_file(path, &c->body_len);
    if (c->body == NULL) {
        snprintf(c->error, sizeof(c->error), "read %.900s", path);
        return -1;
    }

    return 0;
}


static inline void
lt_case_request(lt_case_t *c, loyalty_request_t *req)
{
    lt_request(req, &c->headers, (const u_char *) c->body, c->body_len,
               c->now, (int64_t) c->now * 1000 + 123);
}


static inline void
lt_case_free(lt_case_t *c)
{
    free(c->body);
    c->body = NULL;
    loyalty_provider_conf_free(&c->conf);
}


#endif /* _LOYALTY_CASE_H_INCLUDED_ */
