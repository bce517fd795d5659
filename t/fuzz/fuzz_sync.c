/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target for what the worker reads back from Salesforce:
 * arbitrary bytes as a Bulk API CSV result file (every record read,
 * written again and read back to the same fields), as a Collections
 * answer (results for 1 to 5 records), as single answers of every
 * status class, as a Sforce-Limit-Info header, and as Bulk API job
 * info, an sf__Error cell and a /limits answer.
 *
 *   make build/fuzz/fuzz_sync
 *   build/fuzz/fuzz_sync -max_total_time=60 /tmp/synccorpus t/fuzz/seeds
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loyalty_csv.h"
#include "loyalty_sf_api.h"
#include "loyalty_sf_bulk.h"
#include "loyalty_test.h"


#define check(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__,       \
                #cond);                                                      \
        abort();                                                             \
    }

#define MAXF  64


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static void
fuzz_csv(const loyalty_str_t *in)
{
    int                   rc;
    size_t                n, m, i;
    loyalty_err_t         err;
    loyalty_str_t         f[MAXF], g[MAXF], text;
    loyalty_csv_t         w;
    loyalty_csv_reader_t  r, back;

    loyalty_csv_reader_init(&r, in, &alloc);

    while ((rc = loyalty_csv_next(&r, f, MAXF, &n, &err)) == LOYALTY_OK) {
        check(n >= 1 && n <= MAXF);

        loyalty_csv_init(&w, &alloc, 16);
        for (i = 0; i < n; i++) {
            check(f[i].len == 0 || f[i].data != NULL);
            loyalty_csv_field(&w, &f[i]);
        }
        loyalty_csv_row_end(&w);
        check(loyalty_csv_finish(&w, &text) == LOYALTY_OK);

        loyalty_csv_reader_init(&back, &text, &alloc);
        check(loyalty_csv_next(&back, g, MAXF, &m, &err) == LOYALTY_OK);
        check(m == n);
        for (i = 0; i < n; i++) {
            check(g[i].len == f[i].len);
            check(f[i].len == 0 || memcmp(g[i].data, f[i].data, f[i].len)
                                   == 0);
        }
        check(loyalty_csv_next(&back, g, MAXF, &m, &err)
              == LOYALTY_DECLINED);
    }

    check(rc == LOYALTY_DECLINED || rc == LOYALTY_ERROR);
}


static void
check_result(const loyalty_sf_result_t *r)
{
    check(r->cls <= LOYALTY_SF_LIMIT);
    check(r->id.len == 0 || r->id.data != NULL);
    check(r->code.len == 0 || r->code.data != NULL);
    check(r->fields.len == 0 || r->fields.data != NULL);
    check(r->cls != LOYALTY_SF_SUCCESS || r->fields.len == 0
          || r->code.len > 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int     statuses[] = { 200, 201, 204, 300, 400, 401, 403,
                                        404, 500, 503 };
    size_t               n, i;
    loyalty_err_t        err;
    loyalty_str_t        in;
    loyalty_sf_result_t  res[5], one;
    loyalty_sf_usage_t   u;
    loyalty_sf_job_t     job;

    in.data = lt_arena_dup(&arena, (const char *) data, size);
    in.len = size;

    fuzz_csv(&in);

    n = size ? (size_t) (data[0] % 5) + 1 : 1;
    if (loyalty_sf_results_parse(&in, n, &alloc, res, &err) == LOYALTY_OK) {
        for (i = 0; i < n; i++) {
            check_result(&res[i]);
        }
    }

    for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        if (loyalty_sf_answer_parse(statuses[i], &in, &alloc, &one, &err)
            == LOYALTY_OK)
        {
            check_result(&one);
            check(statuses[i] < 500 || one.cls != LOYALTY_SF_PERMANENT);
        }
    }

    if (loyalty_sf_usage_parse(&in, &u) == LOYALTY_OK) {
        check(u.used >= 0 && u.limit >= 0);
    }

    if (loyalty_sf_job_parse(&in, &alloc, &job, &err) == LOYALTY_OK) {
        check(job.id.len > 0 && job.id.len <= 32 && job.id.data != NULL);
        check(job.state <= LOYALTY_SF_JOB_ABORTED);
    }

    loyalty_sf_bulk_error_parse(&in, &one);
    check_result(&one);
    check(one.code.len > 0);
    check(one.message.len <= in.len && one.fields.len <= in.len);

    if (loyalty_sf_limits_parse(&in, &alloc, &u, &err) == LOYALTY_OK) {
        check(u.limit > 0 && u.used >= 0 && u.used <= u.limit);
    }

    lt_arena_free(&arena);

    return 0;
}
