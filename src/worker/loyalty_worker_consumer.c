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
 * A timer runs XAUTOCLAIM for entries idle longer than claim_timeout_ms
 * (those of dead consumers).  NOGROUP (Redis flushed or restarted without
 * persistence) recreates the groups and reads on.
 *
 * A failed delivery leaves the stream: one script acks the entry and
 * copies it to the hash loyalty:{S}:retry:<entry id> (fields, _attempts,
 * _done: the flows already served), with the due time as its
 * score in the sorted set loyalty:{S}:retry.  Another timer takes due
 * retries with a script that re-scores them to now + claim_timeout_ms
 * (a lease) instead of removing them: a worker that dies holding one
 * loses nothing.  Success, the next failure and the dead letter each
 * end a retry in one script.  A third timer trims the streams below the
 * group's oldest unfinished entry and removes dead consumers (idle, with
 * nothing pending).  A fourth one keeps the entries and retries we hold
 * fresh (XCLAIM JUSTID, lease renewed), so waiting for a slot or a token
 * never hands them to another worker.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>
#include <hiredis/adapters/libevent.h>

#include "loyalty_worker.h"
#include "loyalty_json.h"


#define LOYALTY_RETRY_READ_MS   200
#define LOYALTY_RECONNECT_MS    500
#define LOYALTY_HOLD_MAX        1000     /* ids per refresh script */


typedef struct {
    char                 *key;              /* loyalty:{S}:in */
    char                 *dlq;              /* loyalty:{S}:dlq */
    char                 *conflicts;        /* loyalty:{S}:conflicts */
    char                 *retry;            /* loyalty:{S}:retry */
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
    unsigned              rd_once:1;        /* connected before */
    unsigned              cmd_once:1;
    unsigned              outstanding;      /* replies awaited on cmd */
    loyalty_job_t        *jobs;             /* every job held */
    struct event         *read_timer;
    struct event         *claim_timer;
    struct event         *reconnect_timer;
    struct event         *retry_timer;
    struct event         *trim_timer;
    struct event         *hold_timer;
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
static int loyalty_consumer_reply(loyalty_consumer_t *cs,
    redisReply *reply);
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
    redisReply *id, redisReply *fields, int retry);
static void loyalty_consumer_retry_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_consumer_retry_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void loyalty_consumer_trim_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_consumer_gc_done(void *r, void *data);
static void loyalty_consumer_hold_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_consumer_hold(loyalty_consumer_t *cs, unsigned store,
    int retry);
static int loyalty_consumer_hold_has(loyalty_job_t *job, unsigned store,
    int retry);
static void loyalty_consumer_auth_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void loyalty_consumer_finish(loyalty_consumer_t *cs,
    loyalty_job_t *job);
static void loyalty_consumer_done_parse(loyalty_consumer_t *cs,
    loyalty_job_t *job, const char *list);
static void loyalty_consumer_dlq(loyalty_consumer_t *cs, unsigned store,
    const char *entry_id, int retry, int conflict, const char *reason,
    const char **meta, const loyalty_str_t *fv, size_t nfv);
static void loyalty_consumer_script(loyalty_consumer_t *cs,
    const char *what, const char *script, int nkeys, const char **args,
    size_t nargs, const loyalty_str_t *fv, size_t nfv);
static int loyalty_consumer_held(loyalty_consumer_t *cs, unsigned store,
    const char *id);
static void loyalty_consumer_ack(loyalty_consumer_t *cs, unsigned store,
    const char *id);
static void loyalty_consumer_cmd_done(redisAsyncContext *ac, void *r,
    void *privdata);
static int loyalty_consumer_route(loyalty_consumer_t *cs, loyalty_job_t *job,
    int submit);
static int loyalty_consumer_own_field(redisReply *f, int retry);
static int loyalty_list_has(char **list, unsigned n, const loyalty_str_t *s);
static int loyalty_json_check(const loyalty_str_t *text, loyalty_err_t *err);
static void *loyalty_arena_alloc(void *ctx, size_t size);


static loyalty_consumer_t  loyalty_consumer;


/*
 * The scripts.  KEYS[1] loyalty:{S}:in, KEYS[2] loyalty:{S}:retry (or the
 * dlq), KEYS[3] the retry hash; the hash key is passed, never built, and
 * shares the {S} slot.  ARGV[3] says where the event comes from: "in"
 * (a stream entry: the XACK must succeed, or another worker finished it
 * and we write nothing) or "retry" (the hash must still exist).
 */

/* ARGV: group, entry, from, delay_ms, attempts, done, fields... */
static const char  loyalty_retry_script[] =
    "if ARGV[3] == 'in' then "
    "  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then "
    "    return 0 end "
    "  redis.call('DEL', KEYS[3]) "
    "  redis.call('HSET', KEYS[3], unpack(ARGV, 7)) "
    "elseif redis.call('EXISTS', KEYS[3]) == 0 then return 0 end "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('HSET', KEYS[3], '_attempts', ARGV[5], '_done', ARGV[6]) "
    "redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[2]) "
    "return 1";

/* KEYS: in, dlq, retry, hash; ARGV: group, entry, from, fields... */
static const char  loyalty_dlq_script[] =
    "if ARGV[3] == 'in' then "
    "  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then "
    "    return 0 end "
    "else "
    "  if redis.call('ZREM', KEYS[3], ARGV[2]) == 0 then return 0 end "
    "  redis.call('DEL', KEYS[4]) "
    "end "
    "redis.call('XADD', KEYS[2], '*', unpack(ARGV, 4)) "
    "return 1";

/* KEYS: retry, hash; ARGV: entry */
static const char  loyalty_retry_ok_script[] =
    "redis.call('DEL', KEYS[2]) "
    "return redis.call('ZREM', KEYS[1], ARGV[1])";

/*
 * KEYS: retry; ARGV: count, lease_ms, consumer.  Returns id, fields, id,
 * ...  The hash keys are built from KEYS[1] (same {S} slot): which ones
 * is only known inside the script.  _owner: who may renew the lease.
 */
static const char  loyalty_take_script[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, "
    "                       'LIMIT', 0, tonumber(ARGV[1])) "
    "local out = {} "
    "for _, id in ipairs(ids) do "
    "  local h = redis.call('HGETALL', KEYS[1] .. ':' .. id) "
    "  if #h == 0 then redis.call('ZREM', KEYS[1], id) else "
    "    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id) "
    "    redis.call('HSET', KEYS[1] .. ':' .. id, '_owner', ARGV[3]) "
    "    out[#out + 1] = id "
    "    out[#out + 1] = h "
    "  end "
    "end "
    "return out";

/*
 * KEYS: in; ARGV: group, consumer, ids...  Resets the idle time of the
 * entries still pending for us (XCLAIM to ourselves, min idle 0):
 * XAUTOCLAIM elsewhere sees them busy.  JUSTID leaves the delivery
 * counter alone.  An entry another worker claimed meanwhile is not taken
 * back.  Returns how many were refreshed.
 */
static const char  loyalty_hold_script[] =
    "local c = { 'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0 } "
    "for i = 3, #ARGV do "
    "  if #redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, "
    "                 ARGV[2]) > 0 then c[#c + 1] = ARGV[i] end "
    "end "
    "if #c == 5 then return 0 end "
    "c[#c + 1] = 'JUSTID' "
    "return #redis.call(unpack(c))";

/*
 * KEYS: retry, hashes...; ARGV: lease_ms, consumer, ids (one per hash).
 * Renews the lease of the retries we took, if still there and ours.
 */
static const char  loyalty_hold_retry_script[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local n = 0 "
    "for i = 3, #ARGV do "
    "  if redis.call('HGET', KEYS[i - 1], '_owner') == ARGV[2] "
    "     and redis.call('ZSCORE', KEYS[1], ARGV[i]) then "
    "    redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), "
    "               ARGV[i]) "
    "    n = n + 1 "
    "  end "
    "end "
    "return n";

/*
 * KEYS: in; ARGV: group, consumer, idle_ms.  Removes the consumers idle
 * longer than idle_ms with nothing pending (DELCONSUMER would drop their
 * pending entries: checked in the same script), never ourselves.
 * Returns the names removed.
 */
static const char  loyalty_gc_script[] =
    "local cs = redis.pcall('XINFO', 'CONSUMERS', KEYS[1], ARGV[1]) "
    "if type(cs) ~= 'table' or cs.err then return {} end "
    "local out = {} "
    "for _, c in ipairs(cs) do "
    "  local name, pending, idle "
    "  for i = 1, #c, 2 do "
    "    if c[i] == 'name' then name = c[i + 1] "
    "    elseif c[i] == 'pending' then pending = c[i + 1] "
    "    elseif c[i] == 'idle' then idle = c[i + 1] end "
    "  end "
    "  if name and name ~= ARGV[2] and pending == 0 and idle "
    "     and idle > tonumber(ARGV[3]) then "
    "    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name) "
    "    out[#out + 1] = name "
    "  end "
    "end "
    "return out";

/*
 * KEYS: in; ARGV: group.  Trim below the oldest entry the group has not
 * finished: its smallest pending id, else its last-delivered-id (kept:
 * MINID removes only smaller ids).  No group, nothing trimmed.
 */
static const char  loyalty_trim_script[] =
    "local function lt(a, b) "
    "  local am, as = string.match(a, '^(%d+)-(%d+)$') "
    "  local bm, bs = string.match(b, '^(%d+)-(%d+)$') "
    "  if tonumber(am) ~= tonumber(bm) then "
    "    return tonumber(am) < tonumber(bm) end "
    "  return tonumber(as) < tonumber(bs) "
    "end "
    "local gs = redis.pcall('XINFO', 'GROUPS', KEYS[1]) "
    "if type(gs) ~= 'table' or gs.err then return 0 end "
    "local last "
    "for _, g in ipairs(gs) do "
    "  local name, ld "
    "  for i = 1, #g, 2 do "
    "    if g[i] == 'name' then name = g[i + 1] "
    "    elseif g[i] == 'last-delivered-id' then ld = g[i + 1] end "
    "  end "
    "  if name == ARGV[1] then last = ld end "
    "end "
    "if not last then return 0 end "
    "local p = redis.call('XPENDING', KEYS[1], ARGV[1]) "
    "if tonumber(p[1]) > 0 and lt(p[2], last) then last = p[2] end "
    "return redis.call('XTRIM', KEYS[1], 'MINID', last)";


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
    srandom((unsigned) (loyalty_now_ms() ^ (uint64_t) getpid()));
    cs->stores = calloc(cs->nstores, sizeof(loyalty_store_t));
    cs->argv = calloc(2 * cs->nstores + 16, sizeof(char *));
    cs->argvlen = calloc(2 * cs->nstores + 16, sizeof(size_t));

    if (cs->stores == NULL || cs->argv == NULL || cs->argvlen == NULL) {
        return LOYALTY_ERROR;
    }

    for (i = 0; i < cs->nstores; i++) {
        n = strlen(conf->stores[i]) + sizeof("loyalty:{}:retry");
        cs->stores[i].key = malloc(n);
        cs->stores[i].dlq = malloc(n);
        cs->stores[i].conflicts = malloc(n + 8);
        cs->stores[i].retry = malloc(n);

        if (cs->stores[i].key == NULL || cs->stores[i].dlq == NULL
            || cs->stores[i].conflicts == NULL || cs->stores[i].retry == NULL)
        {
            return LOYALTY_ERROR;
        }

        snprintf(cs->stores[i].conflicts, n + 8, "loyalty:{%s}:conflicts",
                 conf->stores[i]);

        snprintf(cs->stores[i].key, n, "loyalty:{%s}:in", conf->stores[i]);
        snprintf(cs->stores[i].dlq, n, "loyalty:{%s}:dlq", conf->stores[i]);
        snprintf(cs->stores[i].retry, n, "loyalty:{%s}:retry",
                 conf->stores[i]);
        cs->stores[i].history = 1;
        strcpy(cs->stores[i].cursor, "0-0");
        strcpy(cs->stores[i].claim, "0-0");
    }

    cs->read_timer = evtimer_new(cycle->base, loyalty_consumer_read_timer, cs);
    cs->claim_timer = evtimer_new(cycle->base, loyalty_consumer_claim_timer,
                                  cs);
    cs->reconnect_timer = evtimer_new(cycle->base,
                                      loyalty_consumer_reconnect_handler, cs);
    cs->retry_timer = evtimer_new(cycle->base, loyalty_consumer_retry_timer,
                                  cs);
    cs->trim_timer = evtimer_new(cycle->base, loyalty_consumer_trim_timer,
                                 cs);
    cs->hold_timer = evtimer_new(cycle->base, loyalty_consumer_hold_timer,
                                 cs);

    if (cs->read_timer == NULL || cs->claim_timer == NULL
        || cs->reconnect_timer == NULL || cs->retry_timer == NULL
        || cs->trim_timer == NULL || cs->hold_timer == NULL)
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
    int                 i, argc;
    loyalty_conf_t     *conf;
    redisAsyncContext  *ac;
    const char         *argv[4];
    size_t              lens[4];

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

    /* queued first on the new connection: every command after them runs
     * authenticated, in the right database */
    for (i = 0; i < 2; i++) {
        argc = loyalty_conf_redis_argv(conf, i, argv, lens);

        if (argc > 0) {
            redisAsyncCommandArgv(ac, loyalty_consumer_auth_done,
                                  (void *) argv[0], argc, argv, lens);
        }
    }

    return ac;
}


/*
 * AUTH or SELECT refused: say why (never the password; as an error at
 * most every 10 s, the reconnects go on) and drop the connection at once,
 * so the commands queued behind fail quietly (NULL replies)
 */

static void
loyalty_consumer_auth_done(redisAsyncContext *ac, void *r, void *privdata)
{
    int              level;
    uint64_t         now;
    redisReply      *reply;
    static uint64_t  last;

    reply = r;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    now = loyalty_now_ms();
    level = LOYALTY_LOG_DEBUG;

    if (last == 0 || now - last >= 10000) {
        level = LOYALTY_LOG_ERR;
        last = now;
    }

    loyalty_log(level, NULL, NULL, -1, -1, "redis %s: %s%s",
                (char *) privdata, reply->str,
                strcmp(privdata, "AUTH") == 0
                ? " (check redis_password_file)" : " (check redis_db)");

    redisAsyncFree(ac);
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

    /* the first connection of each is not a reconnect */
    if ((ac == cs->cmd && cs->cmd_once) || (ac == cs->rd && cs->rd_once)) {
        loyalty_metrics_reconnect();
    }

    if (ac == cs->cmd) {
        cs->cmd_ready = 1;
        cs->cmd_once = 1;
        loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                    "redis connected, consumer %s", cs->cycle->consumer);
        loyalty_consumer_groups(cs);
        loyalty_consumer_arm(cs->claim_timer,
                             cs->cycle->conf->claim_interval_ms);
        loyalty_consumer_arm(cs->retry_timer,
                             cs->cycle->conf->retry_interval_ms);
        loyalty_consumer_arm(cs->trim_timer,
                             cs->cycle->conf->trim_interval_ms);
        loyalty_consumer_arm(cs->hold_timer,
                             cs->cycle->conf->claim_timeout_ms / 3);

    } else if (ac == cs->rd) {
        cs->rd_ready = 1;
        cs->rd_once = 1;
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
        evtimer_del(cs->retry_timer);
        evtimer_del(cs->trim_timer);
        evtimer_del(cs->hold_timer);
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


/*
 * The common start of a reply callback on the cmd connection: NULL (the
 * connection went away: outstanding was reset with it) or a stop in
 * progress (a claimed entry stays in our PEL, a taken retry stays leased;
 * either goes to another worker later) end the callback.
 */

static int
loyalty_consumer_reply(loyalty_consumer_t *cs, redisReply *reply)
{
    if (reply == NULL) {
        return 0;
    }

    cs->outstanding--;

    if (cs->cycle->stopping) {
        loyalty_consumer_close(cs->cycle);
        return 0;
    }

    return 1;
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

    if (!loyalty_consumer_reply(cs, reply)) {
        return;
    }

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

                loyalty_consumer_entry(cs, (unsigned) s, e->element[0],
                                       e->element[1], 0);
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

    if (!loyalty_consumer_reply(cs, reply)) {
        return;
    }

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

        loyalty_consumer_entry(cs, s, e->element[0], e->element[1], 0);
    }
}


/* due retries: taken under a lease, delivered like stream entries */

static void
loyalty_consumer_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    size_t               k;
    unsigned             i;
    loyalty_conf_t      *conf;
    loyalty_consumer_t  *cs;
    const char          *args[2];
    char                 count[16], lease[16];

    (void) fd;
    (void) what;

    cs = arg;
    conf = cs->cycle->conf;

    if (cs->cycle->stopping || !cs->cmd_ready) {
        return;
    }

    loyalty_consumer_arm(cs->retry_timer, conf->retry_interval_ms);

    if (cs->cycle->jobs >= conf->batch) {
        return;
    }

    snprintf(count, sizeof(count), "%u", conf->batch - cs->cycle->jobs);
    snprintf(lease, sizeof(lease), "%u", conf->claim_timeout_ms);
    args[0] = count;
    args[1] = lease;

    for (i = 0; i < cs->nstores; i++) {
        cs->argv[0] = "EVAL";
        cs->argv[1] = loyalty_take_script;
        cs->argv[2] = "1";
        cs->argv[3] = cs->stores[i].retry;
        cs->argv[4] = args[0];
        cs->argv[5] = args[1];
        cs->argv[6] = cs->cycle->consumer;

        for (k = 0; k < 7; k++) {
            cs->argvlen[k] = strlen(cs->argv[k]);
        }

        if (redisAsyncCommandArgv(cs->cmd, loyalty_consumer_retry_done,
                                  (void *) (uintptr_t) i, 7, cs->argv,
                                  cs->argvlen)
            == REDIS_OK)
        {
            cs->outstanding++;
        }
    }
}


static void
loyalty_consumer_retry_done(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t               j;
    unsigned             s;
    redisReply          *reply;
    loyalty_consumer_t  *cs;

    (void) ac;

    cs = &loyalty_consumer;
    reply = r;
    s = (unsigned) (uintptr_t) privdata;

    if (!loyalty_consumer_reply(cs, reply)) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "taking retries of %s: %s", cs->stores[s].retry,
                    reply->str);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (j = 0; j + 1 < reply->elements; j += 2) {
        if (reply->element[j]->type != REDIS_REPLY_STRING
            || reply->element[j + 1]->type != REDIS_REPLY_ARRAY
            || loyalty_consumer_held(cs, s, reply->element[j]->str))
        {
            continue;
        }

        loyalty_consumer_entry(cs, s, reply->element[j],
                               reply->element[j + 1], 1);
    }
}


static void
loyalty_consumer_trim_timer(evutil_socket_t fd, short what, void *arg)
{
    unsigned             i;
    loyalty_consumer_t  *cs;
    const char          *args[4];
    char                 gc[16];

    (void) fd;
    (void) what;

    cs = arg;

    if (cs->cycle->stopping || !cs->cmd_ready) {
        return;
    }

    loyalty_consumer_arm(cs->trim_timer, cs->cycle->conf->trim_interval_ms);
    snprintf(gc, sizeof(gc), "%u", cs->cycle->conf->consumer_gc_ms);

    for (i = 0; i < cs->nstores; i++) {
        if (redisAsyncCommand(cs->cmd, loyalty_consumer_cmd_done, "XTRIM",
                              "EVAL %s 1 %s " LOYALTY_WORKER_GROUP,
                              loyalty_trim_script, cs->stores[i].key)
            == REDIS_OK)
        {
            cs->outstanding++;
        }

        args[0] = cs->stores[i].key;
        args[1] = LOYALTY_WORKER_GROUP;
        args[2] = cs->cycle->consumer;
        args[3] = gc;

        (void) loyalty_consumer_eval("consumer cleanup", loyalty_gc_script,
                                     1, args, 4, loyalty_consumer_gc_done,
                                     (void *) (uintptr_t) i);
    }
}


static void
loyalty_consumer_gc_done(void *r, void *data)
{
    size_t               j;
    unsigned             s;
    redisReply          *reply;
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;
    reply = r;
    s = (unsigned) (uintptr_t) data;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (j = 0; j < reply->elements; j++) {
        if (reply->element[j]->type == REDIS_REPLY_STRING) {
            loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                        "removed consumer %s of %s: idle over %u ms, "
                        "nothing pending", reply->element[j]->str,
                        cs->stores[s].key, cs->cycle->conf->consumer_gc_ms);
        }
    }
}


/*
 * Every claim_timeout_ms / 3: what we hold (read or leased, waiting for
 * a slot or a token, or in flight) is made fresh again in Redis, so it
 * is never idle long enough for another worker to take it too.
 */

static void
loyalty_consumer_hold_timer(evutil_socket_t fd, short what, void *arg)
{
    unsigned             i;
    loyalty_consumer_t  *cs;

    (void) fd;
    (void) what;

    cs = arg;

    if (cs->cycle->stopping || !cs->cmd_ready) {
        return;
    }

    loyalty_consumer_arm(cs->hold_timer, cs->cycle->conf->claim_timeout_ms / 3);

    for (i = 0; i < cs->nstores; i++) {
        loyalty_consumer_hold(cs, i, 0);
        loyalty_consumer_hold(cs, i, 1);
    }
}


/* a job of this store and kind; stream ids are at most 41 bytes */

static int
loyalty_consumer_hold_has(loyalty_job_t *job, unsigned store, int retry)
{
    return job->store == store && job->retry == (unsigned) retry
           && strlen(job->entry_id) < 48;
}


/* per store and kind, one script for each LOYALTY_HOLD_MAX ids */

static void
loyalty_consumer_hold(loyalty_consumer_t *cs, unsigned store, int retry)
{
    size_t            n, k, nkeys, len;
    loyalty_job_t    *job, *from;
    loyalty_store_t  *st;
    const char      **args;
    char             *keys, *p;
    char              lease[16];

    for (from = cs->jobs; from != NULL; from = from->next) {
        if (loyalty_consumer_hold_has(from, store, retry)) {
            break;
        }
    }

    if (from == NULL) {
        return;
    }

    st = &cs->stores[store];
    snprintf(lease, sizeof(lease), "%u", cs->cycle->conf->claim_timeout_ms);

    args = malloc((2 * LOYALTY_HOLD_MAX + 4) * sizeof(char *));
    keys = malloc(LOYALTY_HOLD_MAX * (strlen(st->retry) + 50));
    len = strlen(st->retry) + 50;

    if (args == NULL || keys == NULL) {
        free(args);
        free(keys);
        return;
    }

    while (from != NULL) {
        /* stream: in, group, me, ids; retry: zset, hashes, lease, me, ids */
        k = 0;
        n = 0;
        nkeys = 1;
        p = keys;
        args[k++] = retry ? st->retry : st->key;

        for (job = from; job != NULL && n < LOYALTY_HOLD_MAX;
             job = job->next)
        {
            if (!loyalty_consumer_hold_has(job, store, retry)) {
                continue;
            }

            n++;

            if (retry) {
                args[k++] = p;
                p += snprintf(p, len, "%s:%s", st->retry, job->entry_id) + 1;
                nkeys++;
            }
        }

        if (n == 0) {
            break;
        }

        args[k++] = retry ? lease : LOYALTY_WORKER_GROUP;
        args[k++] = cs->cycle->consumer;

        for ( /* void */ ; from != job; from = from->next) {
            if (loyalty_consumer_hold_has(from, store, retry)) {
                args[k++] = from->entry_id;
            }
        }

        loyalty_consumer_script(cs,
                                retry ? "renewing leases" : "XCLAIM JUSTID",
                                retry ? loyalty_hold_retry_script
                                      : loyalty_hold_script,
                                (int) nkeys, args, k, NULL, 0);
    }

    free(args);
    free(keys);
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


/*
 * One stream entry, or one retry (the hash's fields, with _attempts and
 * _done): copy it out of the reply, decode, route, deliver.
 */

static void
loyalty_consumer_entry(loyalty_consumer_t *cs, unsigned store,
    redisReply *id, redisReply *fields, int retry)
{
    u_char          *p;
    size_t           i, n, size;
    unsigned         attempts;
    redisReply      *f, *v, *done;
    loyalty_err_t    err;
    loyalty_job_t   *job;
    loyalty_str_t    fv[2];
    const char      *reason;
    char             msg[256];

    if (fields->type != REDIS_REPLY_ARRAY) {
        /* deleted while pending (XDEL): nothing left to deliver */
        loyalty_consumer_ack(cs, store, id->str);
        return;
    }

    n = 0;
    size = sizeof(loyalty_job_t) + id->len + 1;
    attempts = 0;
    done = NULL;

    for (i = 0; i < fields->elements; i++) {
        if (fields->element[i]->type != REDIS_REPLY_STRING) {
            fv[0].data = (u_char *) "entry";
            fv[0].len = 5;
            fv[1].data = (u_char *) id->str;
            fv[1].len = id->len;
            loyalty_metrics_event(store, LOYALTY_EVENT_INVALID);
            loyalty_consumer_dlq(cs, store, id->str, retry, 0,
                                 "entry fields are not strings", NULL,
                                 fv, 2);
            return;
        }
    }

    for (i = 0; i + 1 < fields->elements; i += 2) {
        f = fields->element[i];
        v = fields->element[i + 1];

        /* the retry's own fields are not the envelope's; a replayed
         * stream entry may carry _done */
        if (loyalty_consumer_own_field(f, retry)) {
            if (strcmp(f->str, "_attempts") == 0) {
                attempts = (unsigned) strtoul(v->str, NULL, 10);

            } else if (strcmp(f->str, "_done") == 0) {
                done = v;
            }

            continue;
        }

        n += 2;
        size += f->len + v->len + 2 * sizeof(loyalty_str_t);
    }

    if (fields->elements % 2) {
        n++;
        size += fields->element[fields->elements - 1]->len
                + sizeof(loyalty_str_t);
    }

    job = calloc(1, size);
    if (job == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "out of memory: %s left pending", id->str);
        return;
    }

    job->store = store;
    job->retry = retry ? 1 : 0;
    job->attempts = attempts;
    job->nfv = n;
    job->fv = (loyalty_str_t *) (job + 1);
    p = (u_char *) (job->fv + n);

    for (i = 0, n = 0; i < fields->elements; i++) {
        f = fields->element[i];

        if (i % 2 == 0 && i + 1 < fields->elements
            && loyalty_consumer_own_field(f, retry))
        {
            i++;
            continue;
        }

        job->fv[n].data = p;
        job->fv[n].len = f->len;
        memcpy(p, f->str, f->len);
        p += f->len;
        n++;
    }

    job->entry_id = (char *) p;
    memcpy(p, id->str, id->len + 1);

    if (done != NULL) {
        loyalty_consumer_done_parse(cs, job, done->str);
    }

    reason = NULL;
    n = job->nfv;

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
        loyalty_metrics_event(store, LOYALTY_EVENT_INVALID);
        loyalty_consumer_dlq(cs, store, job->entry_id, retry, 0, reason,
                             NULL, job->fv, n);
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

    if (retry) {
        loyalty_log(LOYALTY_LOG_INFO, job, NULL, -1, -1,
                    "retry: attempt %u", job->attempts + 1);
    }

    if (loyalty_consumer_route(cs, job, 0) == 0) {
        loyalty_log(LOYALTY_LOG_DEBUG, job, NULL, -1, -1,
                    "no flow (left) for %.*s from %.*s: done",
                    (int) job->ev.type.len, job->ev.type.data,
                    (int) job->ev.src.len, job->ev.src.data);
        job->pending = 1;
        job->unmatched = 1;
        loyalty_consumer_done(job, NULL, NULL);
        return;
    }

    loyalty_consumer_route(cs, job, 1);
}


static int
loyalty_consumer_own_field(redisReply *f, int retry)
{
    if (f->len == 0 || f->str[0] != '_') {
        return 0;
    }

    return retry || strcmp(f->str, "_done") == 0;
}


/*
 * "_done": the ids of the flows already served, space separated.  A
 * destination's name (what older workers wrote) stands for all its
 * flows.
 */

static void
loyalty_consumer_done_parse(loyalty_consumer_t *cs, loyalty_job_t *job,
    const char *list)
{
    size_t                len;
    unsigned              i, hit;
    const char           *p, *e;
    loyalty_conf_t       *conf;
    loyalty_flow_conf_t  *f;

    conf = cs->cycle->conf;

    for (p = list; *p != '\0'; p = e) {
        while (*p == ' ') {
            p++;
        }

        for (e = p; *e != '\0' && *e != ' '; e++) { /* void */ }

        len = (size_t) (e - p);
        hit = 0;

        for (i = 0; len && i < conf->flows_count; i++) {
            f = &conf->flows[i];

            if (strlen(f->id) == len && memcmp(f->id, p, len) == 0) {
                job->done[f->slot / 8] |= (uint8_t) (1 << (f->slot % 8));
                hit = 1;
            }
        }

        for (i = 0; len && !hit && i < conf->flows_count; i++) {
            f = &conf->flows[i];

            if (strlen(f->to) == len && memcmp(f->to, p, len) == 0) {
                job->done[f->slot / 8] |= (uint8_t) (1 << (f->slot % 8));
            }
        }
    }
}


static int
loyalty_consumer_is_done(loyalty_job_t *job, unsigned slot)
{
    return (job->done[slot / 8] >> (slot % 8)) & 1;
}


/* the number of flows that take the event; with submit, deliver to each */

static int
loyalty_consumer_route(loyalty_consumer_t *cs, loyalty_job_t *job, int submit)
{
    int                   n;
    unsigned              i;
    loyalty_str_t         store;
    loyalty_flow_conf_t  *f;
    uint8_t               taken[LOYALTY_FLOWS_MAX / 8];

    n = 0;
    memset(taken, 0, sizeof(taken));
    store.data = (u_char *) cs->cycle->conf->stores[job->store];
    store.len = strlen((char *) store.data);

    if (submit) {
        /* one extra reference while submitting: a delivery that fails
         * at once must not free the job under this loop */
        job->pending = loyalty_consumer_route(cs, job, 0) + 1;
    }

    for (i = 0; i < cs->cycle->conf->flows_count; i++) {
        f = &cs->cycle->conf->flows[i];

        /* a retry goes only to the flows that failed; what came from
         * Salesforce goes back there only when `from` says so */
        if (!loyalty_list_has(f->stores, f->stores_count, &store)
            || !loyalty_list_has(f->from, f->from_count, &job->ev.src)
            || (f->from_count == 0 && f->dest->kind == LOYALTY_DEST_SALESFORCE
                && loyalty_str_eq(&job->ev.src, "salesforce"))
            || !loyalty_list_has(f->on, f->on_count, &job->ev.type)
            || loyalty_consumer_is_done(job, f->slot)
            || ((taken[f->slot / 8] >> (f->slot % 8)) & 1))
        {
            continue;
        }

        /* unnamed webhook flows to one destination: one delivery */
        taken[f->slot / 8] |= (uint8_t) (1 << (f->slot % 8));
        n++;

        if (submit) {
            loyalty_http_submit(job, f);
        }
    }

    if (submit) {
        loyalty_consumer_done(job, NULL, NULL);
    }

    return n;
}


/* an empty (absent) list matches everything */

/* ms since the epoch, for the records (loyalty_now_ms is monotonic) */

static uint64_t
loyalty_wall_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


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


/* one delivery of the job finished (o == NULL: no delivery, no failure) */

void
loyalty_consumer_done(loyalty_job_t *job, loyalty_flow_conf_t *flow,
    const loyalty_outcome_t *o)
{
    loyalty_consumer_t   *cs;
    loyalty_dest_conf_t  *dest;

    cs = &loyalty_consumer;
    dest = flow ? flow->dest : NULL;

    if (o == NULL) {
        /* void */

    } else if (o->ok) {
        job->done[flow->slot / 8] |= (uint8_t) (1 << (flow->slot % 8));

    } else if (o->abandoned) {
        job->abandoned = 1;

    } else {
        job->failed++;

        /* a permanent failure is what the dead letter reports */
        if (!job->permanent || o->permanent) {
            job->permanent |= o->permanent;
            job->conflict |= o->conflict;
            job->status = o->status;
            job->fail_dest = dest ? dest->name : NULL;
            snprintf(job->error, sizeof(job->error), "%s",
                     o->error ? o->error : "failed");
        }

        if (o->retry_after_ms > job->retry_after_ms) {
            job->retry_after_ms = o->retry_after_ms;
        }
    }

    if (--job->pending > 0) {
        return;
    }

    loyalty_consumer_finish(cs, job);
    loyalty_job_free(job);
    loyalty_consumer_read(cs);
}


/*
 * Every delivery of the job is over: ack it (or end its retry), schedule
 * the next attempt, or dead-letter it, each in one script.
 */

static void
loyalty_consumer_finish(loyalty_consumer_t *cs, loyalty_job_t *job)
{
    size_t                len;
    unsigned              i, made, slots;
    uint64_t              delay, ceil;
    loyalty_conf_t       *conf;
    loyalty_store_t      *st;
    loyalty_flow_conf_t  *f;
    const char           *args[12];
    char                 *done, *hash, *p;
    char                  a[16], d[24], st_buf[16], at[24];

    conf = cs->cycle->conf;
    slots = 0;
    st = &cs->stores[job->store];

    if (job->abandoned) {
        loyalty_log(LOYALTY_LOG_INFO, job, NULL, -1, -1,
                    "stopping: left %s for another worker",
                    job->retry ? "in the retry set" : "pending");
        return;
    }

    if (!cs->cmd_ready) {
        loyalty_log(LOYALTY_LOG_WARN, job, NULL, -1, -1,
                    "redis down: outcome not recorded, it will be "
                    "delivered again");
        return;
    }

    len = strlen(st->retry) + strlen(job->entry_id) + 2;
    hash = malloc(len);

    len = 1;
    for (i = 0; i < conf->flows_count; i++) {
        len += strlen(conf->flows[i].id) + 1;
    }

    done = malloc(len);

    if (hash == NULL || done == NULL) {
        free(hash);
        free(done);
        loyalty_log(LOYALTY_LOG_ERR, job, NULL, -1, -1,
                    "out of memory: outcome not recorded");
        return;
    }

    snprintf(hash, strlen(st->retry) + strlen(job->entry_id) + 2, "%s:%s",
             st->retry, job->entry_id);

    if (job->failed == 0) {
        loyalty_metrics_event(job->store, job->unmatched
                                          ? LOYALTY_EVENT_UNMATCHED
                                          : LOYALTY_EVENT_ACKED);

        if (!job->retry) {
            loyalty_consumer_ack(cs, job->store, job->entry_id);

        } else {
            args[0] = st->retry;
            args[1] = hash;
            args[2] = job->entry_id;
            loyalty_consumer_script(cs, "retry done",
                                    loyalty_retry_ok_script, 2, args, 3,
                                    NULL, 0);
        }

        goto done;
    }

    made = job->attempts + 1;

    /* the flows already served: a retry or a replay skips them */
    p = done;
    *p = '\0';

    for (i = 0; i < conf->flows_count; i++) {
        f = &conf->flows[i];

        /* a shared slot is written once, by its first flow (slots are
         * numbered in flow order) */
        if (f->slot < slots) {
            continue;
        }

        slots = f->slot + 1;

        if (loyalty_consumer_is_done(job, f->slot)) {
            p += sprintf(p, "%s%s", p == done ? "" : " ", f->id);
        }
    }

    if (job->permanent || made >= conf->max_attempts) {
        snprintf(a, sizeof(a), "%u", made);
        snprintf(st_buf, sizeof(st_buf), "%ld", job->status);
        snprintf(at, sizeof(at), "%llu",
                 (unsigned long long) loyalty_wall_ms());

        args[0] = job->conflict ? "conflict"
                  : job->permanent ? "permanent failure"
                  : "attempts exhausted";

        loyalty_log(LOYALTY_LOG_WARN, job, job->fail_dest,
                    job->status ? (int) job->status : -1, -1,
                    "%s after %u attempt(s): %s",
                    job->conflict ? "parked in the conflicts stream"
                                  : "dead-lettered", made, args[0]);
        loyalty_metrics_event(job->store, job->conflict
                                          ? LOYALTY_EVENT_CONFLICT
                                          : LOYALTY_EVENT_DEAD_LETTERED);

        args[1] = job->error;
        args[2] = st_buf;
        args[3] = a;
        args[4] = job->fail_dest ? job->fail_dest : "";
        args[5] = at;
        args[6] = done;
        loyalty_consumer_dlq(cs, job->store, job->entry_id, job->retry,
                             job->conflict, args[0], args, job->fv,
                             job->nfv);
        goto done;
    }

    /* exponential backoff, full jitter; a longer Retry-After wins */
    ceil = conf->retry_base_ms;
    for (i = 1; i < made && ceil < conf->retry_cap_ms; i++) {
        ceil *= 2;
    }

    if (ceil > conf->retry_cap_ms) {
        ceil = conf->retry_cap_ms;
    }

    delay = (uint64_t) random() % (ceil + 1);

    if (job->retry_after_ms > delay) {
        delay = job->retry_after_ms;
    }

    snprintf(a, sizeof(a), "%u", made);
    snprintf(d, sizeof(d), "%llu", (unsigned long long) delay);

    loyalty_log(LOYALTY_LOG_WARN, job, job->fail_dest,
                job->status ? (int) job->status : -1, -1,
                "attempt %u failed: retry in %llu ms", made,
                (unsigned long long) delay);
    loyalty_metrics_event(job->store, LOYALTY_EVENT_RETRIED);

    args[0] = st->key;
    args[1] = st->retry;
    args[2] = hash;
    args[3] = LOYALTY_WORKER_GROUP;
    args[4] = job->entry_id;
    args[5] = job->retry ? "retry" : "in";
    args[6] = d;
    args[7] = a;
    args[8] = done;
    loyalty_consumer_script(cs, "retry", loyalty_retry_script, 3, args, 9,
                            job->retry ? NULL : job->fv,
                            job->retry ? 0 : job->nfv);

done:

    free(hash);
    free(done);
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

    } else if (reply->type == REDIS_REPLY_INTEGER && reply->integer > 0
               && strcmp(privdata, "XTRIM") == 0)
    {
        loyalty_log(LOYALTY_LOG_DEBUG, NULL, NULL, -1, -1,
                    "trimmed %lld finished entries", reply->integer);
    }

    if (cs->cycle->stopping) {
        loyalty_consumer_close(cs->cycle);
    }
}


/* EVAL script nkeys args... fv... on the cmd connection */

static void
loyalty_consumer_script(loyalty_consumer_t *cs, const char *what,
    const char *script, int nkeys, const char **args, size_t nargs,
    const loyalty_str_t *fv, size_t nfv)
{
    size_t        i, argc;
    size_t       *lens;
    const char  **argv;
    char          nk[8];

    if (!cs->cmd_ready) {
        return;
    }

    argv = malloc((nargs + nfv + 4) * sizeof(char *));
    lens = malloc((nargs + nfv + 4) * sizeof(size_t));

    if (argv == NULL || lens == NULL) {
        free(argv);
        free(lens);
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "%s: out of memory", what);
        return;
    }

    snprintf(nk, sizeof(nk), "%d", nkeys);

    argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = nk;

    for (i = 0; i < nargs; i++) {
        argv[argc++] = args[i];
    }

    for (i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }

    for (i = 0; i < nfv; i++) {
        argv[argc] = (const char *) fv[i].data;
        lens[argc++] = fv[i].len;
    }

    if (redisAsyncCommandArgv(cs->cmd, loyalty_consumer_cmd_done,
                              (void *) what, (int) argc, argv, lens)
        == REDIS_OK)
    {
        cs->outstanding++;
    }

    free(argv);
    free(lens);
}


typedef struct {
    loyalty_reply_pt      handler;
    void                 *data;
    const char           *what;
} loyalty_eval_ctx_t;


static void
loyalty_consumer_eval_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply          *reply;
    loyalty_eval_ctx_t   ctx;
    loyalty_consumer_t  *cs;

    (void) ac;

    cs = &loyalty_consumer;
    reply = r;
    ctx = *(loyalty_eval_ctx_t *) privdata;
    free(privdata);

    /* NULL: the connection is gone (outstanding was reset with it) */
    if (reply != NULL) {
        cs->outstanding--;

        if (reply->type == REDIS_REPLY_ERROR) {
            loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1, "%s: %s",
                        ctx.what, reply->str);
        }
    }

    if (ctx.handler != NULL) {
        ctx.handler(reply, ctx.data);
    }

    if (reply != NULL && cs->cycle->stopping) {
        loyalty_consumer_close(cs->cycle);
    }
}


/* EVAL script nkeys args... with a reply handler, on the cmd connection */

int
loyalty_consumer_eval(const char *what, const char *script, int nkeys,
    const char **args, size_t nargs, loyalty_reply_pt handler, void *data)
{
    size_t               i, argc;
    size_t               lens[16];
    const char          *argv[16];
    char                 nk[8];
    loyalty_eval_ctx_t  *ctx;
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;

    if (!cs->cmd_ready || nargs + 3 > 16) {
        return LOYALTY_ERROR;
    }

    ctx = malloc(sizeof(loyalty_eval_ctx_t));
    if (ctx == NULL) {
        return LOYALTY_ERROR;
    }

    ctx->handler = handler;
    ctx->data = data;
    ctx->what = what;

    snprintf(nk, sizeof(nk), "%d", nkeys);

    argc = 0;
    argv[argc++] = "EVAL";
    argv[argc++] = script;
    argv[argc++] = nk;

    for (i = 0; i < nargs; i++) {
        argv[argc++] = args[i];
    }

    for (i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }

    if (redisAsyncCommandArgv(cs->cmd, loyalty_consumer_eval_done, ctx,
                              (int) argc, argv, lens)
        != REDIS_OK)
    {
        free(ctx);
        return LOYALTY_ERROR;
    }

    cs->outstanding++;

    return LOYALTY_OK;
}


/*
 * XADD to loyalty:{S}:dlq (an identity conflict: loyalty:{S}:conflicts,
 * same fields, for review) and the XACK (or the end of the retry) in one
 * script, so a crash between them can neither lose the event nor
 * dead-letter it twice.  The dead letter carries dlq_reason, dlq_entry,
 * dlq_at, for a failed delivery error, status, attempts, dest, failed_at,
 * dlq_done (when not empty),
 * then the envelope's own fields unchanged (for `dlq replay`).
 * dlq_done lists the destinations that were served (replay skips them).
 * meta: reason, error, status, attempts, dest, failed_at, done (or NULL).
 */

static void
loyalty_consumer_dlq(loyalty_consumer_t *cs, unsigned store,
    const char *entry_id, int retry, int conflict, const char *reason,
    const char **meta, const loyalty_str_t *fv, size_t nfv)
{
    size_t            n, len;
    loyalty_store_t  *st;
    const char       *args[32];
    char             *hash;
    char              at[24];

    st = &cs->stores[store];

    if (!cs->cmd_ready) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                    "redis down: %s %s not dead-lettered yet", st->key,
                    entry_id);
        return;
    }

    len = strlen(st->retry) + strlen(entry_id) + 2;
    hash = malloc(len);
    if (hash == NULL) {
        return;
    }

    snprintf(hash, len, "%s:%s", st->retry, entry_id);
    snprintf(at, sizeof(at), "%llu", (unsigned long long) loyalty_wall_ms());

    n = 0;
    args[n++] = st->key;
    args[n++] = conflict ? st->conflicts : st->dlq;
    args[n++] = st->retry;
    args[n++] = hash;
    args[n++] = LOYALTY_WORKER_GROUP;
    args[n++] = entry_id;
    args[n++] = retry ? "retry" : "in";
    args[n++] = "dlq_reason";
    args[n++] = reason;
    args[n++] = "dlq_entry";
    args[n++] = entry_id;
    args[n++] = "dlq_at";
    args[n++] = at;

    if (meta != NULL) {
        args[n++] = "error";
        args[n++] = meta[1];
        args[n++] = "status";
        args[n++] = meta[2];
        args[n++] = "attempts";
        args[n++] = meta[3];
        args[n++] = "dest";
        args[n++] = meta[4];
        args[n++] = "failed_at";
        args[n++] = meta[5];

        if (meta[6][0] != '\0') {
            args[n++] = "dlq_done";
            args[n++] = meta[6];
        }
    }

    loyalty_consumer_script(cs, "dead letter", loyalty_dlq_script, 4, args,
                            n, fv, nfv);
    free(hash);
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
    evtimer_del(cs->retry_timer);
    evtimer_del(cs->trim_timer);
    evtimer_del(cs->hold_timer);

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


/*
 * After the loop: free what is left (a reload execs a new image, and
 * hiredis 0.14 opens its sockets without close-on-exec).  Jobs still
 * held stay pending in Redis.
 */

void
loyalty_consumer_cleanup(loyalty_cycle_t *cycle)
{
    unsigned             i;
    loyalty_job_t       *job;
    struct event        *timers[6];
    redisAsyncContext   *ac;
    loyalty_consumer_t  *cs;

    cs = &loyalty_consumer;
    cycle->stopping = 1;

    if (cs->rd != NULL) {
        ac = cs->rd;
        cs->rd = NULL;
        redisAsyncFree(ac);
    }

    if (cs->cmd != NULL) {
        ac = cs->cmd;
        cs->cmd = NULL;
        cs->cmd_ready = 0;
        redisAsyncFree(ac);
    }

    while (cs->jobs != NULL) {
        job = cs->jobs;
        loyalty_job_free(job);
    }

    timers[0] = cs->read_timer;
    timers[1] = cs->claim_timer;
    timers[2] = cs->reconnect_timer;
    timers[3] = cs->retry_timer;
    timers[4] = cs->trim_timer;
    timers[5] = cs->hold_timer;

    for (i = 0; i < 6; i++) {
        if (timers[i] != NULL) {
            event_free(timers[i]);
        }
    }

    for (i = 0; cs->stores != NULL && i < cs->nstores; i++) {
        free(cs->stores[i].key);
        free(cs->stores[i].dlq);
        free(cs->stores[i].conflicts);
        free(cs->stores[i].retry);
    }

    free(cs->stores);
    free(cs->argv);
    free(cs->argvlen);

    memset(cs, 0, sizeof(loyalty_consumer_t));
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
