/*
 * Copyright (C) loyalty-edge authors
 *
 * One-shot operator commands on the same configuration (synchronous
 * hiredis: they run once and exit):
 *
 *   loyalty-worker -c FILE stats [--json]
 *   loyalty-worker -c FILE dlq list STORE [--count N]
 *   loyalty-worker -c FILE dlq show STORE ID
 *   loyalty-worker -c FILE dlq replay STORE ID|--all
 *   loyalty-worker -c FILE dlq purge STORE ID|--all
 *   loyalty-worker -c FILE conflicts list|show|resolve|dismiss ...
 *   loyalty-worker -c FILE conflicts resolve STORE ID --merge
 *   loyalty-worker -c FILE backfill STORE ... (loyalty_worker_backfill.c)
 *
 * The conflicts stream (identity conflicts parked for review) has the
 * dead letters' layout: `conflicts resolve` replays, `conflicts dismiss`
 * drops, as `dlq replay` and `dlq purge` do.
 *
 * Exit 0 on success, 1 when Redis fails or an entry does not exist,
 * 2 for bad arguments.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "loyalty_worker.h"


#define LOYALTY_CLI_KEY  (sizeof("loyalty:{}:conflicts") + 64)


/* the parked stream the dlq-like commands work on: "dlq" or "conflicts" */
static const char  *loyalty_cli_parked = "dlq";


static int loyalty_cli_reply(redisContext *c, redisReply *r, int type);
static int loyalty_cli_stats(redisContext *c, loyalty_conf_t *conf,
    int json);
static int loyalty_cli_list(redisContext *c, const char *store,
    long count);
static int loyalty_cli_show(redisContext *c, const char *store,
    const char *id);
static int loyalty_cli_replay(redisContext *c, const char *store,
    const char *id);
static int loyalty_cli_purge(redisContext *c, const char *store,
    const char *id);
static long long loyalty_cli_int(redisContext *c, const char *fmt,
    const char *key);
static const char *loyalty_cli_field(redisReply *fields, const char *name);
static void loyalty_cli_json_str(const char *s, size_t len);
static int loyalty_cli_usage(void);


/*
 * Replay: the envelope goes back to loyalty:{S}:in as a fresh entry
 * (without the dead letter's own fields) and leaves the dlq, atomically.
 * dlq_done (the flows already served) becomes the entry's _done,
 * which the worker honours: only the others get it again.
 * KEYS: dlq, in; ARGV: dlq entry id.  Returns the new entry id.
 */
static const char  loyalty_replay_script[] =
    "local r = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) "
    "if #r == 0 then return false end "
    "local meta = { dlq_reason = 1, dlq_entry = 1, dlq_at = 1, error = 1, "
    "  status = 1, attempts = 1, dest = 1, failed_at = 1, dlq_done = 1 } "
    "local f, out, done = r[1][2], {}, nil "
    "for i = 1, #f, 2 do "
    "  if f[i] == 'dlq_done' then done = f[i + 1] end "
    "  if not meta[f[i]] then "
    "    out[#out + 1] = f[i] "
    "    out[#out + 1] = f[i + 1] "
    "  end "
    "end "
    "if #out == 0 then return redis.error_reply('no envelope fields') end "
    "if done and done ~= '' then "
    "  out[#out + 1] = '_done' "
    "  out[#out + 1] = done "
    "end "
    "local id = redis.call('XADD', KEYS[2], '*', unpack(out)) "
    "redis.call('XDEL', KEYS[1], ARGV[1]) "
    "return id";

static const char  loyalty_purge_all_script[] =
    "local n = redis.call('XLEN', KEYS[1]) "
    "redis.call('DEL', KEYS[1]) "
    "return n";


int
loyalty_cli(loyalty_conf_t *conf, int argc, char **argv)
{
    int              rc, json, i, n, merge;
    long             count;
    char            *end;
    const char      *cmd, *store, *id;
    redisReply      *r;
    redisContext    *c;
    struct timeval   tv;
    const char      *av[4];
    size_t           lens[4];

    cmd = argv[0];
    store = NULL;
    id = NULL;
    json = 0;
    merge = 0;
    count = 100;

    if (strcmp(cmd, "stats") == 0) {
        if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0)) {
            return loyalty_cli_usage();
        }

        json = (argc == 2);

    } else if (strcmp(cmd, "backfill") == 0) {
        /* its own arguments: loyalty_worker_backfill.c */

    } else if ((strcmp(cmd, "dlq") == 0 || strcmp(cmd, "conflicts") == 0)
               && argc >= 3)
    {
        loyalty_cli_parked = cmd;
        cmd = argv[1];
        store = argv[2];

        /* conflicts speak of resolving and dismissing */
        if (strcmp(loyalty_cli_parked, "conflicts") == 0) {
            if (strcmp(cmd, "resolve") == 0) {
                cmd = "replay";
            } else if (strcmp(cmd, "dismiss") == 0) {
                cmd = "purge";
            } else if (strcmp(cmd, "replay") == 0
                       || strcmp(cmd, "purge") == 0)
            {
                return loyalty_cli_usage();
            }
        }

        if (!loyalty_store_valid((u_char *) store, strlen(store))) {
            fprintf(stderr, "loyalty-worker: \"%s\" is not a valid store "
                    "name\n", store);
            return 2;
        }

        if (strcmp(cmd, "list") == 0) {
            if (argc == 5 && strcmp(argv[3], "--count") == 0) {
                count = strtol(argv[4], &end, 10);
                if (*end != '\0' || count < 1 || count > 1000000) {
                    return loyalty_cli_usage();
                }

            } else if (argc != 3) {
                return loyalty_cli_usage();
            }

        } else if ((strcmp(cmd, "show") == 0 || strcmp(cmd, "replay") == 0
                    || strcmp(cmd, "purge") == 0) && argc == 4)
        {
            id = argv[3];

            if (strcmp(cmd, "show") == 0 && strcmp(id, "--all") == 0) {
                return loyalty_cli_usage();
            }

        } else if (strcmp(loyalty_cli_parked, "conflicts") == 0
                   && strcmp(cmd, "replay") == 0 && argc == 5
                   && strcmp(argv[3], "--all") != 0
                   && strcmp(argv[4], "--merge") == 0)
        {
            /* an identity conflict: merge the persons, then replay */
            id = argv[3];
            merge = 1;

        } else {
            return loyalty_cli_usage();
        }

    } else {
        return loyalty_cli_usage();
    }

    tv.tv_sec = 5;
    tv.tv_usec = 0;

    if (conf->redis_port == 0) {
        c = redisConnectUnixWithTimeout(conf->redis_host, tv);
    } else {
        c = redisConnectWithTimeout(conf->redis_host, conf->redis_port, tv);
    }

    if (c == NULL || c->err) {
        fprintf(stderr, "loyalty-worker: redis %s: %s\n",
                conf->redis ? conf->redis : "127.0.0.1:6379",
                c ? c->errstr : "out of memory");
        redisFree(c);
        return 1;
    }

    redisSetTimeout(c, tv);

    /* AUTH, then SELECT, as the worker's own connections do */
    for (i = 0; i < 2; i++) {
        n = loyalty_conf_redis_argv(conf, i, av, lens);

        if (n == 0) {
            continue;
        }

        r = redisCommandArgv(c, n, av, lens);

        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            fprintf(stderr, "loyalty-worker: redis %s: %s%s\n", av[0],
                    r ? r->str : c->errstr,
                    i == 0 ? " (check redis_password_file)"
                           : " (check redis_db)");
            freeReplyObject(r);
            redisFree(c);
            return 1;
        }

        freeReplyObject(r);
    }

    if (strcmp(cmd, "stats") == 0) {
        rc = loyalty_cli_stats(c, conf, json);

    } else if (strcmp(cmd, "backfill") == 0) {
        rc = loyalty_backfill(c, conf, argc, argv);

    } else if (strcmp(cmd, "list") == 0) {
        rc = loyalty_cli_list(c, store, count);

    } else if (strcmp(cmd, "show") == 0) {
        rc = loyalty_cli_show(c, store, id);

    } else if (strcmp(cmd, "replay") == 0) {
        rc = merge ? loyalty_identity_merge(c, conf, store, id) : 0;
        rc = rc ? rc : loyalty_cli_replay(c, store, id);

    } else {
        rc = loyalty_cli_purge(c, store, id);
    }

    redisFree(c);

    return rc;
}


/*
 * 1 when r is a reply of the expected type; otherwise the Redis error,
 * the connection's error or "unexpected reply" is printed, r freed, 0.
 */

static int
loyalty_cli_reply(redisContext *c, redisReply *r, int type)
{
    if (r != NULL && r->type == type) {
        return 1;
    }

    fprintf(stderr, "loyalty-worker: redis: %s\n",
            r == NULL ? c->errstr
            : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");

    if (r != NULL) {
        freeReplyObject(r);
    }

    return 0;
}


static int
loyalty_cli_usage(void)
{
    fprintf(stderr,
        "usage: loyalty-worker [-c FILE] stats [--json]\n"
        "       loyalty-worker [-c FILE] dlq list STORE [--count N]\n"
        "       loyalty-worker [-c FILE] dlq show STORE ID\n"
        "       loyalty-worker [-c FILE] dlq replay STORE ID|--all\n"
        "       loyalty-worker [-c FILE] dlq purge STORE ID|--all\n"
        "       loyalty-worker [-c FILE] conflicts list STORE [--count N]\n"
        "       loyalty-worker [-c FILE] conflicts show STORE ID\n"
        "       loyalty-worker [-c FILE] conflicts resolve STORE ID|--all\n"
        "       loyalty-worker [-c FILE] conflicts resolve STORE ID --merge\n"
        "       loyalty-worker [-c FILE] conflicts dismiss STORE ID|--all\n"
        "       loyalty-worker [-c FILE] backfill STORE [--flow ID] "
        "[--file F.ndjson]\n"
        "                      [--errors FILE] [--chunk N]\n");

    return 2;
}


static int
loyalty_cli_stats(redisContext *c, loyalty_conf_t *conf, int json)
{
    unsigned     i;
    long long    len, pending, retry, dlq, conflicts;
    redisReply  *r;
    char         key[LOYALTY_CLI_KEY];

    if (json) {
        printf("{\"stores\":[");
    } else {
        printf("%-24s %10s %10s %10s %10s %10s\n", "store", "stream",
               "pending", "retry", "dlq", "conflicts");
    }

    for (i = 0; i < conf->stores_count; i++) {
        snprintf(key, sizeof(key), "loyalty:{%s}:in", conf->stores[i]);
        len = loyalty_cli_int(c, "XLEN %s", key);

        pending = 0;
        r = redisCommand(c, "XPENDING %s " LOYALTY_WORKER_GROUP, key);

        if (r == NULL) {
            fprintf(stderr, "loyalty-worker: redis: %s\n", c->errstr);
            return 1;
        }

        /* no group yet (NOGROUP): nothing pending */
        if (r->type == REDIS_REPLY_ARRAY && r->elements > 0
            && r->element[0]->type == REDIS_REPLY_INTEGER)
        {
            pending = r->element[0]->integer;
        }

        freeReplyObject(r);

        snprintf(key, sizeof(key), "loyalty:{%s}:retry", conf->stores[i]);
        retry = loyalty_cli_int(c, "ZCARD %s", key);
        snprintf(key, sizeof(key), "loyalty:{%s}:dlq", conf->stores[i]);
        dlq = loyalty_cli_int(c, "XLEN %s", key);
        snprintf(key, sizeof(key), "loyalty:{%s}:conflicts",
                 conf->stores[i]);
        conflicts = loyalty_cli_int(c, "XLEN %s", key);

        if (len < 0 || retry < 0 || dlq < 0 || conflicts < 0) {
            return 1;
        }

        if (json) {
            printf("%s{\"store\":", i ? "," : "");
            loyalty_cli_json_str(conf->stores[i], strlen(conf->stores[i]));
            printf(",\"stream\":%lld,\"pending\":%lld,\"retry\":%lld,"
                   "\"dlq\":%lld,\"conflicts\":%lld}", len, pending, retry,
                   dlq, conflicts);

        } else {
            printf("%-24s %10lld %10lld %10lld %10lld %10lld\n",
                   conf->stores[i], len, pending, retry, dlq, conflicts);
        }
    }

    if (json) {
        printf("]}\n");
    }

    return 0;
}


static long long
loyalty_cli_int(redisContext *c, const char *fmt, const char *key)
{
    long long    n;
    redisReply  *r;

    r = redisCommand(c, fmt, key);

    if (!loyalty_cli_reply(c, r, REDIS_REPLY_INTEGER)) {
        return -1;
    }

    n = r->integer;
    freeReplyObject(r);

    return n;
}


/* one line per dead letter: id, event, type, status, attempts, reason */

static int
loyalty_cli_list(redisContext *c, const char *store, long count)
{
    size_t       i;
    redisReply  *r, *e;
    const char  *v;
    char         key[LOYALTY_CLI_KEY];

    snprintf(key, sizeof(key), "loyalty:{%s}:%s", store,
             loyalty_cli_parked);

    r = redisCommand(c, "XRANGE %s - + COUNT %ld", key, count);
    if (!loyalty_cli_reply(c, r, REDIS_REPLY_ARRAY)) {
        return 1;
    }

    for (i = 0; i < r->elements; i++) {
        e = r->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2) {
            continue;
        }

        v = loyalty_cli_field(e->element[1], "id");
        printf("%s\t%s", e->element[0]->str, v ? v : "-");
        v = loyalty_cli_field(e->element[1], "type");
        printf("\t%s", v ? v : "-");
        v = loyalty_cli_field(e->element[1], "status");
        printf("\t%s", v ? v : "-");
        v = loyalty_cli_field(e->element[1], "attempts");
        printf("\t%s", v ? v : "-");
        v = loyalty_cli_field(e->element[1], "dlq_reason");
        printf("\t%s\n", v ? v : "-");
    }

    freeReplyObject(r);

    return 0;
}


static const char *
loyalty_cli_field(redisReply *fields, const char *name)
{
    size_t  i;

    if (fields->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }

    for (i = 0; i + 1 < fields->elements; i += 2) {
        if (fields->element[i]->type == REDIS_REPLY_STRING
            && strcmp(fields->element[i]->str, name) == 0
            && fields->element[i + 1]->type == REDIS_REPLY_STRING)
        {
            return fields->element[i + 1]->str;
        }
    }

    return NULL;
}


/* one JSON object: "dlq_id", then every field as a string */

static int
loyalty_cli_show(redisContext *c, const char *store, const char *id)
{
    size_t       i;
    redisReply  *r, *f;
    char         key[LOYALTY_CLI_KEY];

    snprintf(key, sizeof(key), "loyalty:{%s}:%s", store,
             loyalty_cli_parked);

    r = redisCommand(c, "XRANGE %s %s %s", key, id, id);
    if (!loyalty_cli_reply(c, r, REDIS_REPLY_ARRAY)) {
        return 1;
    }

    if (r->elements != 1 || r->element[0]->elements != 2) {
        fprintf(stderr, "loyalty-worker: %s: no entry %s\n", key, id);
        freeReplyObject(r);
        return 1;
    }

    f = r->element[0]->element[1];

    printf("{\"dlq_id\":");
    loyalty_cli_json_str(id, strlen(id));

    for (i = 0; i + 1 < f->elements; i += 2) {
        printf(",");
        loyalty_cli_json_str(f->element[i]->str, f->element[i]->len);
        printf(":");
        loyalty_cli_json_str(f->element[i + 1]->str, f->element[i + 1]->len);
    }

    printf("}\n");
    freeReplyObject(r);

    return 0;
}


static void
loyalty_cli_json_str(const char *s, size_t len)
{
    char  *buf;

    buf = malloc(len * 6 + 3);
    if (buf == NULL) {
        return;
    }

    buf[0] = '"';
    len = 1 + loyalty_jw_escape((u_char *) buf + 1, (const u_char *) s, len);
    buf[len++] = '"';
    fwrite(buf, 1, len, stdout);
    free(buf);
}


static int
loyalty_cli_replay_one(redisContext *c, const char *dlq, const char *in,
    const char *id)
{
    int          rc;
    redisReply  *r;

    r = redisCommand(c, "EVAL %s 2 %s %s %s", loyalty_replay_script, dlq, in,
                     id);

    if (r == NULL) {
        fprintf(stderr, "loyalty-worker: redis: %s\n", c->errstr);
        return 1;
    }

    rc = 0;

    if (r->type == REDIS_REPLY_STRING) {
        printf("replayed %s as %s %s\n", id, in, r->str);

    } else if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "loyalty-worker: %s %s: %s\n", dlq, id, r->str);
        rc = 1;

    } else {
        fprintf(stderr, "loyalty-worker: %s: no entry %s\n", dlq, id);
        rc = 1;
    }

    freeReplyObject(r);

    return rc;
}


static int
loyalty_cli_replay(redisContext *c, const char *store, const char *id)
{
    int          rc;
    size_t       i;
    redisReply  *r;
    char         dlq[LOYALTY_CLI_KEY], in[LOYALTY_CLI_KEY], from[64];

    snprintf(dlq, sizeof(dlq), "loyalty:{%s}:%s", store,
             loyalty_cli_parked);
    snprintf(in, sizeof(in), "loyalty:{%s}:in", store);

    if (strcmp(id, "--all") != 0) {
        return loyalty_cli_replay_one(c, dlq, in, id);
    }

    /* page through; an entry that cannot be replayed is stepped over */
    strcpy(from, "-");
    rc = 0;

    for ( ;; ) {
        r = redisCommand(c, "XRANGE %s %s + COUNT 100", dlq, from);

        if (!loyalty_cli_reply(c, r, REDIS_REPLY_ARRAY)) {
            return 1;
        }

        if (r->elements == 0) {
            freeReplyObject(r);
            return rc;
        }

        for (i = 0; i < r->elements; i++) {
            if (loyalty_cli_replay_one(c, dlq, in,
                                       r->element[i]->element[0]->str)
                != 0)
            {
                rc = 1;
            }

            snprintf(from, sizeof(from), "(%s",
                     r->element[i]->element[0]->str);
        }

        freeReplyObject(r);
    }
}


static int
loyalty_cli_purge(redisContext *c, const char *store, const char *id)
{
    long long    n;
    redisReply  *r;
    char         dlq[LOYALTY_CLI_KEY];

    snprintf(dlq, sizeof(dlq), "loyalty:{%s}:%s", store,
             loyalty_cli_parked);

    if (strcmp(id, "--all") == 0) {
        r = redisCommand(c, "EVAL %s 1 %s", loyalty_purge_all_script, dlq);
    } else {
        r = redisCommand(c, "XDEL %s %s", dlq, id);
    }

    if (!loyalty_cli_reply(c, r, REDIS_REPLY_INTEGER)) {
        return 1;
    }

    n = r->integer;
    freeReplyObject(r);

    if (n == 0 && strcmp(id, "--all") != 0) {
        fprintf(stderr, "loyalty-worker: %s: no entry %s\n", dlq, id);
        return 1;
    }

    printf("purged %lld\n", n);

    return 0;
}
