/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty-worker backfill STORE: a full resync of a store to its
 * salesforce flows through Bulk API 2.0 (apis.md §11.6).
 *
 *   loyalty-worker -c FILE backfill STORE [--flow ID] [--file F.ndjson]
 *       [--errors FILE] [--chunk N]
 *
 * The source is the store's stream as retained (XRANGE of
 * loyalty:{S}:in) or an NDJSON file of envelopes (one JSON object per
 * line, the stream's fields; data as an object or a string).  Every
 * event is mapped with the flows that take it (the workers' own code:
 * loyalty_sf_key, loyalty_sf_envelope, loyalty_sf_map_apply), then
 * coalesced: per record (external id value) and field the value of the
 * newest event.  Records go in ingest jobs of at most --chunk (10,000)
 * records and 100 MB; failed rows are written to --errors with their
 * sf__Error, and the exit code is 1 when any record failed.
 *
 * A one-shot command: it blocks (libcurl easy, synchronous hiredis),
 * there is no event loop to hold up.  The token is the workers' (the
 * cache loyalty:sf:{<dest>}:token); without one, or on a 401, it asks
 * the token endpoint itself and stores the token for everybody.  The
 * daily budget guard stops it at backfill_reserve, before the realtime
 * flows stop at budget_reserve.  It does not read or write the delta
 * state.
 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "loyalty_worker_sf.h"
#include "loyalty_csv.h"
#include "loyalty_sf_bulk.h"
#include "loyalty_sf_jwt.h"


#define LOYALTY_BF_PAGE         1000
#define LOYALTY_BF_LINE_MAX     (16 * 1024 * 1024)


typedef struct {
    char                 *key;
    char                (*time)[25];      /* per map field */
    loyalty_sf_value_t   *val;
    u_char               *has;
    unsigned              done:1;         /* a result row was read */
} loyalty_bf_rec_t;


typedef struct {
    loyalty_flow_conf_t  *flow;
    loyalty_bf_rec_t    **recs;
    size_t                n;
    size_t                cap;
    size_t               *table;          /* index + 1, open addressing */
    size_t                tcap;
    loyalty_sf_pool_t     pool;
} loyalty_bf_flow_t;


typedef struct {
    loyalty_conf_t       *conf;
    redisContext         *redis;
    const char           *store;
    unsigned              store_index;
    loyalty_dest_conf_t  *dest;
    loyalty_bf_flow_t    *flows;
    unsigned              nflows;
    size_t                chunk;
    const char           *errors_path;
    char                  errors_name[300];
    FILE                 *errors;
    CURL                 *curl;
    char                  token[512];
    char                  instance_url[512];
    char                  key_token[160];
    char                  key_usage[160];
    int64_t               used;
    int64_t               limit;
    size_t                events;
    size_t                invalid;
    size_t                total;
    size_t                sent;
    size_t                written;
    size_t                failed;
    unsigned              jobs;
    unsigned              tty:1;
    uint64_t              start_ms;
    char                  limit_header[256];
} loyalty_bf_t;


typedef struct {
    char                 *data;
    size_t                len;
    size_t                size;
} loyalty_bf_buf_t;


static int loyalty_bf_read_stream(loyalty_bf_t *b);
static int loyalty_bf_read_file(loyalty_bf_t *b, const char *path);
static void loyalty_bf_event(loyalty_bf_t *b, loyalty_str_t *fv, size_t n,
    const char *where);
static loyalty_bf_rec_t *loyalty_bf_rec(loyalty_bf_flow_t *f,
    const char *key, int make);
static int loyalty_bf_run(loyalty_bf_t *b, loyalty_bf_flow_t *f,
    size_t from, size_t to);
static long loyalty_bf_call(loyalty_bf_t *b, const char *method,
    const char *path, const char *type, const char *body, size_t len,
    loyalty_bf_buf_t *out);
static long loyalty_bf_http(loyalty_bf_t *b, const char *method,
    const char *url, const char *type, const char *body, size_t len,
    loyalty_bf_buf_t *out);
static int loyalty_bf_token(loyalty_bf_t *b, int fresh);
static void loyalty_bf_budget(loyalty_bf_t *b);
static void loyalty_bf_results(loyalty_bf_t *b, loyalty_bf_flow_t *f,
    const loyalty_bf_buf_t *csv, int failed);
static void loyalty_bf_fail(loyalty_bf_t *b, loyalty_bf_flow_t *f,
    const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void loyalty_bf_progress(loyalty_bf_t *b, const char *what,
    int line);
static void loyalty_bf_sleep(unsigned ms);
static size_t loyalty_bf_hash(const char *key);
static size_t loyalty_bf_write(char *p, size_t size, size_t n, void *arg);
static size_t loyalty_bf_header(char *p, size_t size, size_t n, void *arg);


int
loyalty_backfill(redisContext *redis, loyalty_conf_t *conf, int argc,
    char **argv)
{
    int                  i, rc;
    char                *end;
    size_t               k, from;
    unsigned             j;
    const char          *file, *flow_id;
    loyalty_bf_t         b;
    redisReply          *r;
    loyalty_flow_conf_t *f;

    memset(&b, 0, sizeof(b));
    b.conf = conf;
    b.redis = redis;
    b.chunk = LOYALTY_SF_BULK_MAX;
    file = NULL;
    flow_id = NULL;

    if (argc < 2) {
        goto usage;
    }

    b.store = argv[1];

    for (i = 2; i < argc; i++) {
        if (i + 1 >= argc) {
            goto usage;
        }

        if (strcmp(argv[i], "--flow") == 0) {
            flow_id = argv[++i];

        } else if (strcmp(argv[i], "--file") == 0) {
            file = argv[++i];

        } else if (strcmp(argv[i], "--errors") == 0) {
            b.errors_path = argv[++i];

        } else if (strcmp(argv[i], "--chunk") == 0) {
            b.chunk = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || b.chunk < 1
                || b.chunk > LOYALTY_SF_BULK_MAX)
            {
                fprintf(stderr, "loyalty-worker: backfill: --chunk takes "
                        "1 to %d records\n", LOYALTY_SF_BULK_MAX);
                return 2;
            }

        } else {
            goto usage;
        }
    }

    for (j = 0; j < conf->stores_count; j++) {
        if (strcmp(conf->stores[j], b.store) == 0) {
            break;
        }
    }

    if (j == conf->stores_count) {
        fprintf(stderr, "loyalty-worker: backfill: store \"%s\" is not in "
                "stores\n", b.store);
        return 2;
    }

    b.store_index = j;

    /* the salesforce flows that take the store (one destination) */
    b.flows = calloc(conf->flows_count + 1, sizeof(loyalty_bf_flow_t));
    if (b.flows == NULL) {
        return 1;
    }

    for (j = 0; j < conf->flows_count; j++) {
        f = &conf->flows[j];

        if (f->dest->kind != LOYALTY_DEST_SALESFORCE
            || (flow_id != NULL && strcmp(f->id, flow_id) != 0))
        {
            continue;
        }

        for (k = 0; k < f->stores_count; k++) {
            if (strcmp(f->stores[k], b.store) == 0) {
                break;
            }
        }

        if (f->stores_count > 0 && k == f->stores_count) {
            continue;
        }

        if (strcmp(f->key, "person") == 0) {
            /* resolved in the workers by the identity map, per event */
            fprintf(stderr, "loyalty-worker: backfill: flow %s: key person "
                    "(the identity map's) is not backfilled\n", f->id);
            continue;
        }

        if (b.dest != NULL && b.dest != f->dest) {
            fprintf(stderr, "loyalty-worker: backfill: the store's flows "
                    "write to several destinations (%s, %s): choose one "
                    "with --flow\n", b.dest->name, f->dest->name);
            return 2;
        }

        b.dest = f->dest;
        b.flows[b.nflows].flow = f;
        loyalty_sf_pool_init(&b.flows[b.nflows].pool);
        b.nflows++;
    }

    if (b.nflows == 0) {
        fprintf(stderr, "loyalty-worker: backfill: no salesforce flow %s%s"
                "%stakes store \"%s\"\n", flow_id ? "\"" : "",
                flow_id ? flow_id : "", flow_id ? "\" " : "", b.store);
        return 2;
    }

    snprintf(b.key_token, sizeof(b.key_token), "loyalty:sf:{%s}:token",
             b.dest->name);
    snprintf(b.key_usage, sizeof(b.key_usage), "loyalty:sf:{%s}:usage",
             b.dest->name);

    if (b.errors_path == NULL) {
        snprintf(b.errors_name, sizeof(b.errors_name),
                 "backfill-%s-%ld.errors", b.store, (long) time(NULL));
        b.errors_path = b.errors_name;
    }

    b.tty = isatty(STDERR_FILENO);
    b.start_ms = loyalty_now_ms();
    loyalty_cycle.conf = conf;          /* loyalty_sf_key: store names */

    rc = file ? loyalty_bf_read_file(&b, file) : loyalty_bf_read_stream(&b);
    if (rc != LOYALTY_OK) {
        return 1;
    }

    for (j = 0; j < b.nflows; j++) {
        b.total += b.flows[j].n;
    }

    fprintf(stderr, "backfill %s: %zu events read, %zu records for %s "
            "(%u flow%s)%s\n", b.store, b.events, b.total, b.dest->name,
            b.nflows, b.nflows == 1 ? "" : "s", b.invalid
            ? ", some events not mappable (see the errors file)" : "");

    b.curl = curl_easy_init();
    if (b.curl == NULL) {
        return 1;
    }

    /* the workers' view of the budget first: no job into a spent one */
    r = redisCommand(redis, "HMGET %s used limit", b.key_usage);
    if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2
        && r->element[0]->type == REDIS_REPLY_STRING
        && r->element[1]->type == REDIS_REPLY_STRING)
    {
        b.used = strtoll(r->element[0]->str, NULL, 10);
        b.limit = strtoll(r->element[1]->str, NULL, 10);
    }
    freeReplyObject(r);

    rc = 0;

    if (b.total > 0 && loyalty_bf_token(&b, 0) != LOYALTY_OK) {
        rc = 1;
    }

    for (j = 0; rc == 0 && j < b.nflows; j++) {
        for (from = 0; from < b.flows[j].n; from += b.chunk) {
            if (loyalty_bf_run(&b, &b.flows[j], from,
                               from + b.chunk < b.flows[j].n
                               ? from + b.chunk : b.flows[j].n)
                != LOYALTY_OK)
            {
                rc = 1;
                break;
            }
        }
    }

    loyalty_bf_progress(&b, "done", 1);

    fprintf(stdout, "backfill %s: %zu records in %u job%s, %zu written, "
            "%zu failed, %zu events not mappable, %.1f s\n", b.store,
            b.total, b.jobs, b.jobs == 1 ? "" : "s", b.written, b.failed,
            b.invalid, (double) (loyalty_now_ms() - b.start_ms) / 1000);

    if (b.errors != NULL) {
        fclose(b.errors);
        fprintf(stdout, "failures: %s\n", b.errors_path);
    }

    curl_easy_cleanup(b.curl);

    for (j = 0; j < b.nflows; j++) {
        free(b.flows[j].recs);
        free(b.flows[j].table);
        loyalty_sf_pool_free(&b.flows[j].pool);
    }

    free(b.flows);

    return (rc != 0 || b.failed > 0 || b.written < b.total) ? 1 : 0;

usage:

    fprintf(stderr, "usage: loyalty-worker [-c FILE] backfill STORE "
            "[--flow ID] [--file F.ndjson] [--errors FILE] [--chunk N]\n");
    return 2;
}


/* XRANGE of the store's stream, a page at a time */

static int
loyalty_bf_read_stream(loyalty_bf_t *b)
{
    size_t         i, j, n;
    redisReply    *r, *e, *fields;
    loyalty_str_t  fv[2 * LOYALTY_ENVELOPE_FIELDS + 8];
    char           key[128], start[64];

    snprintf(key, sizeof(key), "loyalty:{%s}:in", b->store);
    snprintf(start, sizeof(start), "-");

    for ( ;; ) {
        r = redisCommand(b->redis, "XRANGE %s %s + COUNT %d", key, start,
                         LOYALTY_BF_PAGE);

        if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
            fprintf(stderr, "loyalty-worker: backfill: XRANGE %s: %s\n",
                    key, r ? (r->str ? r->str : "unexpected reply")
                           : b->redis->errstr);
            freeReplyObject(r);
            return LOYALTY_ERROR;
        }

        for (i = 0; i < r->elements; i++) {
            e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
                continue;
            }

            fields = e->element[1];
            n = 0;

            for (j = 0; fields->type == REDIS_REPLY_ARRAY
                        && j + 1 < fields->elements && n + 2 <= 2
                        * LOYALTY_ENVELOPE_FIELDS + 8; j += 2)
            {
                fv[n].data = (u_char *) fields->element[j]->str;
                fv[n++].len = fields->element[j]->len;
                fv[n].data = (u_char *) fields->element[j + 1]->str;
                fv[n++].len = fields->element[j + 1]->len;
            }

            loyalty_bf_event(b, fv, n, e->element[0]->str);
            snprintf(start, sizeof(start), "(%s", e->element[0]->str);
        }

        n = r->elements;
        freeReplyObject(r);

        if (n < LOYALTY_BF_PAGE) {
            return LOYALTY_OK;
        }
    }
}


/* NDJSON: one envelope per line, the stream's field names */

static int
loyalty_bf_read_file(loyalty_bf_t *b, const char *path)
{
    FILE               *fp;
    char               *line;
    size_t              size, n, no;
    ssize_t             len;
    loyalty_err_t       err;
    loyalty_str_t       text, fv[2 * LOYALTY_ENVELOPE_FIELDS + 8];
    loyalty_json_t     *v, *m;
    loyalty_sf_pool_t   pool;
    char                where[64];

    fp = fopen(path, "r");
    if (fp == NULL) {
        fprintf(stderr, "loyalty-worker: backfill: %s: %s\n", path,
                strerror(errno));
        return LOYALTY_ERROR;
    }

    line = NULL;
    size = 0;
    no = 0;

    while ((len = getline(&line, &size, fp)) != -1) {
        no++;

        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
        {
            len--;
        }

        if (len == 0) {
            continue;
        }

        snprintf(where, sizeof(where), "%s:%zu", path, no);
        text.data = (u_char *) line;
        text.len = (size_t) len;
        loyalty_sf_pool_init(&pool);
        memset(&err, 0, sizeof(err));
        v = NULL;
        n = 0;

        if (len > LOYALTY_BF_LINE_MAX
            || loyalty_json_parse(&text, &pool.alloc, &v, &err) != LOYALTY_OK
            || v->type != LOYALTY_JSON_OBJECT)
        {
            b->invalid++;
            loyalty_bf_fail(b, NULL, where, "not a JSON object");
            loyalty_sf_pool_free(&pool);
            continue;
        }

        for (m = v->child; m != NULL && n + 2 <= 2 * LOYALTY_ENVELOPE_FIELDS
                                                  + 8; m = m->next)
        {
            fv[n++] = m->key;

            if (m->type == LOYALTY_JSON_STRING
                || m->type == LOYALTY_JSON_NUMBER)
            {
                fv[n++] = m->text;

            } else if (loyalty_json_dump(m, &pool.alloc, &fv[n++])
                       != LOYALTY_OK)
            {
                n -= 2;
            }
        }

        loyalty_bf_event(b, fv, n, where);
        loyalty_sf_pool_free(&pool);
    }

    free(line);
    fclose(fp);

    return LOYALTY_OK;
}


static int
loyalty_bf_has(char **list, unsigned n, const loyalty_str_t *s)
{
    unsigned  i;

    for (i = 0; i < n; i++) {
        if (loyalty_str_eq(s, list[i])) {
            return 1;
        }
    }

    return n == 0;
}


/* one envelope: mapped by each flow that takes it, the newest wins */

static void
loyalty_bf_event(loyalty_bf_t *b, loyalty_str_t *fv, size_t n,
    const char *where)
{
    size_t                i, k, x;
    unsigned              j;
    const char           *key;
    loyalty_err_t         err;
    loyalty_job_t         job;
    loyalty_json_t       *data;
    loyalty_bf_rec_t     *rec;
    loyalty_sf_pool_t     pool;
    loyalty_bf_flow_t    *bf;
    loyalty_sf_mapped_t  *mapped, *m;
    loyalty_flow_conf_t  *flow;
    char                  t[25];

    memset(&job, 0, sizeof(job));
    memset(&err, 0, sizeof(err));
    job.store = b->store_index;

    if (loyalty_envelope_decode(fv, n, &job.ev, &err) != LOYALTY_OK) {
        b->invalid++;
        loyalty_bf_fail(b, NULL, where, "invalid envelope: %s", err.msg);
        return;
    }

    b->events++;
    loyalty_sf_event_time(&job, t);

    for (j = 0; j < b->nflows; j++) {
        bf = &b->flows[j];
        flow = bf->flow;

        if (!loyalty_bf_has(flow->from, flow->from_count, &job.ev.src)
            || !loyalty_bf_has(flow->on, flow->on_count, &job.ev.type))
        {
            continue;
        }

        loyalty_sf_pool_init(&pool);
        data = NULL;

        mapped = loyalty_sf_palloc(&pool, flow->fields_count
                                          * sizeof(loyalty_sf_mapped_t) + 1);

        if (mapped == NULL
            || loyalty_json_parse(&job.ev.data, &pool.alloc, &data, &err)
               != LOYALTY_OK
            || data->type != LOYALTY_JSON_OBJECT
            || (key = loyalty_sf_key(&job, flow, &pool.alloc)) == NULL
            || loyalty_sf_envelope(&job, data, &pool.alloc) != LOYALTY_OK)
        {
            b->invalid++;
            loyalty_bf_fail(b, NULL, where, "%s: no data or no %s: not "
                            "mapped", flow->id, flow->key);
            loyalty_sf_pool_free(&pool);
            continue;
        }

        if (loyalty_sf_map_apply(flow->map, flow->fields_count,
                                 LOYALTY_SF_TO_CRM, data, &pool.alloc,
                                 mapped, &k)
            != LOYALTY_OK)
        {
            for (i = 0; i < k; i++) {
                if (mapped[i].status == LOYALTY_SF_INVALID) {
                    b->invalid++;
                    loyalty_bf_fail(b, NULL, where, "%s: invalid value: %s",
                                    flow->id, mapped[i].reason);
                    break;
                }
            }

            loyalty_sf_pool_free(&pool);
            continue;
        }

        rec = loyalty_bf_rec(bf, key, 1);
        if (rec == NULL) {
            loyalty_sf_pool_free(&pool);
            continue;
        }

        for (i = 0; i < k; i++) {
            m = &mapped[i];
            if (m->status != LOYALTY_SF_MAPPED) {
                continue;
            }

            x = (size_t) (m->map - (const loyalty_sf_map_field_t *)
                                   flow->map);

            if (rec->has[x] && strcmp(t, rec->time[x]) < 0) {
                continue;               /* a newer event wrote it */
            }

            rec->val[x].json = m->value.json;
            rec->val[x].text.len = m->value.text.len;
            rec->val[x].text.data = loyalty_alloc_copy(&bf->pool.alloc,
                                                       m->value.text.data,
                                                       m->value.text.len
                                                       + 1);
            memcpy(rec->time[x], t, 25);
            rec->has[x] = (rec->val[x].text.data != NULL);
        }

        loyalty_sf_pool_free(&pool);
    }
}


static size_t
loyalty_bf_hash(const char *key)
{
    size_t  h;

    for (h = 14695981039346656037ULL; *key; key++) {
        h = (h ^ (u_char) tolower((u_char) *key)) * 1099511628211ULL;
    }

    return h;
}


/* the record of an external id value (matched ignoring case); make:
 * a new one when there is none */

static loyalty_bf_rec_t *
loyalty_bf_rec(loyalty_bf_flow_t *f, const char *key, int make)
{
    size_t             i, h, nf, tcap, *table;
    loyalty_bf_rec_t  *rec, **recs;

    if (f->tcap > 0) {
        for (h = loyalty_bf_hash(key) & (f->tcap - 1); f->table[h] != 0;
             h = (h + 1) & (f->tcap - 1))
        {
            rec = f->recs[f->table[h] - 1];
            if (strcasecmp(rec->key, key) == 0) {
                return rec;
            }
        }
    }

    if (!make) {
        return NULL;
    }

    if (f->n == f->cap) {
        f->cap = f->cap ? f->cap * 2 : 1024;
        recs = realloc(f->recs, f->cap * sizeof(loyalty_bf_rec_t *));
        if (recs == NULL) {
            return NULL;
        }
        f->recs = recs;
    }

    /* at most half full */
    if (2 * (f->n + 1) > f->tcap) {
        tcap = f->tcap ? f->tcap * 2 : 2048;
        table = calloc(tcap, sizeof(size_t));
        if (table == NULL) {
            return NULL;
        }

        for (i = 0; i < f->n; i++) {
            for (h = loyalty_bf_hash(f->recs[i]->key) & (tcap - 1);
                 table[h] != 0; h = (h + 1) & (tcap - 1))
            { /* void */ }
            table[h] = i + 1;
        }

        free(f->table);
        f->table = table;
        f->tcap = tcap;
    }

    nf = f->flow->fields_count;
    rec = loyalty_sf_palloc(&f->pool, sizeof(loyalty_bf_rec_t));
    if (rec == NULL) {
        return NULL;
    }

    memset(rec, 0, sizeof(loyalty_bf_rec_t));
    rec->key = (char *) loyalty_alloc_copy(&f->pool.alloc, key,
                                           strlen(key) + 1);
    rec->time = loyalty_sf_palloc(&f->pool, 25 * nf + 1);
    rec->val = loyalty_sf_palloc(&f->pool, sizeof(loyalty_sf_value_t) * nf
                                           + 1);
    rec->has = loyalty_sf_palloc(&f->pool, nf + 1);

    if (rec->key == NULL || rec->time == NULL || rec->val == NULL
        || rec->has == NULL)
    {
        return NULL;
    }

    memset(rec->has, 0, nf + 1);

    for (h = loyalty_bf_hash(key) & (f->tcap - 1); f->table[h] != 0;
         h = (h + 1) & (f->tcap - 1))
    { /* void */ }

    f->recs[f->n++] = rec;
    f->table[h] = f->n;

    return rec;
}


/* one ingest job for records [from, to) of a flow */

static int
loyalty_bf_run(loyalty_bf_t *b, loyalty_bf_flow_t *f, size_t from,
    size_t to)
{
    long                  st;
    size_t                i, j, nf;
    unsigned              poll;
    uint64_t              started;
    u_char               *used;
    loyalty_err_t         err;
    loyalty_csv_t         w;
    loyalty_str_t         csv, body;
    loyalty_sf_job_t      job;
    loyalty_bf_buf_t      out;
    loyalty_sf_pool_t     pool;
    loyalty_bf_rec_t     *rec;
    loyalty_flow_conf_t  *flow;
    const loyalty_sf_map_field_t  *map;
    char                  id[40], path[160], req[512];

    flow = f->flow;
    map = flow->map;
    nf = flow->fields_count;

    used = calloc(nf + 1, 1);
    if (used == NULL) {
        return LOYALTY_ERROR;
    }

    for (i = from; i < to; i++) {
        for (j = 0; j < nf; j++) {
            used[j] |= f->recs[i]->has[j];
        }
    }

    loyalty_sf_pool_init(&pool);
    loyalty_csv_init(&w, &pool.alloc, 128 * (to - from) + 256);
    loyalty_csv_cfield(&w, flow->external_id);

    for (j = 0; j < nf; j++) {
        if (used[j]) {
            loyalty_csv_cfield(&w, map[j].field);
        }
    }

    loyalty_csv_row_end(&w);

    for (i = from; i < to; i++) {
        rec = f->recs[i];
        loyalty_csv_cfield(&w, rec->key);

        for (j = 0; j < nf; j++) {
            if (!used[j]) {
                continue;
            }

            if (!rec->has[j]) {
                loyalty_csv_cfield(&w, "");         /* left alone */

            } else if (rec->val[j].json == LOYALTY_SF_JSON_NULL
                       || rec->val[j].text.len == 0)
            {
                loyalty_csv_cfield(&w, "#N/A");

            } else {
                loyalty_csv_field(&w, &rec->val[j].text);
            }
        }

        loyalty_csv_row_end(&w);
    }

    free(used);

    if (loyalty_csv_finish(&w, &csv) != LOYALTY_OK
        || csv.len > LOYALTY_SF_BULK_BYTES)
    {
        fprintf(stderr, "loyalty-worker: backfill: a job of %zu records "
                "does not fit in 100 MB: use a smaller --chunk\n",
                to - from);
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    memset(&out, 0, sizeof(out));
    loyalty_bf_budget(b);

    snprintf(req, sizeof(req), "{\"object\":\"%s\",\"externalIdFieldName\":"
             "\"%s\",\"contentType\":\"CSV\",\"operation\":\"upsert\","
             "\"lineEnding\":\"LF\",\"columnDelimiter\":\"COMMA\"}",
             flow->object, flow->external_id);

    st = loyalty_bf_call(b, "POST", "/jobs/ingest", "application/json", req,
                         strlen(req), &out);
    body.data = (u_char *) out.data;
    body.len = out.len;
    memset(&err, 0, sizeof(err));

    if ((st != 200 && st != 201)
        || loyalty_sf_job_parse(&body, &pool.alloc, &job, &err)
           != LOYALTY_OK)
    {
        fprintf(stderr, "loyalty-worker: backfill: creating a job: HTTP "
                "%ld %.*s\n", st, (int) (out.len > 300 ? 300 : out.len),
                out.data ? out.data : "");
        free(out.data);
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    snprintf(id, sizeof(id), "%.*s", (int) job.id.len, job.id.data);
    b->jobs++;
    b->sent += to - from;
    loyalty_bf_progress(b, id, 0);

    snprintf(path, sizeof(path), "/jobs/ingest/%s/batches", id);
    st = loyalty_bf_call(b, "PUT", path, "text/csv", (const char *) csv.data,
                         csv.len, &out);
    loyalty_sf_pool_free(&pool);

    snprintf(path, sizeof(path), "/jobs/ingest/%s", id);
    if (st / 100 == 2) {
        strcpy(req, "{\"state\":\"UploadComplete\"}");
        st = loyalty_bf_call(b, "PATCH", path, "application/json", req,
                             strlen(req), &out);
    }

    if (st != 200) {
        fprintf(stderr, "loyalty-worker: backfill: job %s: upload: HTTP "
                "%ld %.*s\n", id, st, (int) (out.len > 300 ? 300 : out.len),
                out.data ? out.data : "");
        free(out.data);
        return LOYALTY_ERROR;
    }

    started = loyalty_now_ms();
    poll = 250;

    for ( ;; ) {
        loyalty_bf_sleep(poll);
        poll = poll * 2 > 5000 ? 5000 : poll * 2;

        loyalty_bf_budget(b);
        st = loyalty_bf_call(b, "GET", path, NULL, NULL, 0, &out);
        loyalty_sf_pool_init(&pool);
        body.data = (u_char *) out.data;
        body.len = out.len;

        if (st == 200
            && loyalty_sf_job_parse(&body, &pool.alloc, &job, &err)
               == LOYALTY_OK
            && loyalty_sf_job_done(job.state))
        {
            loyalty_sf_pool_free(&pool);
            break;
        }

        loyalty_sf_pool_free(&pool);
        loyalty_bf_progress(b, id, 0);

        if (loyalty_now_ms() - started > b->dest->bulk_timeout_ms) {
            fprintf(stderr, "loyalty-worker: backfill: job %s not finished "
                    "after bulk_timeout_ms (%u)\n", id,
                    b->dest->bulk_timeout_ms);
            free(out.data);
            return LOYALTY_ERROR;
        }
    }

    snprintf(path, sizeof(path), "/jobs/ingest/%s/successfulResults/", id);
    if (loyalty_bf_call(b, "GET", path, NULL, NULL, 0, &out) == 200) {
        loyalty_bf_results(b, f, &out, 0);
    }

    snprintf(path, sizeof(path), "/jobs/ingest/%s/failedResults/", id);
    if (loyalty_bf_call(b, "GET", path, NULL, NULL, 0, &out) == 200) {
        loyalty_bf_results(b, f, &out, 1);
    }

    /* unprocessed rows and rows without any result: failed here */
    for (i = from; i < to; i++) {
        if (!f->recs[i]->done) {
            f->recs[i]->done = 1;
            loyalty_bf_fail(b, f, f->recs[i]->key, "not processed by job "
                            "%s", id);
        }
    }

    free(out.data);
    loyalty_bf_progress(b, id, 1);

    return LOYALTY_OK;
}


/* a results file joined to the records by the external id column */

static void
loyalty_bf_results(loyalty_bf_t *b, loyalty_bf_flow_t *f,
    const loyalty_bf_buf_t *csv, int failed)
{
    size_t                 n, nf, i, col_key, col_err, max;
    loyalty_err_t          err;
    loyalty_str_t          text, *fields;
    loyalty_sf_pool_t      pool;
    loyalty_bf_rec_t      *rec;
    loyalty_sf_result_t    r;
    loyalty_csv_reader_t   rd;
    char                   key[256];

    max = f->flow->fields_count + 8;
    loyalty_sf_pool_init(&pool);
    fields = loyalty_sf_palloc(&pool, max * sizeof(loyalty_str_t));
    text.data = (u_char *) csv->data;
    text.len = csv->len;
    memset(&err, 0, sizeof(err));

    if (fields == NULL || text.len == 0) {
        loyalty_sf_pool_free(&pool);
        return;
    }

    loyalty_csv_reader_init(&rd, &text, &pool.alloc);

    if (loyalty_csv_next(&rd, fields, max, &nf, &err) != LOYALTY_OK) {
        loyalty_sf_pool_free(&pool);
        return;
    }

    col_key = nf;
    col_err = nf;

    for (i = 0; i < nf; i++) {
        if (fields[i].len == strlen(f->flow->external_id)
            && strncasecmp((const char *) fields[i].data,
                           f->flow->external_id, fields[i].len) == 0)
        {
            col_key = i;

        } else if (loyalty_str_eq(&fields[i], "sf__Error")) {
            col_err = i;
        }
    }

    while (col_key < nf
           && loyalty_csv_next(&rd, fields, max, &n, &err) == LOYALTY_OK)
    {
        if (n <= col_key || fields[col_key].len >= sizeof(key)) {
            continue;
        }

        memcpy(key, fields[col_key].data, fields[col_key].len);
        key[fields[col_key].len] = '\0';

        rec = loyalty_bf_rec(f, key, 0);
        if (rec == NULL || rec->done) {
            continue;
        }

        rec->done = 1;

        if (!failed) {
            b->written++;
            continue;
        }

        if (n > col_err) {
            loyalty_sf_bulk_error_parse(&fields[col_err], &r);
            loyalty_bf_fail(b, f, key, "%.*s: %.*s (%.*s)",
                            (int) r.code.len, (const char *) r.code.data,
                            (int) r.message.len,
                            r.message.len ? (const char *) r.message.data
                                          : "",
                            (int) r.fields.len,
                            r.fields.len ? (const char *) r.fields.data
                                         : "");
        } else {
            loyalty_bf_fail(b, f, key, "failed");
        }
    }

    loyalty_sf_pool_free(&pool);
}


/*
 * A failure, written to the errors file (opened at the first one):
 * "<object> <external id value> <reason>", or "- <where> <reason>" for
 * an event that could not be mapped.
 */

static void
loyalty_bf_fail(loyalty_bf_t *b, loyalty_bf_flow_t *f, const char *key,
    const char *fmt, ...)
{
    va_list  ap;

    if (f != NULL) {
        b->failed++;
    }

    if (b->errors == NULL) {
        b->errors = fopen(b->errors_path, "w");
        if (b->errors == NULL) {
            fprintf(stderr, "loyalty-worker: backfill: %s: %s\n",
                    b->errors_path, strerror(errno));
            b->errors = stderr;
        }
    }

    fprintf(b->errors, "%s\t%s\t", f ? f->flow->object : "-", key);
    va_start(ap, fmt);
    vfprintf(b->errors, fmt, ap);
    va_end(ap);
    fputc('\n', b->errors);
}


/* a bar on a terminal, a line per job otherwise */

static void
loyalty_bf_progress(loyalty_bf_t *b, const char *what, int line)
{
    size_t    i, fill;
    double    s;
    char      bar[41];

    s = (double) (loyalty_now_ms() - b->start_ms) / 1000;

    if (!b->tty) {
        if (line) {
            fprintf(stderr, "backfill %s: %zu/%zu records sent, %u job%s, "
                    "%zu written, %zu failed, %.1f s (%s)\n", b->store,
                    b->sent, b->total, b->jobs, b->jobs == 1 ? "" : "s",
                    b->written, b->failed, s, what);
        }
        return;
    }

    fill = b->total ? 40 * b->sent / b->total : 40;
    for (i = 0; i < 40; i++) {
        bar[i] = (i < fill) ? '#' : '.';
    }
    bar[40] = '\0';

    fprintf(stderr, "\r[%s] %zu/%zu records, %u job%s, %zu failed, %.1f s "
            "%-20s%s", bar, b->sent, b->total, b->jobs,
            b->jobs == 1 ? "" : "s", b->failed, s, what,
            line && strcmp(what, "done") == 0 ? "\n" : "");
}


static void
loyalty_bf_sleep(unsigned ms)
{
    struct timespec  ts;

    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (long) (ms % 1000) * 1000000L;

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) { /* void */ }
}


/*
 * Before a job and each poll: at backfill_reserve the backfill waits,
 * reading GET .../limits every budget_poll_ms, while the realtime
 * flows still have until budget_reserve.
 */

static void
loyalty_bf_budget(loyalty_bf_t *b)
{
    int                 said;
    loyalty_err_t       err;
    loyalty_str_t       body;
    loyalty_bf_buf_t    out;
    loyalty_sf_pool_t   pool;
    loyalty_sf_usage_t  u;
    int64_t             floor;

    if (b->dest->backfill_reserve == 0) {
        return;
    }

    said = 0;
    memset(&out, 0, sizeof(out));

    for ( ;; ) {
        floor = b->limit - b->limit * (int64_t) b->dest->backfill_reserve
                           / 100;

        if (b->limit <= 0 || b->used < floor) {
            break;
        }

        if (!said) {
            said = 1;
            fprintf(stderr, "%sbackfill %s: daily API budget: %lld of %lld "
                    "used, backfill_reserve %u%%: waiting\n",
                    b->tty ? "\n" : "", b->store, (long long) b->used,
                    (long long) b->limit, b->dest->backfill_reserve);
        }

        loyalty_bf_sleep(b->dest->budget_poll_ms);

        if (loyalty_bf_call(b, "GET", "/limits", NULL, NULL, 0, &out)
            == 200)
        {
            loyalty_sf_pool_init(&pool);
            body.data = (u_char *) out.data;
            body.len = out.len;
            memset(&err, 0, sizeof(err));

            if (loyalty_sf_limits_parse(&body, &pool.alloc, &u, &err)
                == LOYALTY_OK)
            {
                b->used = u.used;
                b->limit = u.limit;
            }

            loyalty_sf_pool_free(&pool);
        }
    }

    if (said) {
        fprintf(stderr, "backfill %s: daily API budget: %lld of %lld used: "
                "resumed\n", b->store, (long long) b->used,
                (long long) b->limit);
    }

    free(out.data);
}


/*
 * One REST call under /services/data/vXX.X: a 401 takes a new token
 * and tries once more; 403 REQUEST_LIMIT_EXCEEDED waits limit_pause_ms;
 * a transport error or 5xx is tried up to 3 times.  Every answer's
 * Sforce-Limit-Info is the shared usage.
 */

static long
loyalty_bf_call(loyalty_bf_t *b, const char *method, const char *path,
    const char *type, const char *body, size_t len, loyalty_bf_buf_t *out)
{
    long                st;
    unsigned            tries, auth;
    loyalty_str_t       h;
    loyalty_sf_usage_t  u;
    char                url[1200];

    auth = 0;

    for (tries = 0; tries < 6; tries++) {
        snprintf(url, sizeof(url), "%s/services/data/v%s%s",
                 b->instance_url, b->dest->api_version, path);

        b->limit_header[0] = '\0';
        st = loyalty_bf_http(b, method, url, type, body, len, out);

        h.data = (u_char *) b->limit_header;
        h.len = strlen(b->limit_header);

        if (h.len > 0 && loyalty_sf_usage_parse(&h, &u) == LOYALTY_OK) {
            b->used = u.used;
            b->limit = u.limit;
            freeReplyObject(redisCommand(b->redis, "HSET %s used %lld "
                                         "limit %lld at %llu", b->key_usage,
                                         (long long) u.used,
                                         (long long) u.limit,
                                         (unsigned long long)
                                         loyalty_now_ms()));
        }

        if (st == 401 && !auth) {
            auth = 1;
            if (loyalty_bf_token(b, 1) != LOYALTY_OK) {
                return st;
            }
            continue;
        }

        if (st == 403 && out->data != NULL
            && strstr(out->data, "REQUEST_LIMIT_EXCEEDED") != NULL)
        {
            fprintf(stderr, "%sbackfill %s: 403 REQUEST_LIMIT_EXCEEDED: "
                    "waiting %u ms\n", b->tty ? "\n" : "", b->store,
                    b->dest->limit_pause_ms);
            loyalty_bf_sleep(b->dest->limit_pause_ms);
            continue;
        }

        if (st <= 0 || st >= 500) {
            loyalty_bf_sleep(1000 << (tries < 4 ? tries : 4));
            continue;
        }

        return st;
    }

    return st;
}


static long
loyalty_bf_http(loyalty_bf_t *b, const char *method, const char *url,
    const char *type, const char *body, size_t len, loyalty_bf_buf_t *out)
{
    long                st;
    CURLcode            rc;
    struct curl_slist  *list, *hd;
    char                line[600];

    out->len = 0;
    if (out->data != NULL) {
        out->data[0] = '\0';
    }

    curl_easy_reset(b->curl);

    list = NULL;
    if (b->token[0] != '\0') {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", b->token);
        list = curl_slist_append(list, line);
    }

    if (type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", type);
        hd = curl_slist_append(list, line);
        list = hd ? hd : list;
    }

    hd = curl_slist_append(list, "Accept: application/json");
    list = hd ? hd : list;
    hd = curl_slist_append(list, "Expect:");
    list = hd ? hd : list;

    curl_easy_setopt(b->curl, CURLOPT_URL, url);
    curl_easy_setopt(b->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(b->curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(b->curl, CURLOPT_WRITEFUNCTION, loyalty_bf_write);
    curl_easy_setopt(b->curl, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(b->curl, CURLOPT_HEADERFUNCTION, loyalty_bf_header);
    curl_easy_setopt(b->curl, CURLOPT_HEADERDATA, b);
    curl_easy_setopt(b->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(b->curl, CURLOPT_TIMEOUT_MS,
                     (long) (b->dest->timeout_ms * 10));
    curl_easy_setopt(b->curl, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) (b->dest->connect_timeout_ms
                             ? b->dest->connect_timeout_ms : 5000));

    if (body != NULL) {
        curl_easy_setopt(b->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(b->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t) len);
    }

    rc = curl_easy_perform(b->curl);
    curl_slist_free_all(list);

    if (rc != CURLE_OK) {
        fprintf(stderr, "%sbackfill %s: %s %s: %s\n", b->tty ? "\n" : "",
                b->store, method, url, curl_easy_strerror(rc));
        return 0;
    }

    st = 0;
    curl_easy_getinfo(b->curl, CURLINFO_RESPONSE_CODE, &st);

    return st;
}


static size_t
loyalty_bf_write(char *p, size_t size, size_t n, void *arg)
{
    char              *d;
    size_t             want, cap;
    loyalty_bf_buf_t  *out;

    out = arg;
    want = size * n;

    if (out->len + want + 1 > out->size) {
        cap = out->size ? out->size : 4096;
        while (cap < out->len + want + 1) {
            cap *= 2;
        }

        d = realloc(out->data, cap);
        if (d == NULL) {
            return 0;
        }

        out->data = d;
        out->size = cap;
    }

    memcpy(out->data + out->len, p, want);
    out->len += want;
    out->data[out->len] = '\0';

    return want;
}


static size_t
loyalty_bf_header(char *p, size_t size, size_t n, void *arg)
{
    size_t         len, k;
    loyalty_bf_t  *b;

    b = arg;
    len = size * n;
    k = sizeof("Sforce-Limit-Info:") - 1;

    if (len > k && strncasecmp(p, "Sforce-Limit-Info:", k) == 0) {
        p += k;
        len -= k;

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }

        while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n')) {
            len--;
        }

        if (len >= sizeof(b->limit_header)) {
            len = sizeof(b->limit_header) - 1;
        }

        memcpy(b->limit_header, p, len);
        b->limit_header[len] = '\0';
    }

    return size * n;
}


/*
 * The workers' cached token; fresh (or none cached): the token
 * endpoint, with the destination's own grant, and the cache updated
 * for every worker.  The secret and the token are never printed.
 */

static int
loyalty_bf_token(loyalty_bf_t *b, int fresh)
{
    FILE                *fp;
    long                 st;
    size_t               n;
    EVP_PKEY            *key;
    redisReply          *r;
    loyalty_err_t        err;
    loyalty_str_t        jwt, body, at, iu;
    loyalty_json_t      *v;
    loyalty_bf_buf_t     out;
    loyalty_sf_pool_t    pool;
    loyalty_dest_conf_t *d;
    char                *form, *e, secret[512], url[2200];
    u_char               pem[16384];

    d = b->dest;

    if (!fresh) {
        r = redisCommand(b->redis, "HMGET %s access_token instance_url",
                         b->key_token);

        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2
            && r->element[0]->type == REDIS_REPLY_STRING
            && r->element[1]->type == REDIS_REPLY_STRING
            && r->element[0]->len < sizeof(b->token)
            && r->element[1]->len < sizeof(b->instance_url))
        {
            snprintf(b->token, sizeof(b->token), "%s", r->element[0]->str);
            snprintf(b->instance_url, sizeof(b->instance_url), "%s",
                     r->element[1]->str);
            freeReplyObject(r);
            return LOYALTY_OK;
        }

        freeReplyObject(r);
    }

    loyalty_sf_pool_init(&pool);
    memset(&err, 0, sizeof(err));
    memset(&out, 0, sizeof(out));
    jwt.len = 0;
    secret[0] = '\0';

    if (strcmp(d->auth, "jwt_bearer") == 0) {
        fp = fopen(d->private_key_file, "r");
        n = fp ? fread(pem, 1, sizeof(pem), fp) : 0;
        if (fp != NULL) {
            fclose(fp);
        }

        key = loyalty_sf_jwt_key(pem, n, &err);
        memset(pem, 0, sizeof(pem));

        if (key == NULL
            || loyalty_sf_jwt_sign(d->client_id, d->username, d->audience,
                                   (int64_t) time(NULL) + 180, key,
                                   &pool.alloc, &jwt, &err)
               != LOYALTY_OK)
        {
            fprintf(stderr, "loyalty-worker: backfill: JWT assertion: %s\n",
                    err.msg);
            EVP_PKEY_free(key);
            loyalty_sf_pool_free(&pool);
            return LOYALTY_ERROR;
        }

        EVP_PKEY_free(key);

    } else {
        fp = fopen(d->client_secret_file, "r");
        if (fp == NULL || fgets(secret, sizeof(secret), fp) == NULL) {
            fprintf(stderr, "loyalty-worker: backfill: client_secret_file "
                    "%s: cannot read it\n", d->client_secret_file);
            if (fp != NULL) {
                fclose(fp);
            }
            loyalty_sf_pool_free(&pool);
            return LOYALTY_ERROR;
        }

        fclose(fp);
        secret[strcspn(secret, "\r\n")] = '\0';
    }

    form = loyalty_sf_palloc(&pool, 3 * (strlen(d->client_id)
                                         + strlen(secret) + jwt.len) + 256);
    e = form ? curl_easy_escape(b->curl, d->client_id, 0) : NULL;

    if (form == NULL || e == NULL) {
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    if (jwt.len > 0) {
        sprintf(form, "grant_type=urn%%3Aietf%%3Aparams%%3Aoauth%%3A"
                "grant-type%%3Ajwt-bearer&assertion=%.*s", (int) jwt.len,
                (const char *) jwt.data);
        curl_free(e);

    } else {
        n = (size_t) sprintf(form, "grant_type=client_credentials&"
                             "client_id=%s&client_secret=", e);
        curl_free(e);
        e = curl_easy_escape(b->curl, secret, 0);
        if (e == NULL) {
            loyalty_sf_pool_free(&pool);
            return LOYALTY_ERROR;
        }
        strcpy(form + n, e);
        curl_free(e);
    }

    memset(secret, 0, sizeof(secret));
    snprintf(url, sizeof(url), "%s/services/oauth2/token", d->url);
    b->token[0] = '\0';

    st = loyalty_bf_http(b, "POST", url, "application/x-www-form-urlencoded",
                         form, strlen(form), &out);

    body.data = (u_char *) out.data;
    body.len = out.len;
    v = NULL;

    if (st != 200
        || loyalty_json_parse(&body, &pool.alloc, &v, &err) != LOYALTY_OK
        || v->type != LOYALTY_JSON_OBJECT
        || loyalty_json_scalar(v, "access_token", &at) != LOYALTY_OK
        || loyalty_json_scalar(v, "instance_url", &iu) != LOYALTY_OK
        || at.len >= sizeof(b->token) || iu.len >= sizeof(b->instance_url))
    {
        /* OAuth's error only: the body may echo nothing secret, but be
         * sure */
        fprintf(stderr, "loyalty-worker: backfill: token endpoint: HTTP "
                "%ld\n", st);
        free(out.data);
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    snprintf(b->token, sizeof(b->token), "%.*s", (int) at.len, at.data);
    snprintf(b->instance_url, sizeof(b->instance_url), "%.*s",
             (int) iu.len, iu.data);

    freeReplyObject(redisCommand(b->redis, "HSET %s access_token %s "
                                 "instance_url %s issued %lld",
                                 b->key_token, b->token, b->instance_url,
                                 (long long) time(NULL)));

    free(out.data);
    loyalty_sf_pool_free(&pool);

    return LOYALTY_OK;
}
