/*
 * Copyright (C) loyalty-edge authors
 *
 * The Redis side: consumer group "workers" on loyalty:{S}:in of every
 * store.  Two hiredis async connections on the libevent base: "rd" only
 * ever holds one XREADGROUP (it may block), "cmd" carries everything else
 * (XGROUP CREATE, XAUTOCLAIM, XACK, the dead-letter script), so an ack is
 * never queued behind a blocking read.
 *
 * Reading: first the consumer's own pending entries (ID 0, no BLOCK), so
 * a restarted worker finishes what it had, then new entries (">", BLOCK).
 * A timer runs XAUTOCLAIM for entries idle longer than claim_timeout_ms:
 * those of dead consumers and our own failed deliveries (the retry path
 * of this increment).  NOGROUP (Redis flushed or restarted without
 * persistence) recreates the groups and reads on.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "loyalty_worker.h"
#include "loyalty_json.h"


#define LOYALTY_RETRY_READ_MS   200
#define LOYALTY_RECONNECT_MS    500


typedef struct {
    char                 *key;              /* loyalty:{S}:in */
    char                 *dlq;              /* loyalty:{S}:dlq */
    unsigned              history:1;        /* reading our PEL (ID 0) */
    char                  cursor[48];       /* last history id read */
    char                  claim[48];        /* XAUTOCLAIM cursor */
} loyalty_store_t;


typedef struct {
    loyalty_cycle_t      *cycle;
    redisAsyncContext    *rd;
    redisAsyncContext    *cmd;
    loyalty_store_t      *stores;
    unsigned              nstores;
    unsigned              reading:1;
    unsigned              rd_ready:1;
    unsigned              cmd_ready:1;
    unsigned              outstanding;      /* replies awaited on cmd */
    loyalty_job_t        *jobs;             /* every job held */
    struct event         *read_timer;
    struct event         *claim_timer;
    struct event         *reconnect_timer;
    const char          **argv;
    size_t               *argvlen;
} loyalty_consumer_t;


typedef struct loyalty_arena_chunk_s  loyalty_arena_chunk_t;

struct loyalty_arena_chunk_s {
    loyalty_arena_chunk_t  *next;
    size_t                  size;
    size_t                  used;
    u_char                  data[];
};


static void loyalty_consumer_connect(loyalty_consumer_t *cs);
static redisAsyncContext *loyalty_consumer_open(loyalty_consumer_t *cs);
static void loyalty_consumer_connected(const redisAsyncContext *ac,
    int status);
static void loyalty_consumer_disconnected(const redisAsyncContext *ac,
    int status);
static void loyalty_consumer_reconnect_handler(evutil_socket_t fd,
    short what, void *arg);
static void loyalty_consumer_groups(loyalty_consumer_t *cs);
static void loyalty_consumer_group_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void loyalty_consumer_read(loyalty_consumer_t *cs);
static void loyalty_consumer_read_later(loyalty_consumer_t *cs);
static void loyalty_consumer_read_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_consumer_read_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void loyalty_consumer_claim_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_consumer_claim_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void loyalty_consumer_entry(loyalty_consumer_t *cs, unsigned store,
    redisReply *entry);
static int loyalty_consumer_held(loyalty_consumer_t *cs, unsigned store,
    const char *id);
static void loyalty_consumer_ack(loyalty_consumer_t *cs, unsigned store,
    const char *id);
static void loyalty_consumer_cmd_done(redisAsyncContext *ac, void *r,
    void *privdata);
static int loyalty_consumer_route(loyalty_consumer_t *cs, loyalty_job_t *job,
    int submit);
static int loyalty_list_has(char **list, unsigned n, const loyalty_str_t *s);
static int loyalty_json_check(const loyalty_str_t *text, loyalty_err_t *err);
static void *loyalty_arena_alloc(void *ctx, size_t size);


static loyalty_consumer_t  loyalty_consumer;


static const char  loyalty_dlq_script[] =
    "redis.call('XADD', KEYS[2], '*', unpack(ARGV, 3)) "
    "return redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])";


int
loyalty_consumer_init(loyalty_cycle_t *cycle)
{
    size_t               n;
    unsigned             i;
    loyalty_conf_t      *conf;
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;
    conf = cycle->conf;

    cs->cycle = cycle;
    cs->nstores = conf->stores_count;
    cs->stores = calloc(cs->nstores, sizeof(loyalty_store_t));
    cs->argv = calloc(2 * cs->nstores + 16, sizeof(char *));
    cs->argvlen = calloc(2 * cs->nstores + 16, sizeof(size_t));

    if (cs->stores == NULL || cs->argv == NULL || cs->argvlen == NULL) {
        return LOYALTY_ERROR;
    }

    for (i = 0; i < cs->nstores; i++) {
        n = strlen(conf->stores[i]) + sizeof("loyalty:{}:dlq");
        cs->stores[i].key = malloc(n);
        cs->stores[i].dlq = malloc(n);

        if (cs->stores[i].key == NULL || cs->stores[i].dlq == NULL) {
            return LOYALTY_ERROR;
        }

        snprintf(cs->stores[i].key, n, "loyalty:{%s}:in", conf->stores[i]);
        snprintf(cs->stores[i].dlq, n, "loyalty:{%s}:dlq", conf->stores[i]);
        cs->stores[i].history = 1;
        strcpy(cs->stores[i].cursor, "0-0");
        strcpy(cs->stores[i].claim, "0-0");
    }

    cs->read_timer = evtimer_new(cycle->base, loyalty_consumer_read_timer, cs);
    cs->claim_timer = evtimer_new(cycle->base, loyalty_consumer_claim_timer,
                                  cs);
    cs->reconnect_timer = evtimer_new(cycle->base,
                                      loyalty_consumer_reconnect_handler, cs);

    if (cs->read_timer == NULL || cs->claim_timer == NULL
        || cs->reconnect_timer == NULL)
    {
        return LOYALTY_ERROR;
    }

    loyalty_consumer_connect(cs);

    return LOYALTY_OK;
}


static void
loyalty_consumer_arm(struct event *ev, unsigned ms)
{
    struct timeval  tv;

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(ev, &tv);
}


static void
loyalty_consumer_connect(loyalty_consumer_t *cs)
{
    if (cs->cycle->stopping) {
        return;
    }

    if (cs->cmd == NULL) {
        cs->cmd = loyalty_consumer_open(cs);
    }

    if (cs->rd == NULL) {
        cs->rd = loyalty_consumer_open(cs);
    }

    if (cs->cmd == NULL || cs->rd == NULL) {
        loyalty_consumer_arm(cs->reconnect_timer, LOYALTY_RECONNECT_MS);
    }
}


static redisAsyncContext *
loyalty_consumer_open(loyalty_consumer_t *cs)
{
    loyalty_conf_t     *conf;
    redisAsyncContext  *ac;

    conf = cs->cycle->conf;

    if (conf->redis_port == 0) {
        ac = redisAsyncConnectUnix(conf->redis_host);
    } else {
        ac = redisAsyncConnect(conf->redis_host, conf->redis_port);
    }

    if (ac == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "redis: out of memory");
        return NULL;
    }

    if (ac->err) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                    "redis %s: %s", conf->redis ? conf->redis
                    : "127.0.0.1:6379", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }

    redisLibeventAttach(ac, cs->cycle->base);
    redisAsyncSetConnectCallback(ac, loyalty_consumer_connected);
    redisAsyncSetDisconnectCallback(ac, loyalty_consumer_disconnected);

    return ac;
}


static void
loyalty_consumer_connected(const redisAsyncContext *ac, int status)
{
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;

    if (status != REDIS_OK) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                    "redis connect: %s", ac->errstr);

        /* hiredis frees the context after this callback */
        if (ac == cs->rd) {
            cs->rd = NULL;
            cs->rd_ready = 0;
            cs->reading = 0;

        } else if (ac == cs->cmd) {
            cs->cmd = NULL;
            cs->cmd_ready = 0;
            cs->outstanding = 0;
        }

        if (!cs->cycle->stopping) {
            loyalty_consumer_arm(cs->reconnect_timer, LOYALTY_RECONNECT_MS);
        }

        return;
    }

    if (ac == cs->cmd) {
        cs->cmd_ready = 1;
        loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                    "redis connected, consumer %s", cs->cycle->consumer);
        loyalty_consumer_groups(cs);
        loyalty_consumer_arm(cs->claim_timer,
                             cs->cycle->conf->claim_interval_ms);

    } else if (ac == cs->rd) {
        cs->rd_ready = 1;
    }

    loyalty_consumer_read(cs);
}


static void
loyalty_consumer_disconnected(const redisAsyncContext *ac, int status)
{
    unsigned             i;
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;

    if (ac == cs->rd) {
        cs->rd = NULL;
        cs->rd_ready = 0;
        cs->reading = 0;

    } else if (ac == cs->cmd) {
        cs->cmd = NULL;
        cs->cmd_ready = 0;
        cs->outstanding = 0;
        evtimer_del(cs->claim_timer);
    }

    if (cs->cycle->stopping) {
        return;
    }

    loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                "redis connection lost%s%s, reconnecting",
                status == REDIS_OK ? "" : ": ",
                status == REDIS_OK ? "" : ac->errstr);

    /* after a reconnect, entries we hold may have been lost with Redis:
     * read our pending list again (held entries are skipped) */
    for (i = 0; i < cs->nstores; i++) {
        cs->stores[i].history = 1;
        strcpy(cs->stores[i].cursor, "0-0");
    }

    loyalty_consumer_arm(cs->reconnect_timer, LOYALTY_RECONNECT_MS);
}


static void
loyalty_consumer_reconnect_handler(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;

    loyalty_consumer_connect(arg);
}


/* start at 0, not $: entries accepted before the first worker ran count */

static void
loyalty_consumer_groups(loyalty_consumer_t *cs)
{
    unsigned  i;

    if (!cs->cmd_ready) {
        return;
    }

    for (i = 0; i < cs->nstores; i++) {
        if (redisAsyncCommand(cs->cmd, loyalty_consumer_group_done,
                              (void *) (uintptr_t) i,
                              "XGROUP CREATE %s " LOYALTY_WORKER_GROUP
                              " 0 MKSTREAM", cs->stores[i].key)
            == REDIS_OK)
        {
            cs->outstanding++;
        }
    }
}


static void
loyalty_consumer_group_done(redisAsyncContext *ac, void *r, void *privdata)
{
    unsigned             i;
    redisReply          *reply;
    loyalty_consumer_t  *cs;

    (void) ac;

    cs = &loyalty_consumer;
    reply = r;
    i = (unsigned) (uintptr_t) privdata;

    if (reply == NULL) {
        return;
    }

    cs->outstanding--;

    if (reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "BUSYGROUP", 9) != 0)
    {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "XGROUP CREATE %s: %s", cs->stores[i].key, reply->str);

    } else if (reply->type == REDIS_REPLY_STATUS) {
        loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                    "created consumer group " LOYALTY_WORKER_GROUP " on %s",
                    cs->stores[i].key);
    }
}


static void
loyalty_consumer_read(loyalty_consumer_t *cs)
{
    int              history;
    char             count[16], block[16];
    size_t           argc, i, nkeys;
    loyalty_conf_t  *conf;

    conf = cs->cycle->conf;

    if (cs->cycle->stopping || !cs->rd_ready || cs->reading
        || evtimer_pending(cs->read_timer, NULL)
        || cs->cycle->jobs >= conf->batch)
    {
        return;
    }

    history = 0;

    for (i = 0; i < cs->nstores; i++) {
        history |= cs->stores[i].history;
    }

    snprintf(count, sizeof(count), "%u", conf->batch);
    snprintf(block, sizeof(block), "%u", conf->block_ms);

    argc = 0;
    cs->argv[argc++] = "XREADGROUP";
    cs->argv[argc++] = "GROUP";
    cs->argv[argc++] = LOYALTY_WORKER_GROUP;
    cs->argv[argc++] = cs->cycle->consumer;
    cs->argv[argc++] = "COUNT";
    cs->argv[argc++] = count;

    if (!history) {
        cs->argv[argc++] = "BLOCK";
        cs->argv[argc++] = block;
    }

    cs->argv[argc++] = "STREAMS";

    nkeys = 0;
    for (i = 0; i < cs->nstores; i++) {
        if (!history || cs->stores[i].history) {
            cs->argv[argc++] = cs->stores[i].key;
            nkeys++;
        }
    }

    for (i = 0; i < cs->nstores; i++) {
        if (!history) {
            cs->argv[argc++] = ">";

        } else if (cs->stores[i].history) {
            cs->argv[argc++] = cs->stores[i].cursor;
        }
    }

    for (i = 0; i < argc; i++) {
        cs->argvlen[i] = strlen(cs->argv[i]);
    }

    (void) nkeys;

    if (redisAsyncCommandArgv(cs->rd, loyalty_consumer_read_done, NULL,
                              (int) argc, cs->argv, cs->argvlen)
        == REDIS_OK)
    {
        cs->reading = 1;
    }
}


static void
loyalty_consumer_read_later(loyalty_consumer_t *cs)
{
    loyalty_consumer_arm(cs->read_timer, LOYALTY_RETRY_READ_MS);
}


static void
loyalty_consumer_read_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;

    loyalty_consumer_read(arg);
}


static int
loyalty_consumer_store_of(loyalty_consumer_t *cs, redisReply *key)
{
    unsigned  i;

    for (i = 0; i < cs->nstores; i++) {
        if (key->type == REDIS_REPLY_STRING
            && strcmp(key->str, cs->stores[i].key) == 0)
        {
            return (int) i;
        }
    }

    return -1;
}


static void
loyalty_consumer_read_done(redisAsyncContext *ac, void *r, void *privdata)
{
    int                  s;
    size_t               i, j;
    redisReply          *reply, *stream, *entries, *e;
    loyalty_consumer_t  *cs;

    (void) ac;
    (void) privdata;

    cs = &loyalty_consumer;
    reply = r;

    if (reply == NULL) {
        return;             /* connection gone, or we are stopping */
    }

    /*
     * cs->reading stays set while the entries are handled: a job that
     * finishes at once (no flow, dead letter) must not start the next
     * read before the history cursors are advanced past this reply
     */

    if (reply->type == REDIS_REPLY_ERROR) {
        cs->reading = 0;

        if (strncmp(reply->str, "NOGROUP", 7) == 0) {
            loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                        "consumer group missing (Redis flushed or "
                        "restarted?): recreating it");
            loyalty_consumer_groups(cs);

        } else {
            loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                        "XREADGROUP: %s", reply->str);
        }

        loyalty_consumer_read_later(cs);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY) {
        for (i = 0; i < reply->elements; i++) {
            stream = reply->element[i];

            if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2) {
                continue;
            }

            s = loyalty_consumer_store_of(cs, stream->element[0]);
            entries = stream->element[1];

            if (s < 0 || entries->type != REDIS_REPLY_ARRAY) {
                continue;
            }

            if (cs->stores[s].history && entries->elements == 0) {
                cs->stores[s].history = 0;    /* our PEL is read */
                continue;
            }

            for (j = 0; j < entries->elements; j++) {
                e = entries->element[j];

                if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
                    || e->element[0]->type != REDIS_REPLY_STRING)
                {
                    continue;
                }

                if (cs->stores[s].history) {
                    snprintf(cs->stores[s].cursor,
                             sizeof(cs->stores[s].cursor), "%s",
                             e->element[0]->str);

                    if (loyalty_consumer_held(cs, (unsigned) s,
                                              e->element[0]->str))
                    {
                        continue;
                    }
                }

                loyalty_consumer_entry(cs, (unsigned) s, e);
            }
        }

    } else if (reply->type == REDIS_REPLY_NIL) {
        for (i = 0; i < cs->nstores; i++) {
            cs->stores[i].history = 0;
        }
    }

    cs->reading = 0;
    loyalty_consumer_read(cs);
}


static void
loyalty_consumer_claim_timer(evutil_socket_t fd, short what, void *arg)
{
    char                 idle[16], count[16];
    unsigned             i;
    loyalty_conf_t      *conf;
    loyalty_consumer_t  *cs;

    (void) fd;
    (void) what;

    cs = arg;
    conf = cs->cycle->conf;

    if (cs->cycle->stopping || !cs->cmd_ready) {
        return;
    }

    loyalty_consumer_arm(cs->claim_timer, conf->claim_interval_ms);

    if (cs->cycle->jobs >= conf->batch) {
        return;
    }

    snprintf(idle, sizeof(idle), "%u", conf->claim_timeout_ms);
    snprintf(count, sizeof(count), "%u", conf->batch);

    for (i = 0; i < cs->nstores; i++) {
        if (redisAsyncCommand(cs->cmd, loyalty_consumer_claim_done,
                              (void *) (uintptr_t) i,
                              "XAUTOCLAIM %s " LOYALTY_WORKER_GROUP
                              " %s %s %s COUNT %s", cs->stores[i].key,
                              cs->cycle->consumer, idle, cs->stores[i].claim,
                              count)
            == REDIS_OK)
        {
            cs->outstanding++;
        }
    }
}


static void
loyalty_consumer_claim_done(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t               j;
    unsigned             s;
    redisReply          *reply, *entries, *e;
    loyalty_consumer_t  *cs;

    (void) ac;

    cs = &loyalty_consumer;
    reply = r;
    s = (unsigned) (uintptr_t) privdata;

    if (reply == NULL) {
        return;
    }

    cs->outstanding--;

    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(reply->str, "NOGROUP", 7) == 0) {
            loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                        "consumer group missing on %s (Redis flushed or "
                        "restarted?): recreating it", cs->stores[s].key);
            loyalty_consumer_groups(cs);
            return;
        }

        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "XAUTOCLAIM %s: %s", cs->stores[s].key, reply->str);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    snprintf(cs->stores[s].claim, sizeof(cs->stores[s].claim), "%s",
             reply->element[0]->str);

    entries = reply->element[1];

    if (entries->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (j = 0; j < entries->elements; j++) {
        e = entries->element[j];

        /* a deleted entry: Redis 7 drops it from the PEL by itself */
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2
            || e->element[0]->type != REDIS_REPLY_STRING)
        {
            continue;
        }

        if (loyalty_consumer_held(cs, s, e->element[0]->str)) {
            continue;
        }

        loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                    "claimed %s %s idle over %u ms", cs->stores[s].key,
                    e->element[0]->str, cs->cycle->conf->claim_timeout_ms);

        loyalty_consumer_entry(cs, s, e);
    }
}


static int
loyalty_consumer_held(loyalty_consumer_t *cs, unsigned store, const char *id)
{
    loyalty_job_t  *job;

    for (job = cs->jobs; job != NULL; job = job->next) {
        if (job->store == store && strcmp(job->entry_id, id) == 0) {
            return 1;
        }
    }

    return 0;
}


/* one stream entry: copy it out of the reply, decode, route, deliver */

static void
loyalty_consumer_entry(loyalty_consumer_t *cs, unsigned store,
    redisReply *entry)
{
    u_char          *p;
    size_t           i, n, size;
    redisReply      *id, *fields;
    loyalty_err_t    err;
    loyalty_job_t   *job;
    loyalty_str_t    fv[2];
    const char      *reason;
    char             msg[256];

    id = entry->element[0];
    fields = entry->element[1];

    if (fields->type != REDIS_REPLY_ARRAY) {
        /* deleted while pending (XDEL): nothing left to deliver */
        loyalty_consumer_ack(cs, store, id->str);
        return;
    }

    n = fields->elements;
    size = sizeof(loyalty_job_t) + id->len + 1 + n * sizeof(loyalty_str_t);

    for (i = 0; i < n; i++) {
        if (fields->element[i]->type != REDIS_REPLY_STRING) {
            fv[0].data = (u_char *) "entry";
            fv[0].len = 5;
            fv[1].data = (u_char *) id->str;
            fv[1].len = id->len;
            loyalty_consumer_dead_letter(cs->cycle, store, id->str, fv, 2,
                                         "entry fields are not strings");
            return;
        }

        size += fields->element[i]->len;
    }

    job = calloc(1, size);
    if (job == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "out of memory: %s left pending", id->str);
        return;
    }

    job->store = store;
    job->nfv = n;
    job->fv = (loyalty_str_t *) (job + 1);
    p = (u_char *) (job->fv + n);

    for (i = 0; i < n; i++) {
        job->fv[i].data = p;
        job->fv[i].len = fields->element[i]->len;
        memcpy(p, fields->element[i]->str, job->fv[i].len);
        p += job->fv[i].len;
    }

    job->entry_id = (char *) p;
    memcpy(p, id->str, id->len + 1);

    reason = NULL;

    if (loyalty_envelope_decode(job->fv, n, &job->ev, &err) != LOYALTY_OK) {
        snprintf(msg, sizeof(msg), "invalid envelope: %s", err.msg);
        reason = msg;

    } else if (!loyalty_event_id_valid(job->ev.id.data, job->ev.id.len)) {
        reason = "invalid envelope: bad event id";

    } else if (strlen(cs->cycle->conf->stores[store]) != job->ev.store.len
               || memcmp(cs->cycle->conf->stores[store], job->ev.store.data,
                         job->ev.store.len) != 0)
    {
        reason = "invalid envelope: store does not match the stream";

    } else if (loyalty_json_check(&job->ev.data, &err) != LOYALTY_OK) {
        snprintf(msg, sizeof(msg), "invalid envelope: data: %s", err.msg);
        reason = msg;
    }

    if (reason != NULL) {
        if (!loyalty_corr_valid(job->ev.corr.data, job->ev.corr.len)) {
            job->ev.corr.len = 0;
        }

        if (!loyalty_event_id_valid(job->ev.id.data, job->ev.id.len)) {
            job->ev.id.len = 0;
        }

        loyalty_log(LOYALTY_LOG_WARN, job, NULL, -1, -1,
                    "dead-lettered: %s", reason);
        loyalty_consumer_dead_letter(cs->cycle, store, job->entry_id,
                                     job->fv, n, reason);
        free(job);
        return;
    }

    if (!loyalty_corr_valid(job->ev.corr.data, job->ev.corr.len)) {
        job->ev.corr.len = 0;
    }

    job->next = cs->jobs;
    if (cs->jobs != NULL) {
        cs->jobs->prev = job;
    }
    cs->jobs = job;
    cs->cycle->jobs++;

    if (loyalty_consumer_route(cs, job, 0) == 0) {
        loyalty_log(LOYALTY_LOG_DEBUG, job, NULL, -1, -1,
                    "no flow for %.*s from %.*s: acked",
                    (int) job->ev.type.len, job->ev.type.data,
                    (int) job->ev.src.len, job->ev.src.data);
        job->pending = 1;
        loyalty_consumer_done(job, 1);
        return;
    }

    loyalty_consumer_route(cs, job, 1);
}


/* the number of flows that take the event; with submit, deliver to each */

static int
loyalty_consumer_route(loyalty_consumer_t *cs, loyalty_job_t *job, int submit)
{
    int                   n;
    unsigned              i;
    loyalty_str_t         store;
    loyalty_flow_conf_t  *f;

    n = 0;
    store.data = (u_char *) cs->cycle->conf->stores[job->store];
    store.len = strlen((char *) store.data);

    if (submit) {
        /* one extra reference while submitting: a delivery that fails
         * at once must not free the job under this loop */
        job->pending = loyalty_consumer_route(cs, job, 0) + 1;
    }

    for (i = 0; i < cs->cycle->conf->flows_count; i++) {
        f = &cs->cycle->conf->flows[i];

        if (!loyalty_list_has(f->stores, f->stores_count, &store)
            || !loyalty_list_has(f->from, f->from_count, &job->ev.src)
            || !loyalty_list_has(f->on, f->on_count, &job->ev.type))
        {
            continue;
        }

        n++;

        if (submit) {
            loyalty_http_submit(job, f->dest);
        }
    }

    if (submit) {
        loyalty_consumer_done(job, 1);
    }

    return n;
}


/* an empty (absent) list matches everything */

static int
loyalty_list_has(char **list, unsigned n, const loyalty_str_t *s)
{
    unsigned  i;

    if (n == 0) {
        return 1;
    }

    for (i = 0; i < n; i++) {
        if (loyalty_str_eq(s, list[i])) {
            return 1;
        }
    }

    return 0;
}


/* one delivery of the job finished; the last one acks or leaves it */

void
loyalty_consumer_done(loyalty_job_t *job, int ok)
{
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;

    if (!ok) {
        job->failed++;
    }

    if (--job->pending > 0) {
        return;
    }

    if (job->failed == 0) {
        loyalty_consumer_ack(cs, job->store, job->entry_id);

    } else {
        loyalty_log(LOYALTY_LOG_WARN, job, NULL, -1, -1,
                    "left pending for a retry after %u ms",
                    cs->cycle->conf->claim_timeout_ms);
    }

    loyalty_job_free(job);
    loyalty_consumer_read(cs);
}


void
loyalty_job_free(loyalty_job_t *job)
{
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;

    if (job->prev != NULL) {
        job->prev->next = job->next;
    } else {
        cs->jobs = job->next;
    }

    if (job->next != NULL) {
        job->next->prev = job->prev;
    }

    cs->cycle->jobs--;
    free(job);
}


static void
loyalty_consumer_ack(loyalty_consumer_t *cs, unsigned store, const char *id)
{
    if (!cs->cmd_ready) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                    "redis down: %s %s not acked, it will be redelivered",
                    cs->stores[store].key, id);
        return;
    }

    if (redisAsyncCommand(cs->cmd, loyalty_consumer_cmd_done, "XACK",
                          "XACK %s " LOYALTY_WORKER_GROUP " %s",
                          cs->stores[store].key, id)
        == REDIS_OK)
    {
        cs->outstanding++;
    }
}


static void
loyalty_consumer_cmd_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply          *reply;
    loyalty_consumer_t  *cs;

    (void) ac;

    cs = &loyalty_consumer;
    reply = r;

    if (reply == NULL) {
        return;
    }

    cs->outstanding--;

    if (reply->type == REDIS_REPLY_ERROR) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1, "%s: %s",
                    (char *) privdata, reply->str);
    }

    if (cs->cycle->stopping) {
        loyalty_consumer_close(cs->cycle);
    }
}


/*
 * XADD to loyalty:{S}:dlq and XACK in one script, so a crash between
 * them can neither lose the entry nor dead-letter it twice.  The dead
 * letter carries dlq_reason, dlq_entry, dlq_at, then the entry's own
 * fields unchanged (for a later `dlq replay`).
 */

void
loyalty_consumer_dead_letter(loyalty_cycle_t *cycle, unsigned store,
    const char *entry_id, const loyalty_str_t *fv, size_t nfv,
    const char *reason)
{
    size_t               i, argc;
    const char         **argv;
    size_t              *lens;
    loyalty_consumer_t  *cs;
    char                 at[32];

    cs = &loyalty_consumer;

    if (!cs->cmd_ready) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                    "redis down: %s %s not dead-lettered yet",
                    cs->stores[store].key, entry_id);
        return;
    }

    argv = malloc((nfv + 16) * sizeof(char *));
    lens = malloc((nfv + 16) * sizeof(size_t));

    if (argv == NULL || lens == NULL) {
        free(argv);
        free(lens);
        return;
    }

    snprintf(at, sizeof(at), "%lld", (long long) time(NULL) * 1000);

    argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = loyalty_dlq_script;
    argv[argc++] = "2";
    argv[argc++] = cs->stores[store].key;
    argv[argc++] = cs->stores[store].dlq;
    argv[argc++] = LOYALTY_WORKER_GROUP;
    argv[argc++] = entry_id;
    argv[argc++] = "dlq_reason";
    argv[argc++] = reason;
    argv[argc++] = "dlq_entry";
    argv[argc++] = entry_id;
    argv[argc++] = "dlq_at";
    argv[argc++] = at;

    for (i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }

    for (i = 0; i < nfv; i++) {
        argv[argc] = (const char *) fv[i].data;
        lens[argc++] = fv[i].len;
    }

    (void) cycle;

    if (redisAsyncCommandArgv(cs->cmd, loyalty_consumer_cmd_done,
                              "dead letter", (int) argc, argv, lens)
        == REDIS_OK)
    {
        cs->outstanding++;
    }

    free(argv);
    free(lens);
}


/* SIGTERM: no more reads; the entries we hold stay in our PEL */

void
loyalty_consumer_stop(loyalty_cycle_t *cycle)
{
    redisAsyncContext   *rd;
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;
    cycle->stopping = 1;

    evtimer_del(cs->read_timer);
    evtimer_del(cs->claim_timer);
    evtimer_del(cs->reconnect_timer);

    rd = cs->rd;
    cs->rd = NULL;
    cs->rd_ready = 0;

    if (rd != NULL) {
        redisAsyncFree(rd);
    }
}


int
loyalty_consumer_idle(loyalty_cycle_t *cycle)
{
    (void) cycle;

    return loyalty_consumer.outstanding == 0;
}


/* every delivery is done and every reply is in: close the connection */

void
loyalty_consumer_close(loyalty_cycle_t *cycle)
{
    redisAsyncContext   *cmd;
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;

    if (!cycle->stopping || loyalty_http_inflight() > 0
        || cs->outstanding > 0)
    {
        return;
    }

    cmd = cs->cmd;

    if (cmd != NULL) {
        cs->cmd = NULL;
        cs->cmd_ready = 0;
        redisAsyncDisconnect(cmd);
    }

    event_base_loopexit(cycle->base, NULL);
}


/* the data field must be JSON: a worker never forwards broken bodies */

static int
loyalty_json_check(const loyalty_str_t *text, loyalty_err_t *err)
{
    int                     rc;
    loyalty_json_t         *root;
    loyalty_alloc_t         a;
    loyalty_arena_chunk_t  *arena, *c;

    arena = NULL;
    a.alloc = loyalty_arena_alloc;
    a.ctx = &arena;

    rc = loyalty_json_parse(text, &a, &root, err);

    while (arena != NULL) {
        c = arena->next;
        free(arena);
        arena = c;
    }

    return rc;
}


static void *
loyalty_arena_alloc(void *ctx, size_t size)
{
    u_char                  *p;
    size_t                   n;
    loyalty_arena_chunk_t  **arena, *c;

    arena = ctx;
    c = *arena;
    size = (size + 15) & ~((size_t) 15);

    if (c == NULL || c->size - c->used < size) {
        n = size > 16384 ? size : 16384;
        c = malloc(sizeof(loyalty_arena_chunk_t) + n);
        if (c == NULL) {
            return NULL;
        }

        c->size = n;
        c->used = 0;
        c->next = *arena;
        *arena = c;
    }

    p = c->data + c->used;
    c->used += size;

    return p;
}
