/*
 * Copyright (C) loyalty-edge authors
 *
 * Parser-only comparison for the choice of JSON library (issue 3): the
 * same ~2 KB body as t/bench/core.c through
 *
 *   - yajl 2 with callbacks that do nothing but count (yajl_parse +
 *     yajl_complete_parse, UTF-8 validated: yajl_dont_validate_strings
 *     off; numbers arrive as raw text through yajl_number);
 *   - yajl_tree_parse + yajl_tree_free (a tree, numbers kept as text);
 *   - json-c's tokener with the flags loyalty_json_parse() sets
 *     (JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8) + json_object_put.
 *
 * A handle (tokener) is allocated and freed per event, as per request.
 * Same method as core.c: warm-up, then batches, median and p10/p90 of
 * ns/event.  Every parse must succeed with the same callback count.
 *
 *   make bench-core-yajl
 *   build/bench/core-yajl [--batches=31] [--events=20000] [--warmup=2]
 *                         [--payload=t/bench/core-payloads/order-created.json]
 */


#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>
#include <yajl/yajl_version.h>


#define DEFAULT_PAYLOAD  "t/bench/core-payloads/order-created.json"


typedef int (*op_pt)(void);


static size_t          batches = 31;
static size_t          events = 20000;
static size_t          warmup = 2;
static unsigned long   failures;

static char           *body;        /* NUL-terminated for yajl_tree */
static size_t          body_len;
static unsigned long   count, expect_count;


/* no-op callbacks: count, accept */

static int cb_null(void *ctx) { (void) ctx; count++; return 1; }
static int cb_bool(void *ctx, int b) { (void) ctx; (void) b; count++;
    return 1; }
static int cb_number(void *ctx, const char *s, size_t l) { (void) ctx;
    (void) s; (void) l; count++; return 1; }
static int cb_string(void *ctx, const unsigned char *s, size_t l) {
    (void) ctx; (void) s; (void) l; count++; return 1; }
static int cb_start_map(void *ctx) { (void) ctx; count++; return 1; }
static int cb_map_key(void *ctx, const unsigned char *s, size_t l) {
    (void) ctx; (void) s; (void) l; count++; return 1; }
static int cb_end_map(void *ctx) { (void) ctx; count++; return 1; }
static int cb_start_array(void *ctx) { (void) ctx; count++; return 1; }
static int cb_end_array(void *ctx) { (void) ctx; count++; return 1; }


/* yajl_integer / yajl_double NULL: numbers come as text via yajl_number */
static const yajl_callbacks  callbacks = {
    cb_null, cb_bool, NULL, NULL, cb_number, cb_string, cb_start_map,
    cb_map_key, cb_end_map, cb_start_array, cb_end_array
};


static int
op_yajl(void)
{
    int           rc;
    yajl_handle   h;

    count = 0;

    h = yajl_alloc(&callbacks, NULL, NULL);
    if (h == NULL) {
        return 1;
    }

    /* explicit, though these are yajl's defaults */
    yajl_config(h, yajl_dont_validate_strings, 0);
    yajl_config(h, yajl_allow_comments, 0);
    yajl_config(h, yajl_allow_trailing_garbage, 0);
    yajl_config(h, yajl_allow_multiple_values, 0);

    rc = yajl_parse(h, (const unsigned char *) body, body_len)
             != yajl_status_ok
         || yajl_complete_parse(h) != yajl_status_ok;

    yajl_free(h);

    return rc || count != expect_count;
}


static int
op_yajl_tree(void)
{
    yajl_val  v;

    v = yajl_tree_parse(body, NULL, 0);
    if (v == NULL || !YAJL_IS_OBJECT(v)) {
        return 1;
    }

    yajl_tree_free(v);

    return 0;
}


static int
op_jsonc(void)
{
    int            rc;
    json_object   *obj;
    json_tokener  *tok;

    tok = json_tokener_new_ex(64);
    if (tok == NULL) {
        return 1;
    }

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT
                                | JSON_TOKENER_VALIDATE_UTF8);

    obj = json_tokener_parse_ex(tok, body, (int) body_len);

    rc = (obj == NULL
          || json_tokener_get_error(tok) != json_tokener_success);

    json_tokener_free(tok);
    json_object_put(obj);

    return rc;
}


static double
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x, y;

    x = *(const double *) a;
    y = *(const double *) b;

    return (x > y) - (x < y);
}


static void
measure(const char *name, op_pt op)
{
    size_t         b, i, total;
    double         t0, t1, *per;
    unsigned long  bad;

    per = calloc(batches, sizeof(double));
    if (per == NULL) {
        exit(2);
    }

    total = warmup + batches;
    bad = 0;

    for (b = 0; b < total; b++) {
        t0 = now_ns();

        for (i = 0; i < events; i++) {
            bad += (unsigned long) op();
        }

        t1 = now_ns();

        if (b >= warmup) {
            per[b - warmup] = (t1 - t0) / (double) events;
        }
    }

    if (bad) {
        fprintf(stderr, "core-yajl: %s: %lu failed parses\n", name, bad);
        failures += bad;
    }

    qsort(per, batches, sizeof(double), cmp_double);

    printf("| %-44s | %9.0f | %9.0f | %9.0f |\n", name,
           per[(batches - 1) / 2], per[(batches - 1) / 10],
           per[(batches - 1) - (batches - 1) / 10]);
    fflush(stdout);

    free(per);
}


int
main(int argc, char **argv)
{
    int          i;
    FILE        *f;
    size_t       n;
    const char  *payload;
    static char  buf[65536];

    payload = DEFAULT_PAYLOAD;

    for (i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--batches=", 10) == 0) {
            batches = strtoul(argv[i] + 10, NULL, 10);

        } else if (strncmp(argv[i], "--events=", 9) == 0) {
            events = strtoul(argv[i] + 9, NULL, 10);

        } else if (strncmp(argv[i], "--warmup=", 9) == 0) {
            warmup = strtoul(argv[i] + 9, NULL, 10);

        } else if (strncmp(argv[i], "--payload=", 10) == 0) {
            payload = argv[i] + 10;

        } else {
            fprintf(stderr, "usage: %s [--batches=31] [--events=20000] "
                    "[--warmup=2] [--payload=FILE]\n", argv[0]);
            return 2;
        }
    }

    if (batches < 1 || events < 1) {
        fprintf(stderr, "core-yajl: --batches and --events must be "
                "positive\n");
        return 2;
    }

    f = fopen(payload, "rb");
    if (f == NULL) {
        fprintf(stderr, "core-yajl: %s: %s (run from the repository root)\n",
                payload, strerror(errno));
        return 2;
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);

    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    body_len = n;
    body = malloc(n + 1);
    if (body == NULL) {
        return 2;
    }
    memcpy(body, buf, n);
    body[n] = '\0';

    /* the callback count of one good parse is the expected count */
    expect_count = (unsigned long) -1;
    (void) op_yajl();
    expect_count = count;

    if (op_yajl() != 0 || op_yajl_tree() != 0 || op_jsonc() != 0) {
        fprintf(stderr, "core-yajl: %s does not parse\n", payload);
        return 1;
    }

    printf("# loyalty-edge parser-only comparison\n# command:");
    for (i = 0; i < argc; i++) {
        printf(" %s", argv[i]);
    }
    printf("\n# yajl %d, json-c %s, gcc %s\n", yajl_version(),
           json_c_version(), __VERSION__);
    printf("# payload %s: %zu B, %lu yajl callbacks per parse; %zu warm-up "
           "+ %zu timed batches of %zu events\n\n", payload, body_len,
           expect_count, warmup, batches, events);

    printf("| %-44s | %9s | %9s | %9s |\n", "ns per parse of the body",
           "median", "p10", "p90");
    printf("|----------------------------------------------|----------:|"
           "----------:|----------:|\n");

    measure("yajl_parse + complete, no-op callbacks", op_yajl);
    measure("yajl_tree_parse + yajl_tree_free", op_yajl_tree);
    measure("json-c tokener (strict, UTF-8) + put", op_jsonc);

    if (failures) {
        fprintf(stderr, "core-yajl: FAILED\n");
        return 1;
    }

    return 0;
}
