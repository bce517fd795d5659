/*
 * Copyright (C) loyalty-edge authors
 *
 * The identity map (single customer view), for any destination type.
 * An event's keys, in the configured rule order (identity.match:
 * store_cid, ext_id, email, phone), resolve to ONE person id in one
 * atomic script:
 *
 *   loyalty:{S}:identity        hash, the store's keys ("cid:42",
 *                               "email:ada@example.com") -> person
 *   loyalty:identity            hash, the global keys (ext, email,
 *                               phone) of every store -> person
 *   loyalty:identity:merged     hash, person merged away -> survivor
 *   loyalty:identity:keys:<p>   set of "<store> <field>" naming p's
 *                               entries, for a merge
 *
 * A store customer id is only looked up in its store's hash; the other
 * keys in the global one, so two stores' ids of one person meet through
 * a shared e-mail, external id or phone.  All keys found agree (or none
 * is known): that person (or a new one whose id derives from the
 * highest-priority key, so a retry or another worker gets the same), and
 * the event's other keys are registered to it.  Keys found pointing at
 * different persons: ambiguous, nothing is written; the delivery is an
 * identity conflict (loyalty:{S}:conflicts) until `conflicts resolve
 * STORE ID --merge` merges the persons (the one the highest-priority
 * rule found survives) and replays the event.
 *
 * One resolution per job, cached on it; flows that ask while it runs
 * wait for it.  Logs name key kinds and person ids, never the values.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "loyalty_worker.h"
#include "loyalty_idmap.h"


#define LOYALTY_IDENTITY_GLOBAL  "loyalty:identity"
#define LOYALTY_IDENTITY_MERGED  "loyalty:identity:merged"


typedef struct loyalty_identity_wait_s  loyalty_identity_wait_t;

struct loyalty_identity_wait_s {
    loyalty_identity_wait_t  *next;
    loyalty_identity_pt       handler;
    void                     *data;
};

typedef struct {
    loyalty_job_t            *job;
    loyalty_identity_wait_t  *head;
    loyalty_identity_wait_t  *tail;
} loyalty_identity_req_t;


uint64_t  loyalty_identity_counts[LOYALTY_IDENTITY_OUTCOMES];


/*
 * The lookup and registration, shared by resolve and merge: follow()
 * walks the merged-into records; reg() points the event's fields at
 * person p (store hash always, global hash for global kinds) and notes
 * each new entry in p's key set.
 */
#define LOYALTY_IDENTITY_LUA                                                  \
    "local function follow(p) "                                               \
    "  for i = 1, 64 do "                                                     \
    "    local m = redis.call('HGET', KEYS[3], p) "                           \
    "    if not m then return p end "                                         \
    "    p = m "                                                              \
    "  end "                                                                  \
    "  return p "                                                             \
    "end "                                                                    \
    "local function look(f) "                                                 \
    "  local h = KEYS[2] "                                                    \
    "  if string.sub(f, 1, 4) == 'cid:' then h = KEYS[1] end "                \
    "  local p = redis.call('HGET', h, f) "                                   \
    "  if p then return follow(p) end "                                       \
    "  return nil "                                                           \
    "end "                                                                    \
    "local function reg(p, first) "                                           \
    "  local set = 'loyalty:identity:keys:' .. p "                            \
    "  for i = first, #ARGV do "                                              \
    "    local f = ARGV[i] "                                                  \
    "    if string.sub(f, 1, 4) ~= 'cid:' "                                   \
    "       and redis.call('HGET', KEYS[2], f) ~= p then "                    \
    "      redis.call('HSET', KEYS[2], f, p) "                                \
    "    end "                                                                \
    "    if redis.call('HGET', KEYS[1], f) ~= p then "                        \
    "      redis.call('HSET', KEYS[1], f, p) "                                \
    "      redis.call('SADD', set, ARGV[1] .. ' ' .. f) "                     \
    "    end "                                                                \
    "  end "                                                                  \
    "end "

/*
 * KEYS: store map, global map, merged; ARGV: store, new person id,
 * fields in rule order.  {"new"|"matched", person} or {"ambiguous",
 * prefix, person, prefix, person...} (nothing written then).
 */
static const char  loyalty_identity_resolve_script[] =
    LOYALTY_IDENTITY_LUA
    "local found, person, amb = {}, nil, false "
    "for i = 3, #ARGV do "
    "  local p = look(ARGV[i]) "
    "  if p then "
    "    found[#found + 1] = string.match(ARGV[i], '^(%a+):') "
    "    found[#found + 1] = p "
    "    if not person then person = p "
    "    elseif p ~= person then amb = true end "
    "  end "
    "end "
    "if amb then return { 'ambiguous', unpack(found) } end "
    "local what = 'matched' "
    "if not person then person, what = follow(ARGV[2]), 'new' end "
    "reg(person, 3) "
    "return { what, person }";

/*
 * KEYS: store map, global map, merged; ARGV: store, fields in rule
 * order.  The persons the fields point at merge into the first one
 * found: every entry of the others is repointed, their key sets join
 * the survivor's, a merged-into record sends late lookups on; then the
 * fields are registered.  {survivor, merged...}, or {} when no field is
 * known.
 */
static const char  loyalty_identity_merge_script[] =
    LOYALTY_IDENTITY_LUA
    "local persons, seen = {}, {} "
    "for i = 2, #ARGV do "
    "  local p = look(ARGV[i]) "
    "  if p and not seen[p] then "
    "    seen[p] = true "
    "    persons[#persons + 1] = p "
    "  end "
    "end "
    "if #persons == 0 then return {} end "
    "local into = persons[1] "
    "local iset = 'loyalty:identity:keys:' .. into "
    "for j = 2, #persons do "
    "  local o = persons[j] "
    "  local set = 'loyalty:identity:keys:' .. o "
    "  for _, m in ipairs(redis.call('SMEMBERS', set)) do "
    "    local s, f = string.match(m, '^(%S+) (.+)$') "
    "    if s then "
    "      redis.call('HSET', 'loyalty:{' .. s .. '}:identity', f, into) "
    "      if string.sub(f, 1, 4) ~= 'cid:' then "
    "        redis.call('HSET', KEYS[2], f, into) "
    "      end "
    "      redis.call('SADD', iset, m) "
    "    end "
    "  end "
    "  redis.call('DEL', set) "
    "  redis.call('HSET', KEYS[3], o, into) "
    "end "
    "reg(into, 2) "
    "return persons";


static void loyalty_identity_done(void *r, void *data);
static void loyalty_identity_finish(loyalty_identity_req_t *req);
static void *loyalty_identity_alloc(void *ctx, size_t size);


typedef struct {
    u_char       *p;
    size_t        left;
} loyalty_identity_buf_t;


/* identity.match: the rule order; the default takes every key */

int
loyalty_identity_conf(loyalty_conf_t *conf, char *err, size_t len)
{
    int       kind;
    unsigned  i, j;

    if (conf->identity == NULL || conf->identity->match_count == 0) {
        for (i = 0; i < LOYALTY_IDMAP_KINDS; i++) {
            conf->identity_rules[i] = i;
        }

        conf->identity_nrules = LOYALTY_IDMAP_KINDS;

        return LOYALTY_OK;
    }

    conf->identity_nrules = 0;

    for (i = 0; i < conf->identity->match_count; i++) {
        kind = loyalty_idmap_kind(conf->identity->match[i]);

        if (kind < 0) {
            snprintf(err, len, "identity.match: \"%s\": use store_cid, "
                     "ext_id, email or phone", conf->identity->match[i]);
            return LOYALTY_ERROR;
        }

        for (j = 0; j < i; j++) {
            if (conf->identity_rules[j] == (unsigned) kind) {
                snprintf(err, len, "identity.match: \"%s\" listed twice",
                         conf->identity->match[i]);
                return LOYALTY_ERROR;
            }
        }

        conf->identity_rules[conf->identity_nrules++] = (unsigned) kind;
    }

    return LOYALTY_OK;
}


/* a bump allocator on the caller's buffer: the fields of one event */

static void *
loyalty_identity_alloc(void *ctx, size_t size)
{
    void                    *p;
    loyalty_identity_buf_t  *b;

    b = ctx;

    if (size > b->left) {
        return NULL;
    }

    p = b->p;
    b->p += size;
    b->left -= size;

    return p;
}


/*
 * handler(job, data) runs once job->id_state is known: at once when it
 * is, else when the job's one script answers.
 */

void
loyalty_identity_resolve(loyalty_job_t *job, loyalty_identity_pt handler,
    void *data)
{
    size_t                    i, n;
    const char               *store;
    loyalty_alloc_t           a;
    loyalty_str_t             fields[LOYALTY_IDMAP_KINDS];
    loyalty_identity_buf_t    buf;
    loyalty_identity_req_t   *req;
    loyalty_identity_wait_t  *w;
    const char               *args[5 + LOYALTY_IDMAP_KINDS];
    char                      key[LOYALTY_STORE_MAX + 32];
    char                      person[LOYALTY_IDMAP_PERSON_LEN + 1];
    u_char                    mem[LOYALTY_IDMAP_KINDS
                                  * (LOYALTY_IDMAP_VALUE_MAX + 16)];

    if (job->id_state != LOYALTY_IDENTITY_NONE) {
        handler(job, data);
        return;
    }

    w = calloc(1, sizeof(loyalty_identity_wait_t));
    if (w == NULL) {
        job->id_state = LOYALTY_IDENTITY_ERROR;
        handler(job, data);
        return;
    }

    w->handler = handler;
    w->data = data;

    req = job->id_wait;

    if (req != NULL) {
        /* another flow of this job asked first: wait for its answer */
        req->tail->next = w;
        req->tail = w;
        return;
    }

    req = calloc(1, sizeof(loyalty_identity_req_t));
    if (req == NULL) {
        free(w);
        job->id_state = LOYALTY_IDENTITY_ERROR;
        handler(job, data);
        return;
    }

    req->job = job;
    req->head = w;
    req->tail = w;
    job->id_wait = req;

    buf.p = mem;
    buf.left = sizeof(mem);
    a.alloc = loyalty_identity_alloc;
    a.ctx = &buf;

    store = loyalty_cycle.conf->stores[job->store];

    if (loyalty_idmap_fields(&job->ev, loyalty_cycle.conf->identity_rules,
                             loyalty_cycle.conf->identity_nrules, &a,
                             fields, &n)
        != LOYALTY_OK)
    {
        job->id_state = LOYALTY_IDENTITY_ERROR;
        loyalty_identity_finish(req);
        return;
    }

    if (n == 0) {
        job->id_state = LOYALTY_IDENTITY_NOKEY;
        loyalty_identity_finish(req);
        return;
    }

    if (loyalty_idmap_person(store, &fields[0], person) != LOYALTY_OK) {
        job->id_state = LOYALTY_IDENTITY_ERROR;
        loyalty_identity_finish(req);
        return;
    }

    snprintf(key, sizeof(key), "loyalty:{%s}:identity", store);

    args[0] = key;
    args[1] = LOYALTY_IDENTITY_GLOBAL;
    args[2] = LOYALTY_IDENTITY_MERGED;
    args[3] = store;
    args[4] = person;

    for (i = 0; i < n; i++) {
        args[5 + i] = (const char *) fields[i].data;
    }

    if (loyalty_consumer_eval("identity", loyalty_identity_resolve_script,
                              3, args, 5 + n, loyalty_identity_done, req)
        != LOYALTY_OK)
    {
        job->id_state = LOYALTY_IDENTITY_ERROR;
        loyalty_identity_finish(req);
    }
}


static void
loyalty_identity_done(void *r, void *data)
{
    size_t                   i, n;
    redisReply              *reply, *e;
    loyalty_job_t           *job;
    loyalty_str_t            pairs[2 * LOYALTY_IDMAP_KINDS];
    loyalty_identity_req_t  *req;

    reply = r;
    req = data;
    job = req->job;

    job->id_state = LOYALTY_IDENTITY_ERROR;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 2)
    {
        loyalty_log(LOYALTY_LOG_WARN, job, NULL, -1, -1,
                    "identity: not resolved (redis)");
        loyalty_identity_finish(req);
        return;
    }

    for (i = 0; i < reply->elements; i++) {
        if (reply->element[i]->type != REDIS_REPLY_STRING) {
            loyalty_identity_finish(req);
            return;
        }
    }

    e = reply->element[0];

    if (strcmp(e->str, "ambiguous") == 0) {
        n = 0;

        for (i = 1; i < reply->elements && n < 2 * LOYALTY_IDMAP_KINDS; i++) {
            pairs[n].data = (u_char *) reply->element[i]->str;
            pairs[n].len = reply->element[i]->len;
            n++;
        }

        (void) loyalty_idmap_reason(pairs, n, job->id_why,
                                    sizeof(job->id_why));
        job->id_state = LOYALTY_IDENTITY_CONFLICT;
        loyalty_identity_counts[LOYALTY_IDENTITY_AMBIGUOUS]++;

        /* kinds and person ids only */
        loyalty_log(LOYALTY_LOG_WARN, job, NULL, -1, -1, "%s", job->id_why);

        loyalty_identity_finish(req);
        return;
    }

    e = reply->element[1];

    if (!loyalty_idmap_person_valid((u_char *) e->str, e->len)
        || e->len >= sizeof(job->person))
    {
        loyalty_log(LOYALTY_LOG_WARN, job, NULL, -1, -1,
                    "identity: the map holds a bad person id");
        loyalty_identity_finish(req);
        return;
    }

    memcpy(job->person, e->str, e->len + 1);
    job->id_state = LOYALTY_IDENTITY_OK;

    if (strcmp(reply->element[0]->str, "new") == 0) {
        loyalty_identity_counts[LOYALTY_IDENTITY_NEW]++;
        loyalty_log(LOYALTY_LOG_DEBUG, job, NULL, -1, -1,
                    "identity: new person %s", job->person);

    } else {
        loyalty_identity_counts[LOYALTY_IDENTITY_MATCHED]++;
        loyalty_log(LOYALTY_LOG_DEBUG, job, NULL, -1, -1,
                    "identity: person %s", job->person);
    }

    loyalty_identity_finish(req);
}


/* every flow that waited goes on; the last one may free the job */

static void
loyalty_identity_finish(loyalty_identity_req_t *req)
{
    loyalty_job_t            *job;
    loyalty_identity_wait_t  *w, *next;
    loyalty_identity_pt       handler;
    void                     *data;

    job = req->job;
    w = req->head;
    job->id_wait = NULL;
    free(req);

    for ( /* void */ ; w != NULL; w = next) {
        next = w->next;
        handler = w->handler;
        data = w->data;
        free(w);
        handler(job, data);
    }
}


/*
 * `conflicts resolve STORE ID --merge` (synchronous, the CLI's
 * connection): the persons the parked event's keys point at become one,
 * before the event is replayed.  Prints what was merged.
 */

int
loyalty_identity_merge(void *ctx, loyalty_conf_t *conf, const char *store,
    const char *id)
{
    size_t                   i, j, n;
    redisReply              *r, *f;
    redisContext            *c;
    loyalty_alloc_t          a;
    loyalty_event_t          ev;
    loyalty_str_t            fields[LOYALTY_IDMAP_KINDS];
    loyalty_identity_buf_t   buf;
    const char              *argv[7 + LOYALTY_IDMAP_KINDS];
    size_t                   lens[7 + LOYALTY_IDMAP_KINDS];
    loyalty_str_t           *kv[4];
    char                     parked[LOYALTY_STORE_MAX + 32];
    char                     key[LOYALTY_STORE_MAX + 32];
    u_char                   mem[LOYALTY_IDMAP_KINDS
                                 * (LOYALTY_IDMAP_VALUE_MAX + 16)];

    c = ctx;

    snprintf(parked, sizeof(parked), "loyalty:{%s}:conflicts", store);
    snprintf(key, sizeof(key), "loyalty:{%s}:identity", store);

    r = redisCommand(c, "XRANGE %s %s %s", parked, id, id);

    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "loyalty-worker: redis: %s\n",
                r && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
        freeReplyObject(r);
        return 1;
    }

    if (r->elements != 1 || r->element[0]->elements != 2) {
        fprintf(stderr, "loyalty-worker: %s: no entry %s\n", parked, id);
        freeReplyObject(r);
        return 1;
    }

    /* only the identity keys are needed; the values stay in Redis */
    memset(&ev, 0, sizeof(ev));
    kv[0] = &ev.store_cid;
    kv[1] = &ev.ext_id;
    kv[2] = &ev.email;
    kv[3] = &ev.phone;

    f = r->element[0]->element[1];

    for (i = 0; i + 1 < f->elements; i += 2) {
        for (j = 0; j < LOYALTY_IDMAP_KINDS; j++) {
            if (f->element[i]->type == REDIS_REPLY_STRING
                && f->element[i + 1]->type == REDIS_REPLY_STRING
                && strcmp(f->element[i]->str, loyalty_idmap_rule(j)) == 0)
            {
                kv[j]->data = (u_char *) f->element[i + 1]->str;
                kv[j]->len = f->element[i + 1]->len;
            }
        }
    }

    buf.p = mem;
    buf.left = sizeof(mem);
    a.alloc = loyalty_identity_alloc;
    a.ctx = &buf;

    if (loyalty_idmap_fields(&ev, conf->identity_rules, conf->identity_nrules,
                             &a, fields, &n)
        != LOYALTY_OK)
    {
        freeReplyObject(r);
        fprintf(stderr, "loyalty-worker: out of memory\n");
        return 1;
    }

    argv[0] = "EVAL";
    argv[1] = loyalty_identity_merge_script;
    argv[2] = "3";
    argv[3] = key;
    argv[4] = LOYALTY_IDENTITY_GLOBAL;
    argv[5] = LOYALTY_IDENTITY_MERGED;
    argv[6] = store;

    for (i = 0; i < 7; i++) {
        lens[i] = strlen(argv[i]);
    }

    for (i = 0; i < n; i++) {
        argv[7 + i] = (const char *) fields[i].data;
        lens[7 + i] = fields[i].len;
    }

    f = redisCommandArgv(c, (int) (7 + n), argv, lens);

    if (f == NULL || f->type != REDIS_REPLY_ARRAY) {
        fprintf(stderr, "loyalty-worker: redis: %s\n",
                f && f->type == REDIS_REPLY_ERROR ? f->str : c->errstr);
        freeReplyObject(f);
        freeReplyObject(r);
        return 1;
    }

    if (f->elements == 0) {
        printf("no person to merge for %s\n", id);

    } else if (f->elements == 1) {
        printf("nothing to merge: every key of %s is person %s\n", id,
               f->element[0]->str);

    } else {
        printf("merged");

        for (i = 1; i < f->elements; i++) {
            printf(" %s", f->element[i]->str);
        }

        printf(" into %s\n", f->element[0]->str);
    }

    freeReplyObject(f);
    freeReplyObject(r);

    return 0;
}
