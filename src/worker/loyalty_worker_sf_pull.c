/*
 * Copyright (C) loyalty-edge authors
 *
 * The scheduled pull, CRM -> loyalty.  Every interval_ms one worker
 * (a Redis lease per pull, loyalty:{S}:pull:<name>:lease, and the time
 * of the last complete run in loyalty:{S}:pull:<name>) asks Salesforce
 *
 *   SELECT <fields>, Id, SystemModstamp, LastModifiedById FROM <object>
 *   WHERE SystemModstamp >= <from> AND SystemModstamp < <upto>
 *   [AND <where>] ORDER BY SystemModstamp, Id
 *
 * with the token of the `from` destination (shared in Redis), and
 * follows nextRecordsUrl.  <from> is the cursor (whole seconds: every
 * record stamped before it is in the stream) less overlap_ms, <upto>
 * is Redis' clock less lag_ms.  The range is half open and the cursor
 * after a page is the second of its last record, not past it: records
 * sharing that second on the next page are read again by a run that
 * starts there (after a crash) and dropped by the dedupe, never lost.
 *
 * Each page is ONE script: per record the dedupe key (SET NX EX, as
 * the edge does) and the XADD of an envelope built like the edge's
 * (loyalty_envelope_encode), then the cursor, all only while this
 * worker still holds the lease; a crash re-reads at most one page.
 * Records last modified by the token's own user are our own writes
 * coming back (echoes): dropped and counted, never enqueued.
 *
 * Everything runs on the worker's event base: the lease and page
 * scripts on the cmd connection, the queries through the HTTP layer
 * (a slot of the destination, its rate limit).  SIGTERM and reload:
 * no new run or page starts; the lease is freed.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/buffer.h>
#include <hiredis/hiredis.h>

#include "loyalty_worker_sf.h"
#include "loyalty_worker_sf_pull.h"
#include "loyalty_identity.h"
#include "loyalty_time.h"


#define LOYALTY_PULL_RETRY_MS    1000     /* Redis away, no user: again */
#define LOYALTY_PULL_BODY_MAX    (64 * 1024 * 1024)
#define LOYALTY_PULL_KV_MAX      112      /* fields + what the pull adds */


enum {
    LOYALTY_PULL_IDLE = 0,              /* the timer is armed */
    LOYALTY_PULL_LEASE,                 /* the lease script runs */
    LOYALTY_PULL_TOKEN,                 /* waiting for a token */
    LOYALTY_PULL_QUERY,                 /* a page is asked for */
    LOYALTY_PULL_PAGE                   /* the page script runs */
};


typedef struct {
    loyalty_pull_conf_t  *pc;
    loyalty_sf_t         *sf;
    struct event         *timer;
    loyalty_http_req_t    req;
    char                 *url;             /* this page's */
    char                 *next;            /* nextRecordsUrl, or NULL */
    char                 *packed;          /* the page's events, JSON */
    unsigned              state;
    unsigned              retried:1;       /* after a 401 */
    unsigned              clipped:1;       /* window_ms cut the range */
    unsigned              last:1;          /* the page is the last */
    int64_t               from_s;          /* this run's range */
    int64_t               upto_s;
    int64_t               page_cursor;     /* the cursor after the page */
    int64_t               rec_ms;          /* the last record's stamp */
    uint64_t              now_ms;          /* Redis' clock at the lease */
    unsigned              pages;
    uint64_t              records;         /* this run, for its log */
    uint64_t              enqueued;
    uint64_t              echoes;
    uint64_t              duplicates;
    uint64_t              page_records;
    uint64_t              page_echoes;
    char                  token[512];      /* the one sent */
    char                  key_cursor[160];
    char                  key_lease[168];
    char                  key_stream[96];
    char                  seen[96];
    char                  lease_ms[24];
} loyalty_pull_t;


/* a value at a path of the event's data */
typedef struct {
    const char           *path;
    loyalty_sf_value_t    value;
    unsigned              used:1;
} loyalty_pull_kv_t;


/*
 * KEYS: cursor hash, lease; ARGV: consumer, lease ms, interval ms.
 * {1, now ms, cursor}: ours, run; {0, ms}: not now, ask again in ms
 * (another worker runs it, or the last run is younger than interval)
 */
static const char  loyalty_pull_lease_script[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local pttl = redis.call('PTTL', KEYS[2]) "
    "if pttl > 0 then return {0, pttl} end "
    "local ran = tonumber(redis.call('HGET', KEYS[1], 'ran') or '0') "
    "local due = ran + tonumber(ARGV[3]) - now "
    "if due > 0 then return {0, due} end "
    "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2]) "
    "return {1, now, redis.call('HGET', KEYS[1], 'cursor') or ''}";

/*
 * KEYS: stream, cursor hash, lease; ARGV: consumer, lease ms, dedupe
 * window s, stream cap, cursor (unix s), end (0: more pages, 1: done,
 * catch up at once, 2: done), seen prefix, events [[id, [f, v, ...]]],
 * cursor as text.  {0, added, duplicates}; {-1}: the lease is not ours
 * (nothing written); {-2, added, duplicates}: the stream is at its cap
 * (the cursor stays: the rest comes again, the added ones as dups).
 */
static const char  loyalty_pull_page_script[] =
    "if redis.call('GET', KEYS[3]) ~= ARGV[1] then return {-1} end "
    "local ev = cjson.decode(ARGV[8]) "
    "local free = tonumber(ARGV[4]) - redis.call('XLEN', KEYS[1]) "
    "local added, dup = 0, 0 "
    "for i = 1, #ev do "
    "  if free <= 0 then return {-2, added, dup} end "
    "  if redis.call('SET', ARGV[7] .. ev[i][1], '1', 'NX', 'EX', ARGV[3]) "
    "  then "
    "    redis.call('XADD', KEYS[1], '*', unpack(ev[i][2])) "
    "    added = added + 1 "
    "    free = free - 1 "
    "  else "
    "    dup = dup + 1 "
    "  end "
    "end "
    "local c = tonumber(redis.call('HGET', KEYS[2], 'cursor') or '0') "
    "if tonumber(ARGV[5]) > c then "
    "  redis.call('HSET', KEYS[2], 'cursor', ARGV[5], 'cursor_utc', ARGV[9]) "
    "end "
    "if ARGV[6] == '0' then "
    "  redis.call('PEXPIRE', KEYS[3], ARGV[2]) "
    "else "
    "  if ARGV[6] == '2' then "
    "    local t = redis.call('TIME') "
    "    redis.call('HSET', KEYS[2], 'ran', tonumber(t[1]) * 1000 "
    "               + math.floor(tonumber(t[2]) / 1000)) "
    "  end "
    "  redis.call('DEL', KEYS[3]) "
    "end "
    "return {0, added, dup}";

/* KEYS: lease, cursor hash; ARGV: consumer, 1 to record the run's
 * time (the next one is due interval_ms later, whichever worker) */
static const char  loyalty_pull_unlock_script[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end "
    "if ARGV[2] == '1' then "
    "  local t = redis.call('TIME') "
    "  redis.call('HSET', KEYS[2], 'ran', tonumber(t[1]) * 1000 "
    "             + math.floor(tonumber(t[2]) / 1000)) "
    "end "
    "return redis.call('DEL', KEYS[1])";


static void loyalty_pull_later(loyalty_pull_t *p, uint64_t ms);
static void loyalty_pull_timer(evutil_socket_t fd, short what, void *arg);
static void loyalty_pull_leased(void *r, void *data);
static void loyalty_pull_token(loyalty_pull_t *p);
static void loyalty_pull_query(loyalty_pull_t *p);
static void loyalty_pull_answer(loyalty_http_req_t *r,
    const loyalty_http_res_t *res);
static int loyalty_pull_page(loyalty_pull_t *p, const char *body,
    size_t len);
static int loyalty_pull_record(loyalty_pull_t *p, loyalty_json_t *rec,
    loyalty_sf_pool_t *pool, loyalty_jw_t *out);
static void loyalty_pull_data(loyalty_jw_t *w, loyalty_pull_kv_t *kv,
    size_t n, const char *prefix, size_t plen);
static void loyalty_pull_committed(void *r, void *data);
static void loyalty_pull_end(loyalty_pull_t *p, int ok, uint64_t again_ms);
static void loyalty_pull_unlock(loyalty_pull_t *p, int ran);
static void loyalty_pull_release(loyalty_http_req_t *r);
static int64_t loyalty_pull_utc_ms(const char *utc);
static void loyalty_pull_iso(int64_t s, char *buf);


int
loyalty_pull_init(loyalty_cycle_t *cycle)
{
    unsigned              i;
    loyalty_pull_t       *p;
    loyalty_pull_conf_t  *pc;

    for (i = 0; i < cycle->conf->pulls_count; i++) {
        pc = &cycle->conf->pulls[i];

        p = calloc(1, sizeof(loyalty_pull_t));
        if (p == NULL) {
            return LOYALTY_ERROR;
        }

        pc->run = p;
        p->pc = pc;
        p->sf = pc->dest->sf;

        /* one hash tag: the store's, like its stream and dedupe keys */
        snprintf(p->key_cursor, sizeof(p->key_cursor),
                 "loyalty:{%s}:pull:%s", pc->store, pc->name);
        snprintf(p->key_lease, sizeof(p->key_lease), "%s:lease",
                 p->key_cursor);
        snprintf(p->key_stream, sizeof(p->key_stream), "loyalty:{%s}:in",
                 pc->store);
        snprintf(p->seen, sizeof(p->seen), "loyalty:{%s}:seen:", pc->store);

        /* a page: one query and one script; a dead holder's expires */
        snprintf(p->lease_ms, sizeof(p->lease_ms), "%u",
                 2 * pc->dest->timeout_ms + 10000);

        p->timer = evtimer_new(cycle->base, loyalty_pull_timer, p);
        if (p->timer == NULL) {
            return LOYALTY_ERROR;
        }

        /* soon after the start: Redis connects meanwhile */
        loyalty_pull_later(p, 100 + (uint64_t) (random() % 400));
    }

    return LOYALTY_OK;
}


static void
loyalty_pull_later(loyalty_pull_t *p, uint64_t ms)
{
    struct timeval  tv;

    p->state = LOYALTY_PULL_IDLE;

    if (loyalty_cycle.stopping) {
        return;
    }

    tv.tv_sec = (time_t) (ms / 1000);
    tv.tv_usec = (suseconds_t) ((ms % 1000) * 1000);
    evtimer_add(p->timer, &tv);
}


static void
loyalty_pull_timer(evutil_socket_t fd, short what, void *arg)
{
    loyalty_pull_t  *p;
    const char      *args[5];
    char             interval[24];

    (void) fd;
    (void) what;

    p = arg;

    snprintf(interval, sizeof(interval), "%u", p->pc->interval_ms);

    args[0] = p->key_cursor;
    args[1] = p->key_lease;
    args[2] = loyalty_cycle.consumer;
    args[3] = p->lease_ms;
    args[4] = interval;

    p->state = LOYALTY_PULL_LEASE;

    if (loyalty_consumer_eval("pull lease", loyalty_pull_lease_script, 2,
                              args, 5, loyalty_pull_leased, p)
        != LOYALTY_OK)
    {
        loyalty_pull_later(p, LOYALTY_PULL_RETRY_MS);
    }
}


static void
loyalty_pull_leased(void *r, void *data)
{
    int64_t               cursor, span;
    redisReply           *reply;
    loyalty_pull_t       *p;
    loyalty_pull_conf_t  *pc;

    reply = r;
    p = data;
    pc = p->pc;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_INTEGER
        || reply->element[1]->type != REDIS_REPLY_INTEGER)
    {
        loyalty_pull_later(p, LOYALTY_PULL_RETRY_MS);
        return;
    }

    if (reply->element[0]->integer == 0) {
        /* another worker runs it, or it ran lately */
        span = reply->element[1]->integer;
        loyalty_pull_later(p, span < 10 ? 10 : (uint64_t) span);
        return;
    }

    if (reply->elements != 3
        || reply->element[2]->type != REDIS_REPLY_STRING)
    {
        loyalty_pull_later(p, LOYALTY_PULL_RETRY_MS);
        return;
    }

    if (loyalty_cycle.stopping) {
        loyalty_pull_unlock(p, 0);
        p->state = LOYALTY_PULL_IDLE;
        return;
    }

    p->now_ms = (uint64_t) reply->element[1]->integer;
    cursor = reply->element[2]->len
             ? strtoll(reply->element[2]->str, NULL, 10) : 0;

    /* [from, upto) in whole seconds, as Salesforce stamps records */
    p->upto_s = (int64_t) (p->now_ms - pc->lag_ms) / 1000;
    p->from_s = cursor > 0
                ? cursor - (int64_t) (pc->overlap_ms + 999) / 1000
                : (int64_t) (p->now_ms - pc->window_ms) / 1000;

    p->clipped = 0;
    span = (int64_t) pc->window_ms / 1000;

    if (p->upto_s - p->from_s > span) {
        /* a long outage: caught up window by window, back to back */
        p->upto_s = p->from_s + span;
        p->clipped = 1;
    }

    if (cursor > 0) {
        pc->m_cursor = cursor;
    }

    p->retried = 0;
    p->pages = 0;
    p->records = 0;
    p->enqueued = 0;
    p->echoes = 0;
    p->duplicates = 0;
    free(p->next);
    p->next = NULL;

    if (p->upto_s <= p->from_s) {
        loyalty_pull_end(p, 1, pc->interval_ms);
        return;
    }

    loyalty_pull_token(p);
}


/* the destination's token (and its user, to see the echoes) */

static void
loyalty_pull_token(loyalty_pull_t *p)
{
    if (p->sf->token[0] == '\0') {
        p->state = LOYALTY_PULL_TOKEN;
        loyalty_sf_auth_need(p->sf);
        return;
    }

    if (p->sf->user_id[0] == '\0') {
        loyalty_log(LOYALTY_LOG_ERR, NULL, p->pc->dest->name, -1, -1,
                    "pull %s: the token answer named no user (id), so "
                    "echoes of our own writes cannot be recognised: not "
                    "pulling", p->pc->name);
        loyalty_pull_end(p, 0, p->pc->interval_ms);
        return;
    }

    loyalty_pull_query(p);
}


void
loyalty_pull_token_ready(loyalty_sf_t *sf)
{
    unsigned         i;
    loyalty_pull_t  *p;
    loyalty_conf_t  *conf;

    conf = loyalty_cycle.conf;

    for (i = 0; i < conf->pulls_count; i++) {
        p = conf->pulls[i].run;

        if (p != NULL && p->sf == sf && p->state == LOYALTY_PULL_TOKEN) {
            loyalty_pull_token(p);
        }
    }
}


static void
loyalty_pull_query(loyalty_pull_t *p)
{
    char                 *q, *e;
    size_t                n;
    struct curl_slist    *h, *list;
    loyalty_pull_conf_t  *pc;
    char                  from[32], upto[32], line[600];

    pc = p->pc;

    free(p->url);
    p->url = NULL;

    if (p->next != NULL) {
        n = strlen(p->sf->instance_url) + strlen(p->next) + 1;
        p->url = malloc(n);
        if (p->url != NULL) {
            snprintf(p->url, n, "%s%s", p->sf->instance_url, p->next);
        }

    } else {
        loyalty_pull_iso(p->from_s, from);
        loyalty_pull_iso(p->upto_s, upto);

        n = strlen(pc->select) + strlen(pc->object)
            + (pc->where ? strlen(pc->where) : 0) + 200;
        q = malloc(n);

        if (q != NULL) {
            snprintf(q, n, "SELECT %s FROM %s WHERE SystemModstamp >= %s "
                     "AND SystemModstamp < %s%s%s ORDER BY SystemModstamp, "
                     "Id", pc->select, pc->object, from, upto,
                     pc->where ? " AND " : "", pc->where ? pc->where : "");

            e = curl_easy_escape(NULL, q, 0);
            free(q);

            if (e != NULL) {
                n = strlen(p->sf->instance_url) + strlen(e)
                    + strlen(pc->dest->api_version) + 64;
                p->url = malloc(n);
                if (p->url != NULL) {
                    snprintf(p->url, n, "%s/services/data/v%s/query?q=%s",
                             p->sf->instance_url, pc->dest->api_version, e);
                }
                curl_free(e);
            }
        }
    }

    /* the token that fails (401) is the one to invalidate */
    snprintf(p->token, sizeof(p->token), "%s", p->sf->token);
    snprintf(line, sizeof(line), "Authorization: Bearer %s", p->token);

    list = curl_slist_append(NULL, line);
    h = list;
    h = h ? curl_slist_append(list, "Accept: application/json") : NULL;

    if (h != NULL && pc->page_size) {
        snprintf(line, sizeof(line), "Sforce-Query-Options: batchSize=%u",
                 pc->page_size);
        h = curl_slist_append(list, line);
    }

    memset(line, 0, sizeof(line));

    if (p->url == NULL || h == NULL) {
        curl_slist_free_all(list);
        loyalty_log(LOYALTY_LOG_ERR, NULL, pc->dest->name, -1, -1,
                    "pull %s: out of memory", pc->name);
        loyalty_pull_end(p, 0, pc->interval_ms);
        return;
    }

    memset(&p->req, 0, sizeof(p->req));
    p->req.dest = pc->dest;
    p->req.method = "GET";
    p->req.url = p->url;
    p->req.headers = list;
    p->req.body_max = LOYALTY_PULL_BODY_MAX;
    p->req.handler = loyalty_pull_answer;
    p->req.release = loyalty_pull_release;
    p->req.data = p;

    p->state = LOYALTY_PULL_QUERY;

    /* a slot of the destination, of the org and its rate limit, like a
     * call */
    loyalty_sf_queue(p->sf, &p->req);
}


static void
loyalty_pull_release(loyalty_http_req_t *r)
{
    curl_slist_free_all(r->headers);
    r->headers = NULL;
}


static void
loyalty_pull_answer(loyalty_http_req_t *r, const loyalty_http_res_t *res)
{
    int                   rc;
    loyalty_err_t         err;
    loyalty_str_t         body;
    loyalty_pull_t       *p;
    loyalty_sf_pool_t     pool;
    loyalty_sf_result_t   one;
    loyalty_pull_conf_t  *pc;

    p = r->data;
    pc = p->pc;

    curl_slist_free_all(r->headers);
    r->headers = NULL;

    if (res->abandoned || loyalty_cycle.stopping) {
        /* SIGTERM or reload: the cursor stays, the next run reads on */
        loyalty_pull_end(p, 0, 0);
        return;
    }

    if (res->error != NULL) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, pc->dest->name, -1,
                    (long) (res->us / 1000), "pull %s: query failed: %s",
                    pc->name, res->error);
        loyalty_pull_end(p, 0, pc->interval_ms);
        return;
    }

    if (res->status == 200) {
        rc = loyalty_pull_page(p, res->body, res->body_len);

        if (rc != LOYALTY_OK) {
            loyalty_log(LOYALTY_LOG_WARN, NULL, pc->dest->name, 200,
                        (long) (res->us / 1000), "pull %s: query answer "
                        "not understood", pc->name);
            loyalty_pull_end(p, 0, pc->interval_ms);
        }

        return;
    }

    loyalty_sf_pool_init(&pool);
    memset(&one, 0, sizeof(one));
    memset(&err, 0, sizeof(err));
    body.data = (u_char *) res->body;
    body.len = res->body_len;

    if (loyalty_sf_answer_parse((int) res->status, &body, &pool.alloc, &one,
                                &err)
        != LOYALTY_OK)
    {
        one.cls = LOYALTY_SF_TRANSIENT;
    }

    if ((one.cls == LOYALTY_SF_AUTH || res->status == 401) && !p->retried) {
        /* one new token and one more try of this page */
        p->retried = 1;
        loyalty_sf_auth_failed(p->sf, p->token);
        loyalty_sf_pool_free(&pool);
        loyalty_pull_token(p);
        return;
    }

    if (one.cls == LOYALTY_SF_LIMIT) {
        loyalty_rl_pause(pc->dest, pc->dest->limit_pause_ms, res->status);
    }

    /* a query error quotes the query, not records: MALFORMED_QUERY... */
    loyalty_log(LOYALTY_LOG_ERR, NULL, pc->dest->name, (int) res->status,
                (long) (res->us / 1000), "pull %s: query refused: HTTP %ld "
                "%.*s: %.*s", pc->name, res->status,
                (int) (one.code.len > 60 ? 60 : one.code.len),
                one.code.len ? (const char *) one.code.data : "",
                (int) (one.message.len > 200 ? 200 : one.message.len),
                one.message.len ? (const char *) one.message.data : "");

    loyalty_sf_pool_free(&pool);
    loyalty_pull_end(p, 0, pc->interval_ms);
}


/* a page of records: the events, and the script that enqueues them */

static int
loyalty_pull_page(loyalty_pull_t *p, const char *body, size_t len)
{
    int                   rc;
    loyalty_jw_t          w;
    loyalty_err_t         err;
    loyalty_str_t         text, next, packed;
    loyalty_json_t       *json, *records, *rec, *done;
    loyalty_sf_pool_t     pool;
    loyalty_pull_conf_t  *pc;
    const char           *args[12];
    char                  cursor[24], end[2], window[24], cap[24];
    char                  utc[32];

    pc = p->pc;
    loyalty_sf_pool_init(&pool);
    memset(&err, 0, sizeof(err));

    text.data = (const u_char *) body;
    text.len = len;

    if (loyalty_json_parse(&text, &pool.alloc, &json, &err) != LOYALTY_OK
        || json->type != LOYALTY_JSON_OBJECT
        || (records = loyalty_json_get(json, "records")) == NULL
        || records->type != LOYALTY_JSON_ARRAY
        || (done = loyalty_json_get(json, "done")) == NULL
        || (done->type != LOYALTY_JSON_TRUE
            && done->type != LOYALTY_JSON_FALSE))
    {
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    free(p->next);
    p->next = NULL;

    if (done->type == LOYALTY_JSON_FALSE) {
        if (loyalty_json_scalar(json, "nextRecordsUrl", &next) != LOYALTY_OK
            || next.data[0] != '/')
        {
            loyalty_sf_pool_free(&pool);
            return LOYALTY_ERROR;
        }

        p->next = strndup((const char *) next.data, next.len);
        if (p->next == NULL) {
            loyalty_sf_pool_free(&pool);
            return LOYALTY_ERROR;
        }
    }

    p->pages++;
    p->page_records = 0;
    p->page_echoes = 0;

    /* the cursor after the last page: the range's end; after another
     * page: the second of its last record (the next page may share it) */
    p->page_cursor = p->upto_s;
    p->last = p->next == NULL;

    loyalty_jw_init(&w, &pool.alloc, len + 1024);
    loyalty_jw_array(&w, NULL);

    for (rec = records->child; rec != NULL; rec = rec->next) {
        rc = loyalty_pull_record(p, rec, &pool, &w);

        if (rc == LOYALTY_ERROR) {
            loyalty_sf_pool_free(&pool);
            return LOYALTY_ERROR;
        }

        if (!p->last && rec->next == NULL) {
            p->page_cursor = p->rec_ms / 1000;
        }
    }

    loyalty_jw_end(&w);

    if (loyalty_jw_finish(&w, &packed) != LOYALTY_OK) {
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    free(p->packed);
    p->packed = strndup((const char *) packed.data, packed.len);
    loyalty_sf_pool_free(&pool);

    if (p->packed == NULL) {
        return LOYALTY_ERROR;
    }

    p->records += p->page_records;
    p->echoes += p->page_echoes;
    pc->m_records += p->page_records;
    pc->m_echoes += p->page_echoes;

    if (p->page_echoes) {
        loyalty_log(LOYALTY_LOG_INFO, NULL, pc->dest->name, -1, -1,
                    "pull %s: %llu echo(es) of our own writes dropped",
                    pc->name, (unsigned long long) p->page_echoes);
    }

    snprintf(cursor, sizeof(cursor), "%lld", (long long) p->page_cursor);
    snprintf(window, sizeof(window), "%u", pc->dedupe_window_ms / 1000);
    snprintf(cap, sizeof(cap), "%u", pc->stream_cap);
    end[0] = !p->last ? '0' : p->clipped ? '1' : '2';
    end[1] = '\0';
    loyalty_pull_iso(p->page_cursor, utc);

    args[0] = p->key_stream;
    args[1] = p->key_cursor;
    args[2] = p->key_lease;
    args[3] = loyalty_cycle.consumer;
    args[4] = p->lease_ms;
    args[5] = window;
    args[6] = cap;
    args[7] = cursor;
    args[8] = end;
    args[9] = p->seen;
    args[10] = p->packed;
    args[11] = utc;

    p->state = LOYALTY_PULL_PAGE;

    if (loyalty_consumer_eval("pull page", loyalty_pull_page_script, 3, args,
                              12, loyalty_pull_committed, p)
        != LOYALTY_OK)
    {
        loyalty_log(LOYALTY_LOG_WARN, NULL, pc->dest->name, -1, -1,
                    "pull %s: Redis is away, the page is read again later",
                    pc->name);
        loyalty_pull_end(p, 0, 0);
    }

    return LOYALTY_OK;
}


/*
 * One record: an echo is counted and dropped; otherwise its envelope
 * [id, [field, value, ...]] is appended to out.  LOYALTY_ERROR only
 * for a record without Id or SystemModstamp (the answer is broken) or
 * no memory.
 */

static int
loyalty_pull_record(loyalty_pull_t *p, loyalty_json_t *rec,
    loyalty_sf_pool_t *pool, loyalty_jw_t *out)
{
    size_t                 i, k, n, nkv, nfv;
    int64_t                ms;
    loyalty_jw_t           w;
    loyalty_str_t          id, stamp, by, s, fv[2 * LOYALTY_ENVELOPE_FIELDS];
    loyalty_json_t        *m;
    loyalty_event_t        ev;
    loyalty_pull_kv_t      kv[LOYALTY_PULL_KV_MAX];
    loyalty_sf_mapped_t   *mapped;
    loyalty_pull_conf_t   *pc;
    struct timespec        now;
    char                   utc[LOYALTY_TIME_MAX], occurred[32], eid[160];

    pc = p->pc;

    if (rec->type != LOYALTY_JSON_OBJECT) {
        return LOYALTY_ERROR;
    }

    /* the answer names fields as the org spells them: as configured */
    for (m = rec->child; m != NULL; m = m->next) {
        for (k = 0; k < pc->fields_count; k++) {
            if (m->key.len == strlen(pc->fields[k].field)
                && strncasecmp((const char *) m->key.data,
                               pc->fields[k].field, m->key.len) == 0)
            {
                m->key.data = (const u_char *) pc->fields[k].field;
            }
        }
    }

    if (loyalty_json_scalar(rec, "Id", &id) != LOYALTY_OK
        || loyalty_json_scalar(rec, "SystemModstamp", &stamp) != LOYALTY_OK
        || id.len > 18 || loyalty_time_utc(&stamp, utc) == 0
        || !loyalty_event_id_valid(id.data, id.len))
    {
        return LOYALTY_ERROR;
    }

    p->page_records++;
    ms = loyalty_pull_utc_ms(utc);
    p->rec_ms = ms;

    /* our own write coming back: LastModifiedById is the token's user */
    if (loyalty_json_scalar(rec, "LastModifiedById", &by) == LOYALTY_OK
        && by.len >= 15 && strlen(p->sf->user_id) >= 15
        && memcmp(by.data, p->sf->user_id, 15) == 0)
    {
        p->page_echoes++;
        loyalty_log(LOYALTY_LOG_DEBUG, NULL, pc->dest->name, -1, -1,
                    "pull %s: %.*s is an echo, dropped", pc->name,
                    (int) id.len, (const char *) id.data);
        return LOYALTY_OK;
    }

    (void) loyalty_time_unix_ms(ms, occurred);

    /* deterministic: the same change pulled again is the same event */
    snprintf(eid, sizeof(eid), "sf:%s:%.*s:%lld", pc->name, (int) id.len,
             (const char *) id.data, (long long) ms);

    mapped = loyalty_sf_palloc(pool, pc->fields_count
                                     * sizeof(loyalty_sf_mapped_t));
    if (mapped == NULL) {
        return LOYALTY_ERROR;
    }

    if (loyalty_sf_map_apply(pc->map, pc->fields_count,
                             LOYALTY_SF_TO_LOYALTY, rec, &pool->alloc, mapped,
                             &n)
        == LOYALTY_ERROR)
    {
        return LOYALTY_ERROR;
    }

    memset(&ev, 0, sizeof(ev));
    nkv = 0;

    for (i = 0; i < n; i++) {
        if (mapped[i].status != LOYALTY_SF_MAPPED
            && mapped[i].source->type == LOYALTY_JSON_NULL)
        {
            /* an empty field, and nullable is off: not given */
            continue;
        }

        if (mapped[i].status != LOYALTY_SF_MAPPED) {
            /* the field's name, type and why; never the value */
            loyalty_log(LOYALTY_LOG_WARN, NULL, pc->dest->name, -1, -1,
                        "pull %s: %s.%s, left out of event %s", pc->name,
                        pc->object, mapped[i].reason, eid);
            continue;
        }

        k = (size_t) (mapped[i].map - pc->map);
        kv[nkv].path = pc->fields[k].to;
        kv[nkv].value = mapped[i].value;
        kv[nkv].used = 0;
        s = mapped[i].value.text;

        if (mapped[i].value.json != LOYALTY_SF_JSON_NULL && s.len > 0) {
            /* the envelope's identity keys, as the edge copies them */
            if (strcmp(kv[nkv].path, "customer.email") == 0) {
                if (loyalty_identity_email(&s, &pool->alloc, &ev.email)
                    != LOYALTY_OK)
                {
                    ev.email.len = 0;
                }

            } else if (strcmp(kv[nkv].path, "customer.phone") == 0) {
                if (loyalty_identity_phone(&s, pc->fields[k].country,
                                           &pool->alloc, &ev.phone)
                    != LOYALTY_OK)
                {
                    ev.phone.len = 0;
                }

            } else if (strcmp(kv[nkv].path, "customer.ext_id") == 0) {
                ev.ext_id = s;

            } else if (strcmp(kv[nkv].path, "customer.store_cid") == 0) {
                ev.store_cid = s;
            }
        }

        nkv++;
    }

    /* a person record's own Id is the customer's CRM id (the edge's
     * salesforce sender does the same) */
    if (pc->person && !pc->maps_ext_id) {
        kv[nkv].path = "customer.ext_id";
        kv[nkv].value.json = LOYALTY_SF_JSON_STRING;
        kv[nkv++].value.text = id;
        ev.ext_id = id;
    }

    kv[nkv].path = "sobject.type";
    kv[nkv].value.json = LOYALTY_SF_JSON_STRING;
    kv[nkv].value.text.data = (const u_char *) pc->object;
    kv[nkv++].value.text.len = strlen(pc->object);
    kv[nkv].path = "sobject.id";
    kv[nkv].value.json = LOYALTY_SF_JSON_STRING;
    kv[nkv++].value.text = id;
    kv[nkv].path = "sobject.system_modstamp";
    kv[nkv].value.json = LOYALTY_SF_JSON_STRING;
    kv[nkv].value.text.data = (const u_char *) occurred;
    kv[nkv++].value.text.len = strlen(occurred);

    for (i = 0; i < nkv; i++) {
        kv[i].used = 0;
    }

    loyalty_jw_init(&w, &pool->alloc, 512);
    loyalty_jw_object(&w, NULL);
    loyalty_pull_data(&w, kv, nkv, "", 0);
    loyalty_jw_end(&w);

    if (loyalty_jw_finish(&w, &ev.data) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    ev.id.data = (const u_char *) eid;
    ev.id.len = strlen(eid);
    ev.src.data = (const u_char *) "salesforce";
    ev.src.len = sizeof("salesforce") - 1;
    ev.store.data = (const u_char *) pc->store;
    ev.store.len = strlen(pc->store);
    ev.type.data = (const u_char *) pc->type;
    ev.type.len = strlen(pc->type);
    ev.topic.data = (const u_char *) pc->object;
    ev.topic.len = strlen(pc->object);
    ev.occurred.data = (const u_char *) occurred;
    ev.occurred.len = strlen(occurred);
    ev.corr = ev.id;
    clock_gettime(CLOCK_REALTIME, &now);
    ev.received = (int64_t) now.tv_sec * 1000 + now.tv_nsec / 1000000;

    nfv = loyalty_envelope_encode(&ev, fv);

    loyalty_jw_array(out, NULL);
    loyalty_jw_str(out, NULL, &ev.id);
    loyalty_jw_array(out, NULL);

    for (i = 0; i < nfv; i++) {
        loyalty_jw_str(out, NULL, &fv[i]);
    }

    loyalty_jw_end(out);
    loyalty_jw_end(out);

    return LOYALTY_OK;
}


/* the values under prefix (plen bytes, "customer." ...) as members */

static void
loyalty_pull_data(loyalty_jw_t *w, loyalty_pull_kv_t *kv, size_t n,
    const char *prefix, size_t plen)
{
    size_t         i, seg;
    const char    *rest, *dot;
    loyalty_str_t  name;
    char           key[260];

    for (i = 0; i < n; i++) {
        if (kv[i].used || strncmp(kv[i].path, prefix, plen) != 0) {
            continue;
        }

        rest = kv[i].path + plen;
        dot = strchr(rest, '.');

        if (dot == NULL) {
            name.data = (const u_char *) rest;
            name.len = strlen(rest);
            loyalty_sf_value_write(w, &name, &kv[i].value);
            kv[i].used = 1;
            continue;
        }

        /* an object: every value below it, at once */
        seg = (size_t) (dot - rest);
        memcpy(key, rest, seg);
        key[seg] = '\0';

        loyalty_jw_object(w, key);
        loyalty_pull_data(w, kv, n, kv[i].path, plen + seg + 1);
        loyalty_jw_end(w);
    }
}


static void
loyalty_pull_committed(void *r, void *data)
{
    redisReply           *reply;
    loyalty_pull_t       *p;
    loyalty_pull_conf_t  *pc;
    long long             rc, added, dup;

    reply = r;
    p = data;
    pc = p->pc;

    free(p->packed);
    p->packed = NULL;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        loyalty_log(LOYALTY_LOG_WARN, NULL, pc->dest->name, -1, -1,
                    "pull %s: the page was not enqueued (%s); it is read "
                    "again", pc->name, reply == NULL ? "Redis is away"
                    : reply->type == REDIS_REPLY_ERROR ? reply->str
                    : "unexpected answer");
        loyalty_pull_end(p, 0, reply == NULL ? 0 : pc->interval_ms);
        return;
    }

    rc = reply->element[0]->integer;

    if (rc == -1) {
        /* our lease ran out and another worker took the pull over */
        loyalty_log(LOYALTY_LOG_WARN, NULL, pc->dest->name, -1, -1,
                    "pull %s: lease lost, the page was not enqueued",
                    pc->name);
        p->state = LOYALTY_PULL_IDLE;
        loyalty_pull_later(p, pc->interval_ms);
        pc->m_failed++;
        return;
    }

    added = reply->elements > 1 ? reply->element[1]->integer : 0;
    dup = reply->elements > 2 ? reply->element[2]->integer : 0;

    p->enqueued += (uint64_t) added;
    p->duplicates += (uint64_t) dup;
    pc->m_enqueued += (uint64_t) added;
    pc->m_duplicates += (uint64_t) dup;

    if (rc == -2) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, pc->dest->name, -1, -1,
                    "pull %s: stream loyalty:{%s}:in is at stream_cap "
                    "(%u): the rest waits for the next run", pc->name,
                    pc->store, pc->stream_cap);
        loyalty_pull_end(p, 0, pc->interval_ms);
        return;
    }

    if (p->page_cursor > pc->m_cursor) {
        pc->m_cursor = p->page_cursor;
    }

    if (!p->last && !loyalty_cycle.stopping) {
        loyalty_pull_query(p);
        return;
    }

    /* a quiet org logs nothing at info */
    loyalty_log(p->records ? LOYALTY_LOG_INFO : LOYALTY_LOG_DEBUG, NULL,
                pc->dest->name, -1, -1,
                "pull %s: %llu record(s) in %u page(s): %llu enqueued, %llu "
                "already there, %llu echo(es)", pc->name,
                (unsigned long long) p->records, p->pages,
                (unsigned long long) p->enqueued,
                (unsigned long long) p->duplicates,
                (unsigned long long) p->echoes);

    if (p->last) {
        /* the script freed the lease */
        pc->m_runs++;
        p->state = LOYALTY_PULL_IDLE;
        loyalty_pull_later(p, p->clipped ? 10 : pc->interval_ms);
        return;
    }

    /* stopping between two pages: the cursor is safe in Redis */
    loyalty_pull_end(p, 0, 0);
}


/*
 * A run is over: free the lease, count it, arm the timer.  again_ms 0:
 * stopping, or Redis was away (the run is not recorded: any worker may
 * try again at once); otherwise the next run, by any worker, is due
 * interval_ms after this one, a failed one included (Salesforce down is
 * asked once per interval, not once per worker).
 */

static void
loyalty_pull_end(loyalty_pull_t *p, int ok, uint64_t again_ms)
{
    loyalty_pull_unlock(p, again_ms != 0);

    if (ok) {
        p->pc->m_runs++;

    } else {
        p->pc->m_failed++;
    }

    loyalty_pull_later(p, again_ms ? again_ms : LOYALTY_PULL_RETRY_MS);
}


static void
loyalty_pull_unlock(loyalty_pull_t *p, int ran)
{
    const char  *args[4];

    args[0] = p->key_lease;
    args[1] = p->key_cursor;
    args[2] = loyalty_cycle.consumer;
    args[3] = ran ? "1" : "0";

    (void) loyalty_consumer_eval("pull unlock", loyalty_pull_unlock_script,
                                 2, args, 4, NULL, NULL);
}


/* SIGTERM, reload: no new run, no next page; the lease is freed */

void
loyalty_pull_stop(loyalty_cycle_t *cycle)
{
    unsigned         i;
    loyalty_pull_t  *p;

    for (i = 0; i < cycle->conf->pulls_count; i++) {
        p = cycle->conf->pulls[i].run;

        if (p == NULL) {
            continue;
        }

        evtimer_del(p->timer);

        if (p->state == LOYALTY_PULL_TOKEN) {
            loyalty_pull_unlock(p, 0);
            p->state = LOYALTY_PULL_IDLE;
        }
    }
}


void
loyalty_pull_cleanup(loyalty_cycle_t *cycle)
{
    unsigned         i;
    loyalty_pull_t  *p;

    for (i = 0; i < cycle->conf->pulls_count; i++) {
        p = cycle->conf->pulls[i].run;

        if (p == NULL) {
            continue;
        }

        if (p->timer != NULL) {
            event_free(p->timer);
        }

        curl_slist_free_all(p->req.headers);
        free(p->url);
        free(p->next);
        free(p->packed);
        memset(p->token, 0, sizeof(p->token));
        free(p);
        cycle->conf->pulls[i].run = NULL;
    }
}


/* "2026-11-25T03:19:42.000Z" (loyalty_time_utc's form) -> unix ms */

static int64_t
loyalty_pull_utc_ms(const char *utc)
{
    int         y, mo, d, h, mi, s, ms, i;
    struct tm   tm;

    if (sscanf(utc, "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s)
        != 6)
    {
        return 0;
    }

    ms = 0;

    if (utc[19] == '.') {
        for (i = 0; i < 3; i++) {
            ms *= 10;
            if (isdigit((u_char) utc[20 + i])) {
                ms += utc[20 + i] - '0';

            } else {
                for ( /* void */ ; i < 2; i++) {
                    ms *= 10;
                }
                break;
            }
        }
    }

    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;

    return (int64_t) timegm(&tm) * 1000 + ms;
}


/* a SOQL datetime literal: "2026-11-25T03:19:42Z" */

static void
loyalty_pull_iso(int64_t s, char *buf)
{
    if (loyalty_time_unix(s, buf) == 0) {
        strcpy(buf, "1970-01-01T00:00:00Z");
    }
}


void
loyalty_pull_metrics(loyalty_conf_t *conf, struct evbuffer *b)
{
    unsigned              i;
    loyalty_pull_conf_t  *pc;

    if (conf->pulls_count == 0) {
        return;
    }

    /* pull names are [A-Za-z0-9._-]: nothing to escape */

    evbuffer_add_printf(b, "# HELP loyalty_worker_pull_records_total "
        "Records a scheduled pull read from Salesforce.\n"
        "# TYPE loyalty_worker_pull_records_total counter\n");
    for (i = 0; i < conf->pulls_count; i++) {
        pc = &conf->pulls[i];
        evbuffer_add_printf(b, "loyalty_worker_pull_records_total"
            "{pull=\"%s\",outcome=\"enqueued\"} %llu\n"
            "loyalty_worker_pull_records_total"
            "{pull=\"%s\",outcome=\"duplicate\"} %llu\n"
            "loyalty_worker_pull_records_total"
            "{pull=\"%s\",outcome=\"echo\"} %llu\n", pc->name,
            (unsigned long long) pc->m_enqueued, pc->name,
            (unsigned long long) pc->m_duplicates, pc->name,
            (unsigned long long) pc->m_echoes);
    }

    evbuffer_add_printf(b, "# HELP loyalty_worker_pull_pulled_total "
        "Records read by the pull's queries (all outcomes).\n"
        "# TYPE loyalty_worker_pull_pulled_total counter\n");
    for (i = 0; i < conf->pulls_count; i++) {
        pc = &conf->pulls[i];
        evbuffer_add_printf(b, "loyalty_worker_pull_pulled_total"
            "{pull=\"%s\"} %llu\n", pc->name,
            (unsigned long long) pc->m_records);
    }

    evbuffer_add_printf(b, "# HELP loyalty_worker_pull_runs_total "
        "Pull runs this worker made, by outcome.\n"
        "# TYPE loyalty_worker_pull_runs_total counter\n");
    for (i = 0; i < conf->pulls_count; i++) {
        pc = &conf->pulls[i];
        evbuffer_add_printf(b, "loyalty_worker_pull_runs_total"
            "{pull=\"%s\",outcome=\"ok\"} %llu\n"
            "loyalty_worker_pull_runs_total"
            "{pull=\"%s\",outcome=\"failed\"} %llu\n", pc->name,
            (unsigned long long) pc->m_runs, pc->name,
            (unsigned long long) pc->m_failed);
    }

    evbuffer_add_printf(b, "# HELP loyalty_worker_pull_cursor_seconds "
        "The pull's cursor (unix time) as this worker last saw it.\n"
        "# TYPE loyalty_worker_pull_cursor_seconds gauge\n");
    for (i = 0; i < conf->pulls_count; i++) {
        pc = &conf->pulls[i];
        evbuffer_add_printf(b, "loyalty_worker_pull_cursor_seconds"
            "{pull=\"%s\"} %lld\n", pc->name, (long long) pc->m_cursor);
    }
}
