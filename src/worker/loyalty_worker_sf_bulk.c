/*
 * Copyright (C) loyalty-edge authors
 *
 * Bulk API 2.0 for backlogs (apis.md §11.6).  When more than
 * bulk_threshold records of one flow wait, they leave as ONE ingest job
 * instead of Collections calls: create (POST jobs/ingest, upsert by the
 * flow's external id), upload the CSV (PUT .../batches), close (PATCH
 * UploadComplete), poll (GET, on a timer, 250 ms doubling to 5 s), then
 * successfulResults, failedResults and unprocessedrecords, joined to
 * the records by the external id column (row order is not the upload
 * order).  Every step goes through the HTTP layer's queue, so the
 * destination's slots, the shared pause and the budget guard apply.
 *
 * The job is a loyalty_sf_call_t like a Collections call: the same
 * per-key rules (one record per external id value, none that another
 * call holds), the same delta scripts first, the same outcomes and
 * commits at the end (loyalty_sf_finish).  Its entries stay pending
 * (kept fresh by the consumer) until the results are read; SIGTERM or
 * a crash leaves them pending, and the worker that claims them sends
 * them again: upsert by external id makes that a rewrite, never a
 * duplicate.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "loyalty_worker_sf.h"
#include "loyalty_csv.h"
#include "loyalty_sf_bulk.h"


#define LOYALTY_SF_BULK_POLL_MIN    250
#define LOYALTY_SF_BULK_POLL_MAX    5000
#define LOYALTY_SF_BULK_RESULTS     (256 * 1024 * 1024)
#define LOYALTY_SF_BULK_RENEW       256    /* lease keys per script */


typedef enum {
    LOYALTY_SF_BULK_CREATE = 0,
    LOYALTY_SF_BULK_UPLOAD,
    LOYALTY_SF_BULK_CLOSE,
    LOYALTY_SF_BULK_POLL,
    LOYALTY_SF_BULK_SUCCESSFUL,
    LOYALTY_SF_BULK_FAILED,
    LOYALTY_SF_BULK_UNPROCESSED
} loyalty_sf_bulk_step_e;


typedef struct {
    loyalty_sf_bulk_step_e   step;
    char                     id[40];       /* the job's */
    char                    *csv;
    size_t                   csv_len;
    struct event            *timer;
    unsigned                 poll_ms;
    unsigned                 waiting:1;    /* on the timer */
    uint64_t                 started_ms;
    uint64_t                 renewed_ms;
    uint64_t                 us;           /* time in requests */
    size_t                  *order;        /* items by external id */
    loyalty_sf_result_t     *results;      /* per item */
    u_char                  *seen;         /* per item: a result row */
    loyalty_sf_pool_t        pool;         /* result strings */
} loyalty_sf_bulk_t;


/* KEYS: record leases; ARGV: consumer, ms.  Only our own are renewed */
static const char  loyalty_sf_bulk_renew_script[] =
    "for _, k in ipairs(KEYS) do "
    "  if redis.call('GET', k) == ARGV[1] then "
    "    redis.call('PEXPIRE', k, ARGV[2]) "
    "  end "
    "end "
    "return 1";


static loyalty_sf_call_t  *loyalty_sf_bulk_sort_call;


static int loyalty_sf_bulk_csv(loyalty_sf_call_t *c);
static void loyalty_sf_bulk_step(loyalty_sf_call_t *c);
static void loyalty_sf_bulk_done(loyalty_http_req_t *r,
    const loyalty_http_res_t *res);
static void loyalty_sf_bulk_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_sf_bulk_poll_later(loyalty_sf_call_t *c);
static int loyalty_sf_bulk_results(loyalty_sf_call_t *c,
    const loyalty_str_t *csv);
static void loyalty_sf_bulk_end(loyalty_sf_call_t *c, loyalty_sf_class_e cls,
    const char *why, long status);
static void loyalty_sf_bulk_renew(loyalty_sf_call_t *c);
static int loyalty_sf_bulk_cmp(const void *a, const void *b);


/*
 * A backlog deeper than bulk_threshold for the first waiting record's
 * flow becomes one job (one at a time per destination): as for a
 * Collections call, records that no call in flight holds, oldest
 * first, later events of a record in the job coalesced into it
 * (loyalty_sf_merge), up to 10,000 records.  When coalescing leaves no
 * more than bulk_threshold records (and at most 200), they go as a
 * Collections call after all.
 */

int
loyalty_sf_bulk_flush(loyalty_sf_t *sf)
{
    size_t                n;
    loyalty_sf_bulk_t    *b;
    loyalty_sf_call_t    *c, *o;
    loyalty_sf_item_t    *it, *prev, *next, *busy;
    loyalty_flow_conf_t  *flow;

    if (sf->head == NULL || loyalty_cycle.stopping) {
        return LOYALTY_DECLINED;
    }

    for (o = sf->calls; o != NULL; o = o->next) {
        if (o->bulk != NULL) {
            return LOYALTY_DECLINED;
        }
    }

    flow = sf->head->flow;
    n = 0;

    for (it = sf->head; it != NULL; it = it->next) {
        n += (it->flow == flow);
    }

    if (n <= sf->dest->bulk_threshold) {
        return LOYALTY_DECLINED;
    }

    if (n > LOYALTY_SF_BULK_MAX) {
        n = LOYALTY_SF_BULK_MAX;
    }

    c = calloc(1, sizeof(loyalty_sf_call_t));
    b = calloc(1, sizeof(loyalty_sf_bulk_t));

    if (c == NULL || b == NULL
        || (c->items = malloc(n * sizeof(loyalty_sf_item_t *))) == NULL
        || (b->timer = evtimer_new(loyalty_cycle.base, loyalty_sf_bulk_timer,
                                   c)) == NULL)
    {
        if (c != NULL) {
            free(c->items);
        }
        free(c);
        free(b);
        return LOYALTY_DECLINED;
    }

    c->sf = sf;
    c->bulk = b;
    loyalty_sf_pool_init(&b->pool);

    prev = NULL;

    for (it = sf->head; it != NULL && c->n < n; it = next) {
        next = it->next;

        if (it->flow != flow) {
            prev = it;
            continue;
        }

        busy = loyalty_sf_key_busy(sf, it->key);

        if (busy != NULL && (busy->call != c || busy->flow != it->flow)) {
            /* written by a call in flight: later */
            prev = it;
            continue;
        }

        if (prev == NULL) {
            sf->head = next;
        } else {
            prev->next = next;
        }

        if (sf->tail == it) {
            sf->tail = prev;
        }

        it->next = NULL;
        sf->pending--;

        if (busy != NULL) {
            loyalty_sf_merge(busy, it);
            continue;
        }

        it->call = c;
        c->items[c->n++] = it;
        loyalty_sf_busy_add(sf, it);
    }

    if (c->n == 0) {
        /* nothing taken (every key busy): the Collections flush decides */
        loyalty_sf_bulk_free(c);
        free(c);
        return LOYALTY_DECLINED;
    }

    if (c->n <= sf->dest->bulk_threshold
        && c->n <= LOYALTY_SF_COLLECTION_MAX)
    {
        /* coalesced into few records: a Collections call is cheaper */
        memcpy(c->few, c->items, c->n * sizeof(loyalty_sf_item_t *));
        loyalty_sf_bulk_free(c);

    } else {
        loyalty_log(LOYALTY_LOG_INFO, NULL, sf->dest->name, -1, -1,
                    "backlog of %zu %s records: one Bulk API job", c->n,
                    flow->object);
    }

    c->next = sf->calls;
    if (sf->calls != NULL) {
        sf->calls->prev = c;
    }
    sf->calls = c;
    sf->ncalls++;

    /* the delta scripts first; their end puts the call on sf->ready */
    loyalty_sf_check(c);

    return LOYALTY_OK;
}


/* a token is there and the delta said what to send: create the job */

void
loyalty_sf_bulk_start(loyalty_sf_call_t *c)
{
    size_t              i;
    loyalty_sf_bulk_t  *b;

    b = c->bulk;
    b->started_ms = loyalty_now_ms();
    b->renewed_ms = b->started_ms;

    b->order = malloc(c->n * sizeof(size_t));
    b->seen = calloc(c->n + 1, 1);
    b->results = calloc(c->n + 1, sizeof(loyalty_sf_result_t));

    if (b->order == NULL || b->seen == NULL || b->results == NULL
        || loyalty_sf_bulk_csv(c) != LOYALTY_OK)
    {
        loyalty_log(LOYALTY_LOG_ERR, NULL, c->sf->dest->name, -1, -1,
                    "out of memory building a Bulk API job");
        loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, "out of memory", 0);
        return;
    }

    for (i = 0; i < c->n; i++) {
        b->order[i] = i;
    }

    loyalty_sf_bulk_sort_call = c;
    qsort(b->order, c->n, sizeof(size_t), loyalty_sf_bulk_cmp);
    loyalty_sf_bulk_sort_call = NULL;

    c->sf->dest->sf_bulk_jobs++;
    snprintf(c->token, sizeof(c->token), "%s", c->sf->token);

    b->step = LOYALTY_SF_BULK_CREATE;
    loyalty_sf_bulk_step(c);
}


static int
loyalty_sf_bulk_cmp(const void *a, const void *b)
{
    loyalty_sf_call_t  *c;

    c = loyalty_sf_bulk_sort_call;

    return strcasecmp(c->items[*(const size_t *) a]->key,
                      c->items[*(const size_t *) b]->key);
}


/*
 * The header: the external id, then every field of the map that some
 * record sends.  A record that does not send a field leaves its cell
 * empty (Bulk: the field is left alone); null is "#N/A".
 */

static int
loyalty_sf_bulk_csv(loyalty_sf_call_t *c)
{
    size_t                          i, j, nf;
    loyalty_csv_t                   w;
    loyalty_str_t                   out;
    loyalty_sf_bulk_t              *b;
    loyalty_sf_pool_t               pool;
    loyalty_sf_item_t              *it;
    loyalty_sf_mapped_t            *m, **cell;
    loyalty_flow_conf_t            *flow;
    const loyalty_sf_map_field_t   *map;
    u_char                         *used;

    b = c->bulk;
    flow = c->items[0]->flow;
    map = flow->map;
    nf = flow->fields_count;

    /* an item maps only the fields its event has: by map position */
    used = calloc(nf + 1, 1);
    cell = calloc(nf + 1, sizeof(loyalty_sf_mapped_t *));

    if (used == NULL || cell == NULL) {
        free(used);
        free(cell);
        return LOYALTY_ERROR;
    }

    for (i = 0; i < c->n; i++) {
        it = c->items[i];

        for (j = 0; j < it->nmapped; j++) {
            m = &it->mapped[j];
            if (m->status == LOYALTY_SF_MAPPED && !it->skip[j]) {
                used[m->map - map] = 1;
            }
        }
    }

    loyalty_sf_pool_init(&pool);
    loyalty_csv_init(&w, &pool.alloc, 128 * c->n + 256);

    loyalty_csv_cfield(&w, flow->external_id);

    for (j = 0; j < nf; j++) {
        if (used[j]) {
            loyalty_csv_cfield(&w, map[j].field);
        }
    }

    loyalty_csv_row_end(&w);

    for (i = 0; i < c->n; i++) {
        it = c->items[i];
        memset(cell, 0, nf * sizeof(loyalty_sf_mapped_t *));

        for (j = 0; j < it->nmapped; j++) {
            m = &it->mapped[j];
            if (m->status == LOYALTY_SF_MAPPED && !it->skip[j]) {
                cell[m->map - map] = m;
            }
        }

        loyalty_csv_cfield(&w, it->key);

        for (j = 0; j < nf; j++) {
            if (!used[j]) {
                continue;
            }

            m = cell[j];

            if (m == NULL) {
                /* Bulk: an empty cell leaves the field alone */
                loyalty_csv_cfield(&w, "");

            } else if (m->value.json == LOYALTY_SF_JSON_NULL
                       || m->value.text.len == 0)
            {
                loyalty_csv_cfield(&w, "#N/A");

            } else {
                loyalty_csv_field(&w, &m->value.text);
            }
        }

        loyalty_csv_row_end(&w);
    }

    free(used);
    free(cell);

    if (loyalty_csv_finish(&w, &out) != LOYALTY_OK
        || out.len > LOYALTY_SF_BULK_BYTES)
    {
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    b->csv = malloc(out.len + 1);
    if (b->csv == NULL) {
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    memcpy(b->csv, out.data, out.len);
    b->csv[out.len] = '\0';
    b->csv_len = out.len;
    loyalty_sf_pool_free(&pool);

    return LOYALTY_OK;
}


/* the request of the job's current step, through the layer's queue */

static void
loyalty_sf_bulk_step(loyalty_sf_call_t *c)
{
    size_t                n;
    loyalty_sf_t         *sf;
    loyalty_sf_bulk_t    *b;
    loyalty_flow_conf_t  *flow;
    struct curl_slist    *list, *h;
    const char           *path, *type;
    char                  line[600];

    sf = c->sf;
    b = c->bulk;
    flow = c->items[0]->flow;

    free(c->url);
    free(c->body);
    curl_slist_free_all(c->req.headers);
    c->url = NULL;
    c->body = NULL;
    c->req.headers = NULL;

    n = strlen(sf->instance_url) + strlen(sf->dest->api_version) + 128;
    c->url = malloc(n);

    if (c->url == NULL) {
        loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, "out of memory", 0);
        return;
    }

    c->req.body = NULL;
    c->req.body_len = 0;
    c->req.body_max = 64 * 1024;
    type = NULL;
    path = "";

    switch (b->step) {

    case LOYALTY_SF_BULK_CREATE:
        c->body = malloc(strlen(flow->object) + strlen(flow->external_id)
                         + 256);
        if (c->body == NULL) {
            loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, "out of memory", 0);
            return;
        }

        /* object and field are API names: letters, digits, _ */
        c->req.body_len = sprintf(c->body, "{\"object\":\"%s\","
            "\"externalIdFieldName\":\"%s\",\"contentType\":\"CSV\","
            "\"operation\":\"upsert\",\"lineEnding\":\"LF\","
            "\"columnDelimiter\":\"COMMA\"}", flow->object,
            flow->external_id);
        c->req.body = c->body;
        c->req.method = "POST";
        type = "Content-Type: application/json";
        break;

    case LOYALTY_SF_BULK_UPLOAD:
        c->req.body = b->csv;
        c->req.body_len = b->csv_len;
        c->req.method = "PUT";
        type = "Content-Type: text/csv";
        path = "/batches";
        break;

    case LOYALTY_SF_BULK_CLOSE:
        c->body = strdup("{\"state\":\"UploadComplete\"}");
        if (c->body == NULL) {
            loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, "out of memory", 0);
            return;
        }

        c->req.body = c->body;
        c->req.body_len = strlen(c->body);
        c->req.method = "PATCH";
        type = "Content-Type: application/json";
        break;

    case LOYALTY_SF_BULK_POLL:
        c->req.method = "GET";
        break;

    case LOYALTY_SF_BULK_SUCCESSFUL:
    case LOYALTY_SF_BULK_FAILED:
    case LOYALTY_SF_BULK_UNPROCESSED:
        c->req.method = "GET";
        c->req.body_max = LOYALTY_SF_BULK_RESULTS;
        path = (b->step == LOYALTY_SF_BULK_SUCCESSFUL)
               ? "/successfulResults/"
               : (b->step == LOYALTY_SF_BULK_FAILED)
               ? "/failedResults/" : "/unprocessedrecords/";
        break;
    }

    snprintf(c->url, n, "%s/services/data/v%s/jobs/ingest%s%s%s",
             sf->instance_url, sf->dest->api_version,
             b->step == LOYALTY_SF_BULK_CREATE ? "" : "/",
             b->step == LOYALTY_SF_BULK_CREATE ? "" : b->id, path);

    /* the token may have been renewed by another call meanwhile */
    if (sf->token[0] != '\0') {
        snprintf(c->token, sizeof(c->token), "%s", sf->token);
    }

    snprintf(line, sizeof(line), "Authorization: Bearer %s", c->token);

    list = curl_slist_append(NULL, line);
    h = list;
    h = h ? curl_slist_append(list, "Accept: application/json") : NULL;
    h = (h && type) ? curl_slist_append(list, type) : h;
    h = h ? curl_slist_append(list, "Expect:") : NULL;

    if (h == NULL) {
        curl_slist_free_all(list);
        loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, "out of memory", 0);
        return;
    }

    c->req.dest = sf->dest;
    c->req.url = c->url;
    c->req.headers = list;
    c->req.capture = "Sforce-Limit-Info";
    c->req.handler = loyalty_sf_bulk_done;
    c->req.data = c;

    c->sent = 1;
    loyalty_sf_queue(sf, &c->req);
}


static void
loyalty_sf_bulk_done(loyalty_http_req_t *r, const loyalty_http_res_t *res)
{
    long                  want;
    loyalty_sf_t         *sf;
    loyalty_err_t         err;
    loyalty_str_t         body;
    loyalty_sf_job_t      job;
    loyalty_sf_bulk_t    *b;
    loyalty_sf_call_t    *c;
    loyalty_sf_pool_t     pool;
    loyalty_sf_result_t   one;
    loyalty_dest_conf_t  *dest;
    char                  why[300];

    c = r->data;
    b = c->bulk;
    sf = c->sf;
    dest = sf->dest;
    c->sent = 0;
    b->us += res->us;

    if (res->abandoned || loyalty_cycle.stopping) {
        /* SIGTERM: the entries stay pending, the claimer sends again */
        loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, NULL, -1);
        return;
    }

    if (res->header != NULL) {
        loyalty_sf_usage(sf, res->header);
    }

    if (res->error != NULL) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, dest->name, -1,
                    (long) (res->us / 1000), "Bulk API job %s: %s",
                    b->id[0] ? b->id : "(not created)", res->error);
        loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, res->error, 0);
        return;
    }

    switch (b->step) {
    case LOYALTY_SF_BULK_UPLOAD:
        want = 201;
        break;
    default:
        want = 200;
        break;
    }

    body.data = (u_char *) res->body;
    body.len = res->body_len;
    loyalty_sf_pool_init(&pool);
    memset(&err, 0, sizeof(err));

    if (res->status != want
        && !(b->step == LOYALTY_SF_BULK_CREATE && res->status == 201)
        && !(b->step == LOYALTY_SF_BULK_UPLOAD && res->status / 100 == 2))
    {
        memset(&one, 0, sizeof(one));

        if (loyalty_sf_answer_parse((int) res->status, &body, &pool.alloc,
                                    &one, &err)
            != LOYALTY_OK)
        {
            one.cls = LOYALTY_SF_TRANSIENT;
        }

        snprintf(why, sizeof(why), "Bulk API HTTP %ld %.*s: %.*s",
                 res->status, (int) (one.code.len > 60 ? 60 : one.code.len),
                 one.code.len ? (const char *) one.code.data : "",
                 (int) (one.message.len > 100 ? 100 : one.message.len),
                 one.message.len ? (const char *) one.message.data : "");

        loyalty_log(LOYALTY_LOG_WARN, NULL, dest->name, (int) res->status,
                    (long) (res->us / 1000), "Bulk API job %s refused: "
                    "HTTP %ld %.*s", b->id[0] ? b->id : "(not created)",
                    res->status, (int) (one.code.len > 60 ? 60
                                        : one.code.len),
                    one.code.len ? (const char *) one.code.data : "");

        if (one.cls == LOYALTY_SF_AUTH || res->status == 401) {
            /* a new token for the next try; the records are retried */
            loyalty_sf_auth_failed(sf, c->token);
            one.cls = LOYALTY_SF_TRANSIENT;

        } else if (one.cls == LOYALTY_SF_LIMIT) {
            loyalty_rl_pause(dest, dest->limit_pause_ms, res->status);

        } else {
            one.cls = LOYALTY_SF_TRANSIENT;
        }

        loyalty_sf_pool_free(&pool);
        loyalty_sf_bulk_end(c, one.cls, why, res->status);
        return;
    }

    switch (b->step) {

    case LOYALTY_SF_BULK_CREATE:
        if (loyalty_sf_job_parse(&body, &pool.alloc, &job, &err)
            != LOYALTY_OK)
        {
            loyalty_sf_pool_free(&pool);
            loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT,
                                "Bulk API: job info not understood", 200);
            return;
        }

        snprintf(b->id, sizeof(b->id), "%.*s", (int) job.id.len,
                 job.id.data);
        loyalty_log(LOYALTY_LOG_INFO, NULL, dest->name, (int) res->status,
                    (long) (res->us / 1000), "Bulk API job %s: %zu %s "
                    "records, %zu bytes", b->id, c->n,
                    c->items[0]->flow->object, b->csv_len);
        b->step = LOYALTY_SF_BULK_UPLOAD;
        break;

    case LOYALTY_SF_BULK_UPLOAD:
        b->step = LOYALTY_SF_BULK_CLOSE;
        break;

    case LOYALTY_SF_BULK_CLOSE:
        b->step = LOYALTY_SF_BULK_POLL;
        b->poll_ms = LOYALTY_SF_BULK_POLL_MIN;
        loyalty_sf_pool_free(&pool);
        loyalty_sf_bulk_poll_later(c);
        return;

    case LOYALTY_SF_BULK_POLL:
        if (loyalty_sf_job_parse(&body, &pool.alloc, &job, &err)
            != LOYALTY_OK)
        {
            job.state = LOYALTY_SF_JOB_UNKNOWN;
        }

        if (!loyalty_sf_job_done(job.state)) {
            loyalty_sf_pool_free(&pool);
            loyalty_sf_bulk_poll_later(c);
            return;
        }

        loyalty_log(LOYALTY_LOG_INFO, NULL, dest->name, 200, -1,
                    "Bulk API job %s %s: %lld processed, %lld failed%s%.*s",
                    b->id, job.state == LOYALTY_SF_JOB_COMPLETE
                    ? "complete" : job.state == LOYALTY_SF_JOB_FAILED
                    ? "failed" : "aborted", (long long) job.processed,
                    (long long) job.failed, job.error.len ? ": " : "",
                    (int) (job.error.len > 200 ? 200 : job.error.len),
                    job.error.len ? (const char *) job.error.data : "");
        b->step = LOYALTY_SF_BULK_SUCCESSFUL;
        break;

    case LOYALTY_SF_BULK_SUCCESSFUL:
    case LOYALTY_SF_BULK_FAILED:
        if (loyalty_sf_bulk_results(c, &body) != LOYALTY_OK) {
            loyalty_log(LOYALTY_LOG_WARN, NULL, dest->name, 200, -1,
                        "Bulk API job %s: results not understood", b->id);
        }

        b->step++;
        break;

    case LOYALTY_SF_BULK_UNPROCESSED:
        /* unprocessed rows and rows without a result stay transient */
        loyalty_sf_pool_free(&pool);
        loyalty_sf_bulk_end(c, LOYALTY_SF_SUCCESS, NULL, 200);
        return;
    }

    loyalty_sf_pool_free(&pool);
    loyalty_sf_bulk_step(c);
}


static void
loyalty_sf_bulk_poll_later(loyalty_sf_call_t *c)
{
    uint64_t            now, lease;
    struct timeval      tv;
    loyalty_sf_bulk_t  *b;

    b = c->bulk;
    now = loyalty_now_ms();

    if (now - b->started_ms > c->sf->dest->bulk_timeout_ms) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, c->sf->dest->name, -1, -1,
                    "Bulk API job %s not finished after %u ms: its records "
                    "are retried", b->id, c->sf->dest->bulk_timeout_ms);
        loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, "Bulk API job not "
                            "finished within bulk_timeout_ms", 0);
        return;
    }

    /* the record leases outlive the job: renewed at a third of theirs */
    lease = c->sf->dest->timeout_ms * 2 > 1000
            ? c->sf->dest->timeout_ms * 2 : 1000;

    if (now - b->renewed_ms >= lease / 3) {
        loyalty_sf_bulk_renew(c);
        b->renewed_ms = now;
    }

    if (b->poll_ms > lease / 3) {
        b->poll_ms = (unsigned) (lease / 3);
    }

    tv.tv_sec = b->poll_ms / 1000;
    tv.tv_usec = (b->poll_ms % 1000) * 1000;
    b->waiting = 1;
    evtimer_add(b->timer, &tv);

    b->poll_ms *= 2;
    if (b->poll_ms > LOYALTY_SF_BULK_POLL_MAX) {
        b->poll_ms = LOYALTY_SF_BULK_POLL_MAX;
    }
}


static void
loyalty_sf_bulk_timer(evutil_socket_t fd, short what, void *arg)
{
    loyalty_sf_call_t  *c;

    (void) fd;
    (void) what;

    c = arg;
    ((loyalty_sf_bulk_t *) c->bulk)->waiting = 0;

    if (loyalty_cycle.stopping) {
        loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, NULL, -1);
        return;
    }

    loyalty_sf_bulk_step(c);
}


static void
loyalty_sf_bulk_renew(loyalty_sf_call_t *c)
{
    size_t       i, k;
    const char  *args[LOYALTY_SF_BULK_RENEW + 2];
    char         ms[24];

    snprintf(ms, sizeof(ms), "%u", c->sf->dest->timeout_ms * 2 > 1000
             ? c->sf->dest->timeout_ms * 2 : 1000);

    for (i = 0, k = 0; i <= c->n; i++) {
        if (i < c->n && c->items[i]->locked) {
            args[k++] = c->items[i]->lock;
        }

        if (k > 0 && (k == LOYALTY_SF_BULK_RENEW || i == c->n)) {
            args[k] = loyalty_cycle.consumer;
            args[k + 1] = ms;

            (void) loyalty_consumer_eval("salesforce bulk leases",
                                         loyalty_sf_bulk_renew_script,
                                         (int) k, args, k + 2, NULL, NULL);
            k = 0;
        }
    }
}


/*
 * A results file: the header names sf__Error (failed rows) and the
 * external id column; each row is joined to its record by that value.
 */

static int
loyalty_sf_bulk_results(loyalty_sf_call_t *c, const loyalty_str_t *csv)
{
    int                    rc;
    size_t                 n, i, lo, hi, mid, col_key, col_err, nf, max;
    loyalty_err_t          err;
    loyalty_str_t         *f;
    loyalty_sf_bulk_t     *b;
    loyalty_sf_result_t   *rs, parsed;
    loyalty_csv_reader_t   r;
    const char            *ext;
    char                   key[256];

    b = c->bulk;
    ext = c->items[0]->flow->external_id;
    max = c->items[0]->flow->fields_count + 8;

    f = loyalty_sf_palloc(&b->pool, max * sizeof(loyalty_str_t));
    if (f == NULL) {
        return LOYALTY_ERROR;
    }

    memset(&err, 0, sizeof(err));
    loyalty_csv_reader_init(&r, csv, &b->pool.alloc);

    if (loyalty_csv_next(&r, f, max, &nf, &err) != LOYALTY_OK) {
        return csv->len == 0 ? LOYALTY_OK : LOYALTY_ERROR;
    }

    col_key = nf;
    col_err = nf;

    for (i = 0; i < nf; i++) {
        if (f[i].len == strlen(ext)
            && strncasecmp((const char *) f[i].data, ext, f[i].len) == 0)
        {
            col_key = i;

        } else if (loyalty_str_eq(&f[i], "sf__Error")) {
            col_err = i;
        }
    }

    if (col_key == nf) {
        return LOYALTY_ERROR;
    }

    while ((rc = loyalty_csv_next(&r, f, max, &n, &err)) == LOYALTY_OK) {
        if (n <= col_key || f[col_key].len >= sizeof(key)) {
            continue;
        }

        memcpy(key, f[col_key].data, f[col_key].len);
        key[f[col_key].len] = '\0';

        lo = 0;
        hi = c->n;

        while (lo < hi) {
            mid = lo + (hi - lo) / 2;

            if (strcasecmp(c->items[b->order[mid]]->key, key) < 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }

        if (lo == c->n || strcasecmp(c->items[b->order[lo]]->key, key) != 0)
        {
            continue;           /* not ours: never guess */
        }

        i = b->order[lo];
        rs = &b->results[i];
        b->seen[i] = 1;

        if (col_err == nf) {
            rs->cls = LOYALTY_SF_SUCCESS;
            continue;
        }

        if (n <= col_err) {
            continue;
        }

        loyalty_sf_bulk_error_parse(&f[col_err], &parsed);

        /* the strings outlive the answer: copied into the job's pool */
        rs->cls = parsed.cls;
        rs->code.len = parsed.code.len;
        rs->code.data = loyalty_alloc_copy(&b->pool.alloc, parsed.code.data,
                                           parsed.code.len + 1);
        rs->message.len = parsed.message.len;
        rs->message.data = loyalty_alloc_copy(&b->pool.alloc,
                                              parsed.message.data,
                                              parsed.message.len + 1);
        rs->fields.len = parsed.fields.len;
        rs->fields.data = loyalty_alloc_copy(&b->pool.alloc,
                                             parsed.fields.data,
                                             parsed.fields.len + 1);

        if (rs->code.data == NULL || rs->message.data == NULL
            || rs->fields.data == NULL)
        {
            memset(rs, 0, sizeof(*rs));
            rs->cls = LOYALTY_SF_TRANSIENT;
        }
    }

    return rc == LOYALTY_DECLINED ? LOYALTY_OK : LOYALTY_ERROR;
}


/*
 * Every record gets its outcome through loyalty_sf_finish (which
 * commits the delta state and frees the call): per result row after a
 * finished job, else cls for all; status -1: abandoned, left pending.
 */

static void
loyalty_sf_bulk_end(loyalty_sf_call_t *c, loyalty_sf_class_e cls,
    const char *why, long status)
{
    size_t                i;
    loyalty_sf_bulk_t    *b;
    loyalty_sf_result_t  *rs;
    static const loyalty_str_t  code = loyalty_string("BULK_UNPROCESSED");
    static const loyalty_str_t  msg =
        loyalty_string("no result row from the Bulk API job");

    b = c->bulk;

    if (b->waiting) {
        evtimer_del(b->timer);
        b->waiting = 0;
    }

    if (status == 200 && cls == LOYALTY_SF_SUCCESS && b->results != NULL) {
        for (i = 0; i < c->n; i++) {
            rs = &b->results[i];

            if (!b->seen[i]) {
                rs->cls = LOYALTY_SF_TRANSIENT;
                rs->code = code;
                rs->message = msg;
            }
        }

        loyalty_sf_finish(c, LOYALTY_SF_SUCCESS, b->results, NULL, 200,
                          b->us);
        return;
    }

    loyalty_sf_finish(c, cls, NULL, why, status, b->us);
}


/* SIGTERM: a job waiting on its poll timer ends now, left pending */

void
loyalty_sf_bulk_cancel(loyalty_sf_t *sf)
{
    loyalty_sf_call_t  *c, *next;
    loyalty_sf_bulk_t  *b;

    for (c = sf->calls; c != NULL; c = next) {
        next = c->next;
        b = c->bulk;

        if (b != NULL && b->waiting) {
            loyalty_sf_bulk_end(c, LOYALTY_SF_TRANSIENT, NULL, -1);
        }
    }
}


void
loyalty_sf_bulk_free(loyalty_sf_call_t *c)
{
    loyalty_sf_bulk_t  *b;

    b = c->bulk;
    c->bulk = NULL;

    if (b->timer != NULL) {
        event_free(b->timer);
    }

    free(b->csv);
    free(b->order);
    free(b->seen);
    free(b->results);
    loyalty_sf_pool_free(&b->pool);
    free(b);

    if (c->items != c->few) {
        free(c->items);
        c->items = c->few;
    }
}
