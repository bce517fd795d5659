/*
 * Copyright (C) loyalty-edge authors
 *
 * The salesforce destination.  Each event is mapped at once with its
 * flow's field map (loyalty_sf_map_apply, towards the CRM): a value
 * that cannot be written dead-letters the event before any call, a
 * field the CRM owns is refused (logged, never sent).  Records wait in
 * the destination's list for up to batch_window_ms (or until 200 are
 * there) and go out as ONE sObject Collections upsert by external id,
 * allOrNone false; a call is made only when a concurrency slot is free,
 * so a backlog fills whole calls.  A call never holds two records with
 * the same external id value, nor one that a call in flight holds: the
 * later record waits for the next call, so writes to one record stay
 * in stream order.  Per-record results map back to their deliveries.
 *
 * Upsert by external id is idempotent: a retry, or a delivery repeated
 * after a crash, writes the same values to the same record.  Platform
 * events (NAME__e) are published with the create collection instead;
 * a lifecycle flow's record goes to the object its person is at
 * (loyalty_worker_sf_lifecycle.c).
 *
 * Delta and ordering: loyalty:state:{<dest>:<object>:<key>} keeps,
 * per field, "<event time>|<hash of the value>" of the last write.
 * When a call is made, one script per record takes the record's lease
 * (so two workers never write it at once) and says which fields to
 * send: a value already written, or one older than the stored one, is
 * not.  A record left with nothing is acked without a call.  After the
 * answer a second script stores what was written and frees the lease.
 */

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <ctype.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "loyalty_worker_sf.h"
#include "loyalty_time.h"


/* a loyalty_str_t's bytes for "%.*s", never NULL */
#define loyalty_sf_p(s)  ((s).len ? (const char *) (s).data : "")


struct loyalty_sf_blk_s {
    loyalty_sf_blk_t     *next;
    long double           data[];          /* aligned for anything */
};


/* KEYS: usage; ARGV: used, limit, at (ms) */
static const char  loyalty_sf_usage_script[] =
    "redis.call('HSET', KEYS[1], 'used', ARGV[1], 'limit', ARGV[2], "
    "           'at', ARGV[3]) return 1";


/* KEYS: loyalty:{S}:ownership; ARGV: its length, then field, value... */
static const char  loyalty_sf_refused_script[] =
    "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', "
    "           unpack(ARGV, 2)) return 1";

#define LOYALTY_SF_REFUSED_MAX  "10000"


/* after a busy lease: another worker writes the record right now */
#define LOYALTY_SF_LOCKED_RETRY_MS  200


/*

 * KEYS: state, lock, lifecycle; ARGV: consumer, lease ms, "F h t F h t"
 * (field, value hash, the time of the event the value comes from), "1"
 * for a Lead.  -2 when that Lead's person was promoted (its record is
 * the Contact now); -1 when another worker holds the lease; else per
 * field 0 send, 1 unchanged, 2 older than the stored value.  A value
 * already there from an older event takes the newer time, so a
 * later-arriving older event cannot overwrite it (for a Lead also the
 * copy its Contact will start from, v:<field>).  Nothing to send: the
 * lease is freed.
 */
static const char  loyalty_sf_check_script[] =
    "if ARGV[4] == '1' and redis.call('HEXISTS', KEYS[3], 'by') == 1 then "
    "  return -2 "
    "end "
    "if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return -1 end "
    "  redis.call('PEXPIRE', KEYS[2], ARGV[2]) "
    "end "
    "local r, send = {}, false "
    "for f, h, t in string.gmatch(ARGV[3], '(%S+) (%S+) (%S+)') do "
    "  local s, d = redis.call('HGET', KEYS[1], f), 0 "
    "  if s then "
    "    local st = string.sub(s, 1, 24) "
    "    if st > t then d = 2 "
    "    elseif string.sub(s, 26) == h then "
    "      d = 1 "
    "      if t > st then "
    "        redis.call('HSET', KEYS[1], f, t .. '|' .. h) "
    "        if ARGV[4] == '1' then "
    "          local v = redis.call('HGET', KEYS[3], 'v:' .. f) "
    "          if v and string.sub(v, 1, 24) < t then "
    "            redis.call('HSET', KEYS[3], 'v:' .. f, "
    "                       t .. string.sub(v, 25)) "
    "          end "
    "        end "
    "      end "
    "    end "
    "  end "
    "  if d == 0 then send = true end "
    "  r[#r + 1] = d "
    "end "
    "if not send then redis.call('DEL', KEYS[2]) end "
    "return r";

/*
 * KEYS: state, lock; ARGV: consumer, "F h t F h t" written ("" after a
 * failure: nothing); a newer stored time is kept.
 */
static const char  loyalty_sf_commit_script[] =
    "for f, h, t in string.gmatch(ARGV[2], '(%S+) (%S+) (%S+)') do "
    "  local s = redis.call('HGET', KEYS[1], f) "
    "  if not s or string.sub(s, 1, 24) <= t then "
    "    redis.call('HSET', KEYS[1], f, t .. '|' .. h) "
    "  end "
    "end "
    "if redis.call('GET', KEYS[2]) == ARGV[1] then "
    "  redis.call('DEL', KEYS[2]) "
    "end "
    "return 1";


static void loyalty_sf_item_free(loyalty_sf_item_t *it);
static void loyalty_sf_refused(loyalty_sf_item_t *it,
    const loyalty_sf_mapped_t *m);
static void loyalty_sf_busy_del(loyalty_sf_item_t *it);
static void loyalty_sf_call_unlink(loyalty_sf_call_t *c);
static int loyalty_sf_delta_prepare(loyalty_sf_item_t *it);
static void loyalty_sf_checked(void *r, void *data);
static void loyalty_sf_checked_all(loyalty_sf_call_t *c);
static void loyalty_sf_commit(loyalty_sf_item_t *it, int ok);
static void loyalty_sf_window(evutil_socket_t fd, short what, void *arg);
static void loyalty_sf_flush(loyalty_sf_t *sf);
static unsigned loyalty_sf_key_hash(const char *key);
static void loyalty_sf_item_done(loyalty_sf_item_t *it,
    const loyalty_outcome_t *o, uint64_t us);
static void loyalty_sf_send(loyalty_sf_t *sf);
static int loyalty_sf_build(loyalty_sf_call_t *c);
static void loyalty_sf_done(loyalty_http_req_t *r,
    const loyalty_http_res_t *res);
static void loyalty_sf_call_free(loyalty_sf_call_t *c);
static void loyalty_sf_fail(loyalty_job_t *job, loyalty_flow_conf_t *flow,
    int permanent, const char *error);
static void loyalty_sf_resolved(loyalty_job_t *job, void *data);
static void loyalty_sf_add(loyalty_job_t *job, loyalty_flow_conf_t *flow);


/* pool */

void *
loyalty_sf_palloc(void *ctx, size_t size)
{
    loyalty_sf_blk_t   *b;
    loyalty_sf_pool_t  *pool;

    pool = ctx;

    b = malloc(sizeof(loyalty_sf_blk_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = pool->blocks;
    pool->blocks = b;

    return b->data;
}


void
loyalty_sf_pool_init(loyalty_sf_pool_t *pool)
{
    pool->blocks = NULL;
    pool->alloc.alloc = loyalty_sf_palloc;
    pool->alloc.ctx = pool;
}


void
loyalty_sf_pool_free(loyalty_sf_pool_t *pool)
{
    loyalty_sf_blk_t  *b, *next;

    for (b = pool->blocks; b != NULL; b = next) {
        next = b->next;
        free(b);
    }

    pool->blocks = NULL;
}


int
loyalty_sf_init(loyalty_cycle_t *cycle)
{
    unsigned              i;
    loyalty_sf_t         *sf;
    loyalty_dest_conf_t  *dest;

    for (i = 0; i < cycle->conf->destinations_count; i++) {
        dest = &cycle->conf->destinations[i];

        if (dest->kind != LOYALTY_DEST_SALESFORCE) {
            continue;
        }

        sf = calloc(1, sizeof(loyalty_sf_t));
        if (sf == NULL) {
            return LOYALTY_ERROR;
        }

        dest->sf = sf;
        sf->dest = dest;
        sf->window = evtimer_new(cycle->base, loyalty_sf_window, sf);

        if (sf->window == NULL || loyalty_sf_auth_init(sf) != LOYALTY_OK
            || loyalty_sf_budget_init(sf) != LOYALTY_OK
            || loyalty_sf_slots_init(sf) != LOYALTY_OK)
        {
            return LOYALTY_ERROR;
        }
    }

    return LOYALTY_OK;
}


/* a flow keyed by person (or using $person) resolves the identity first */

void
loyalty_sf_submit(loyalty_job_t *job, loyalty_flow_conf_t *flow)
{
    if (flow->person) {
        loyalty_identity_resolve(job, loyalty_sf_resolved, flow);
        return;
    }

    loyalty_sf_add(job, flow);
}


static void
loyalty_sf_resolved(loyalty_job_t *job, void *data)
{
    loyalty_outcome_t     o;
    loyalty_flow_conf_t  *flow;

    flow = data;

    switch (job->id_state) {

    case LOYALTY_IDENTITY_OK:
        if (loyalty_cycle.stopping) {
            memset(&o, 0, sizeof(o));
            o.abandoned = 1;
            loyalty_consumer_done(job, flow, &o);
            return;
        }

        loyalty_sf_add(job, flow);
        return;

    case LOYALTY_IDENTITY_CONFLICT:
        /* ambiguous: never a guess, never a new record; for review */
        memset(&o, 0, sizeof(o));
        o.permanent = 1;
        o.conflict = 1;
        o.error = job->id_why;
        loyalty_metrics_delivery(flow->dest, LOYALTY_DELIVERY_PERMANENT, 0);
        loyalty_log(LOYALTY_LOG_WARN, job, flow->dest->name, -1, -1,
                    "%s not written: identity conflict", flow->object);
        loyalty_consumer_done(job, flow, &o);
        return;

    case LOYALTY_IDENTITY_NOKEY:
        loyalty_log(LOYALTY_LOG_WARN, job, flow->dest->name, -1, -1,
                    "salesforce: the event has no identity key for %s",
                    flow->object);
        loyalty_sf_fail(job, flow, 1, "salesforce: the event has no "
                        "identity key (identity.match)");
        return;

    default:
        loyalty_sf_fail(job, flow, 0, "identity: not resolved");
        return;
    }
}


static void
loyalty_sf_add(loyalty_job_t *job, loyalty_flow_conf_t *flow)
{
    size_t                i, n;
    loyalty_err_t         err;
    loyalty_json_t       *data;
    loyalty_sf_item_t    *it;
    loyalty_dest_conf_t  *dest;
    char                  error[400];

    dest = flow->dest;

    it = calloc(1, sizeof(loyalty_sf_item_t));
    if (it == NULL) {
        loyalty_sf_fail(job, flow, 0, "out of memory");
        return;
    }

    loyalty_sf_pool_init(&it->pool);
    it->job = job;
    it->flow = flow;

    memset(&err, 0, sizeof(err));
    data = NULL;

    if (loyalty_json_parse(&job->ev.data, &it->pool.alloc, &data, &err)
        != LOYALTY_OK
        || data->type != LOYALTY_JSON_OBJECT)
    {
        loyalty_sf_item_free(it);
        loyalty_sf_fail(job, flow, 1, "salesforce: data is not a JSON "
                        "object");
        return;
    }

    it->key = loyalty_sf_key(job, flow, &it->pool.alloc);

    if (it->key == NULL) {
        snprintf(error, sizeof(error), "salesforce: the event has no %s "
                 "for %s.%s", flow->key ? flow->key : "id", flow->object,
                 flow->external_id ? flow->external_id : "Id");
        loyalty_log(LOYALTY_LOG_WARN, job, dest->name, -1, -1, "%s", error);
        loyalty_sf_item_free(it);
        loyalty_sf_fail(job, flow, 1, error);
        return;
    }

    n = flow->fields_count;
    it->mapped = loyalty_sf_palloc(&it->pool, n * sizeof(loyalty_sf_mapped_t)
                                              + 1);

    if (it->mapped == NULL
        || loyalty_sf_envelope(job, data, &it->pool.alloc) != LOYALTY_OK)
    {
        loyalty_sf_item_free(it);
        loyalty_sf_fail(job, flow, 0, "out of memory");
        return;
    }

    switch (loyalty_sf_map_apply(flow->map, n, LOYALTY_SF_TO_CRM, data,
                                 &it->pool.alloc, it->mapped, &it->nmapped))
    {
    case LOYALTY_OK:
        break;

    case LOYALTY_DECLINED:
        /* the reason names field, type and source; it goes to the dead
         * letter, the log gets only the field names (no values) */
        for (i = 0; i < it->nmapped; i++) {
            if (it->mapped[i].status == LOYALTY_SF_INVALID) {
                loyalty_log(LOYALTY_LOG_WARN, job, dest->name, -1, -1,
                            "invalid value for %s.%s: dead letter",
                            flow->object, it->mapped[i].map->field);
                snprintf(error, sizeof(error), "invalid value: %s",
                         it->mapped[i].reason);
                break;
            }
        }

        loyalty_sf_item_free(it);
        loyalty_sf_fail(job, flow, 1, error);
        return;

    default:
        loyalty_sf_item_free(it);
        loyalty_sf_fail(job, flow, 0, "out of memory");
        return;
    }

    for (i = 0; i < it->nmapped; i++) {
        if (it->mapped[i].status == LOYALTY_SF_NOT_OWNER) {
            loyalty_log(LOYALTY_LOG_INFO, job, dest->name, -1, -1,
                        "conflict: %s.%s is owned by the CRM, not written",
                        flow->object, it->mapped[i].map->field);
            loyalty_sf_refused(it, &it->mapped[i]);
        }
    }

    it->object = flow->object;
    it->external_id = flow->external_id;
    it->nostate = flow->append ? 1 : 0;

    if (flow->lifecycle != NULL) {
        /* Lead or Contact: Redis knows whether the person converted */
        loyalty_sf_lifecycle_submit(it);
        return;
    }

    loyalty_sf_enqueue(it, 0);
}


void
loyalty_sf_enqueue(loyalty_sf_item_t *it, int front)
{
    loyalty_sf_t  *sf;

    sf = it->flow->dest->sf;

    if (loyalty_sf_delta_prepare(it) != LOYALTY_OK) {
        loyalty_sf_item_fail(it, 0, "out of memory");
        return;
    }

    /* a record that goes on (a Lead marked, a Lead found promoted) is
     * out of its call: its key is not being written any more */
    loyalty_sf_busy_del(it);

    it->added_ms = loyalty_now_ms();
    it->call = NULL;
    it->locked = 0;
    it->next = NULL;

    if (front) {
        /* a record that goes on keeps its place before later writes */
        it->next = sf->head;
        sf->head = it;
        if (sf->tail == NULL) {
            sf->tail = it;
        }

    } else {
        if (sf->tail == NULL) {
            sf->head = it;
        } else {
            sf->tail->next = it;
        }

        sf->tail = it;
    }

    sf->pending++;

    loyalty_sf_schedule(sf);
}


void
loyalty_sf_item_fail(loyalty_sf_item_t *it, int permanent, const char *error)
{
    loyalty_outcome_t  o;

    memset(&o, 0, sizeof(o));

    if (loyalty_cycle.stopping) {
        /* as loyalty_sf_cancel: it stays pending, claimed later */
        o.abandoned = 1;

    } else {
        o.permanent = permanent;
        o.error = error;
        loyalty_metrics_delivery(it->flow->dest, permanent
                                 ? LOYALTY_DELIVERY_PERMANENT
                                 : LOYALTY_DELIVERY_TRANSIENT, 0);
    }

    /* its coalesced events (a Lead decided again) share the outcome */
    loyalty_sf_item_done(it, &o, 0);
    loyalty_sf_item_free(it);
}


static void
loyalty_sf_fail(loyalty_job_t *job, loyalty_flow_conf_t *flow,
    int permanent, const char *error)
{
    loyalty_outcome_t  o;

    memset(&o, 0, sizeof(o));
    o.permanent = permanent;
    o.error = error;

    loyalty_metrics_delivery(flow->dest, permanent
                                         ? LOYALTY_DELIVERY_PERMANENT
                                         : LOYALTY_DELIVERY_TRANSIENT, 0);
    loyalty_consumer_done(job, flow, &o);
}


/*
 * A write refused because the CRM owns the field: the value the event
 * had, for review, in loyalty:{S}:ownership (the logs name the field
 * only: values may be personal data).
 */

static void
loyalty_sf_refused(loyalty_sf_item_t *it, const loyalty_sf_mapped_t *m)
{
    const char            *args[12];
    const loyalty_json_t  *v;
    char                   key[300], object[300], value[512];

    v = m->source;

    switch (v ? v->type : LOYALTY_JSON_NULL) {
    case LOYALTY_JSON_NUMBER:
    case LOYALTY_JSON_STRING:
        snprintf(value, sizeof(value), "%.*s", (int) v->text.len,
                 v->text.len ? (const char *) v->text.data : "");
        break;
    case LOYALTY_JSON_TRUE:
        snprintf(value, sizeof(value), "true");
        break;
    case LOYALTY_JSON_FALSE:
        snprintf(value, sizeof(value), "false");
        break;
    case LOYALTY_JSON_NULL:
        snprintf(value, sizeof(value), "null");
        break;
    default:
        snprintf(value, sizeof(value), "(JSON %s)",
                 v->type == LOYALTY_JSON_ARRAY ? "array" : "object");
        break;
    }

    snprintf(key, sizeof(key), "loyalty:{%s}:ownership",
             loyalty_cycle.conf->stores[it->job->store]);
    snprintf(object, sizeof(object), "%s:%s", it->flow->dest->name,
             it->flow->object);

    args[0] = key;
    args[1] = LOYALTY_SF_REFUSED_MAX;
    args[2] = "object";
    args[3] = object;
    args[4] = "field";
    args[5] = m->map->field;
    args[6] = "record";
    args[7] = it->key;
    args[8] = "event";
    args[9] = it->job->entry_id;
    args[10] = "value";
    args[11] = value;

    (void) loyalty_consumer_eval("salesforce ownership",
                                 loyalty_sf_refused_script, 1, args, 12,
                                 NULL, NULL);
}


static void
loyalty_sf_item_free(loyalty_sf_item_t *it)
{
    loyalty_sf_item_t  *r, *next;

    /* the record's values may point into its riders' pools */
    for (r = it->riders; r != NULL; r = next) {
        next = r->next;
        loyalty_sf_pool_free(&r->pool);
        free(r);
    }

    loyalty_sf_busy_del(it);
    loyalty_sf_pool_free(&it->pool);
    free(it);
}


static void
loyalty_sf_busy_del(loyalty_sf_item_t *it)
{
    loyalty_sf_t       *sf;
    struct timeval      tv;
    loyalty_sf_item_t **pp;

    if (!it->busy) {
        return;
    }

    sf = it->flow->dest->sf;
    pp = &sf->busy[loyalty_sf_key_hash(it->key)
                   & (LOYALTY_SF_BUSY_BUCKETS - 1)];

    while (*pp != it) {
        pp = &(*pp)->busy_next;
    }

    *pp = it->busy_next;
    it->busy = 0;

    /* the key is free: what waited for it may go, at the end of this
     * loop turn (whichever path freed it, a call in flight or not) */
    sf->stalled = 0;

    if (sf->pending > 0 && !loyalty_cycle.stopping) {
        tv.tv_sec = 0;
        tv.tv_usec = 0;
        evtimer_add(sf->window, &tv);
    }
}


/*
 * The record's external id value: ext_id, email, the event id and the
 * person id (the identity map's) are global; a store customer id is
 * only unique in its store, so it is written as "<store>:<id>".
 */

const char *
loyalty_sf_key(loyalty_job_t *job, loyalty_flow_conf_t *flow,
    const loyalty_alloc_t *a)
{
    char                 *p;
    const char           *store;
    loyalty_str_t         person;
    loyalty_event_t      *ev;
    const loyalty_str_t  *v;

    ev = &job->ev;
    store = NULL;
    person.data = (u_char *) job->person;
    person.len = (job->id_state == LOYALTY_IDENTITY_OK)
                 ? strlen(job->person) : 0;

    if (flow->key == NULL) {
        /* a platform event: no record, the event id names it */
        v = &ev->id;

    } else if (strcmp(flow->key, "ext_id") == 0) {
        v = &ev->ext_id;

    } else if (strcmp(flow->key, "person") == 0) {
        /* the identity map's id: global, one per person */
        v = &person;

    } else if (strcmp(flow->key, "email") == 0) {
        v = &ev->email;

    } else if (strcmp(flow->key, "id") == 0) {
        v = &ev->id;

    } else {
        v = &ev->store_cid;
        store = loyalty_cycle.conf->stores[job->store];
    }

    if (v->len == 0 || v->len > 200) {
        return NULL;
    }

    p = a->alloc(a->ctx, v->len + (store ? strlen(store) + 1 : 0) + 1);
    if (p == NULL) {
        return NULL;
    }

    if (store != NULL) {
        sprintf(p, "%s:%.*s", store, (int) v->len, v->data);
    } else {
        sprintf(p, "%.*s", (int) v->len, v->data);
    }

    return p;
}


/* the envelope's own values as a "$" member of data ("$occurred") */

int
loyalty_sf_envelope(loyalty_job_t *job, loyalty_json_t *data,
    const loyalty_alloc_t *a)
{
    size_t            i;
    loyalty_str_t     person;
    loyalty_json_t   *obj, *v;
    loyalty_event_t  *ev;
    struct {
        const char           *name;
        const loyalty_str_t  *value;
    } f[9];

    ev = &job->ev;
    f[0].name = "id";        f[0].value = &ev->id;
    f[1].name = "src";       f[1].value = &ev->src;
    f[2].name = "store";     f[2].value = &ev->store;
    f[3].name = "type";      f[3].value = &ev->type;
    f[4].name = "occurred";  f[4].value = &ev->occurred;
    f[5].name = "corr";      f[5].value = &ev->corr;
    f[6].name = "topic";     f[6].value = &ev->topic;
    f[7].name = "ext_id";    f[7].value = &ev->ext_id;
    f[8].name = "person";    f[8].value = &person;

    person.data = (u_char *) job->person;
    person.len = (job->id_state == LOYALTY_IDENTITY_OK)
                 ? strlen(job->person) : 0;

    obj = a->alloc(a->ctx, sizeof(loyalty_json_t));
    if (obj == NULL) {
        return LOYALTY_ERROR;
    }

    memset(obj, 0, sizeof(loyalty_json_t));
    obj->type = LOYALTY_JSON_OBJECT;
    obj->key.data = (u_char *) "$";
    obj->key.len = 1;
    obj->plain = 1;
    obj->key_plain = 1;
    obj->parent = data;

    for (i = 0; i < 9; i++) {
        if (f[i].value->len == 0) {
            continue;
        }

        v = a->alloc(a->ctx, sizeof(loyalty_json_t));
        if (v == NULL) {
            return LOYALTY_ERROR;
        }

        memset(v, 0, sizeof(loyalty_json_t));
        v->type = LOYALTY_JSON_STRING;
        v->key.data = (u_char *) f[i].name;
        v->key.len = strlen(f[i].name);
        v->text = *f[i].value;
        v->plain = 1;
        v->key_plain = 1;
        v->parent = obj;

        if (obj->last == NULL) {
            obj->child = v;
        } else {
            obj->last->next = v;
        }

        obj->last = v;
        obj->n++;
    }

    if (data->last == NULL) {
        data->child = obj;
    } else {
        data->last->next = obj;
    }

    data->last = obj;
    data->n++;

    return LOYALTY_OK;
}


/* a call goes when a slot is free and the window ended or 200 wait */

void
loyalty_sf_schedule(loyalty_sf_t *sf)
{
    uint64_t        now, age;
    struct timeval  tv;

    if (sf->pending == 0 || loyalty_cycle.stopping || sf->stalled
        || sf->ncalls >= sf->dest->concurrency)
    {
        return;
    }

    now = loyalty_now_ms();
    age = now - sf->head->added_ms;

    if (sf->pending >= LOYALTY_SF_COLLECTION_MAX
        || age >= sf->dest->batch_window_ms)
    {
        /* at the end of this loop turn: the rest of a read joins the
         * waiting records first, so a backlog coalesces (one write per
         * record) */
        tv.tv_sec = 0;
        tv.tv_usec = 0;
        evtimer_add(sf->window, &tv);
        return;
    }

    if (!evtimer_pending(sf->window, NULL)) {
        age = sf->dest->batch_window_ms - age;
        tv.tv_sec = (time_t) (age / 1000);
        tv.tv_usec = (suseconds_t) ((age % 1000) * 1000);
        evtimer_add(sf->window, &tv);
    }
}


static void
loyalty_sf_window(evutil_socket_t fd, short what, void *arg)
{
    loyalty_sf_t  *sf;

    (void) fd;
    (void) what;

    sf = arg;

    if (sf->pending > 0 && !sf->stalled
        && sf->ncalls < sf->dest->concurrency)
    {
        loyalty_sf_flush(sf);
    }
}


/* up to 200 records, oldest first, none whose record is being written */

static void
loyalty_sf_flush(loyalty_sf_t *sf)
{
    loyalty_sf_call_t  *c;
    loyalty_sf_item_t  *it, *prev, *next, *busy;

    if (sf->dest->bulk_threshold > 0
        && loyalty_sf_bulk_flush(sf) == LOYALTY_OK)
    {
        loyalty_sf_schedule(sf);
        return;
    }

    c = calloc(1, sizeof(loyalty_sf_call_t));
    if (c == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, sf->dest->name, -1, -1,
                    "out of memory");
        return;
    }

    c->sf = sf;
    c->items = c->few;
    prev = NULL;

    for (it = sf->head; it != NULL && c->n < LOYALTY_SF_COLLECTION_MAX;
         it = next)
    {
        next = it->next;

        /* one object and external id field per call */
        if (c->n > 0 && (c->items[0]->flow != it->flow
                         || strcmp(c->items[0]->object, it->object) != 0))
        {
            prev = it;
            continue;
        }

        busy = loyalty_sf_key_busy(sf, it->key);

        /* a lifecycle's Lead writes (which may be decided again, each
         * value with its own time), marking and promotion are writes
         * of their own */
        if (busy != NULL && (busy->call != c || busy->flow != it->flow
                             || strcmp(busy->object, it->object) != 0
                             || busy->phase != LOYALTY_SF_LC_NONE
                             || it->phase != LOYALTY_SF_LC_NONE))
        {
            /* written by a call in flight: the next call */
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
            /* a later event of a record in this call: one write */
            loyalty_sf_merge(busy, it);
            continue;
        }

        it->call = c;
        c->items[c->n++] = it;
        loyalty_sf_busy_add(sf, it);
    }

    if (c->n == 0) {
        /* everything waits for a call in flight: its end flushes */
        sf->stalled = 1;
        free(c);
        return;
    }

    c->next = sf->calls;
    if (sf->calls != NULL) {
        sf->calls->prev = c;
    }
    sf->calls = c;
    sf->ncalls++;

    /* in sf->calls while the scripts run: the keys stay busy here */
    loyalty_sf_check(c);

    loyalty_sf_schedule(sf);
}


/*
 * A later event of a record already in the call being made: its values
 * join the record's, field by field, the newer event's value winning
 * (per field: each keeps its own event time for the delta state), and
 * its delivery gets the record's outcome.  A backlog of many events for
 * one customer becomes one write.
 */

void
loyalty_sf_merge(loyalty_sf_item_t *into, loyalty_sf_item_t *it)
{
    size_t                i, j;
    loyalty_sf_mapped_t  *m;

    for (i = 0; i < it->nmapped; i++) {
        m = &it->mapped[i];

        if (m->status != LOYALTY_SF_MAPPED) {
            continue;
        }

        for (j = 0; j < into->nmapped; j++) {
            if (into->mapped[j].map == m->map) {
                break;
            }
        }

        if (j == into->nmapped) {
            /* room: both hold at most one entry per field of the map */
            into->nmapped++;

        } else if (into->mapped[j].status == LOYALTY_SF_MAPPED
                   && strcmp(it->ftimes + 25 * i, into->ftimes + 25 * j)
                      < 0)
        {
            continue;               /* the record's value is newer */
        }

        into->mapped[j] = *m;
        memcpy(into->hashes + 17 * j, it->hashes + 17 * i, 17);
        memcpy(into->ftimes + 25 * j, it->ftimes + 25 * i, 25);
    }

    it->next = into->riders;
    into->riders = it;
    into->nriders++;

    loyalty_log(LOYALTY_LOG_INFO, it->job, it->flow->dest->name, -1, -1,
                "%s: coalesced with another event of the record into one "
                "write", it->flow->object);
}


/* the outcome of a record is that of every event coalesced into it */

static void
loyalty_sf_item_done(loyalty_sf_item_t *it, const loyalty_outcome_t *o,
    uint64_t us)
{
    loyalty_sf_item_t  *r;

    for (r = it->riders; r != NULL; r = r->next) {
        if (!o->abandoned) {
            loyalty_metrics_delivery(r->flow->dest,
                                     o->ok ? LOYALTY_DELIVERY_SUCCESS
                                     : o->permanent
                                       ? LOYALTY_DELIVERY_PERMANENT
                                       : LOYALTY_DELIVERY_TRANSIENT, us);
        }

        loyalty_consumer_done(r->job, r->flow, o);
    }

    loyalty_consumer_done(it->job, it->flow, o);
}


/* FNV-1a of the key, case folded: Salesforce external ids ignore case */

static unsigned
loyalty_sf_key_hash(const char *key)
{
    uint32_t  h;

    for (h = 2166136261u; *key; key++) {
        h = (h ^ (u_char) tolower((u_char) *key)) * 16777619u;
    }

    return h;
}


loyalty_sf_item_t *
loyalty_sf_key_busy(loyalty_sf_t *sf, const char *key)
{
    loyalty_sf_item_t  *it;

    for (it = sf->busy[loyalty_sf_key_hash(key)
                       & (LOYALTY_SF_BUSY_BUCKETS - 1)];
         it != NULL;
         it = it->busy_next)
    {
        if (strcasecmp(it->key, key) == 0) {
            return it;
        }
    }

    return NULL;
}


void
loyalty_sf_busy_add(loyalty_sf_t *sf, loyalty_sf_item_t *it)
{
    unsigned  b;

    b = loyalty_sf_key_hash(it->key) & (LOYALTY_SF_BUSY_BUCKETS - 1);
    it->busy_next = sf->busy[b];
    sf->busy[b] = it;
    it->busy = 1;
}


/* calls that wait for a token go out once there is one */

static void
loyalty_sf_send(loyalty_sf_t *sf)
{
    loyalty_sf_call_t  *c;

    while (sf->ready != NULL) {
        if (sf->token[0] == '\0') {
            loyalty_sf_auth_need(sf);
            return;
        }

        c = sf->ready;
        sf->ready = c->wait_next;
        if (sf->ready == NULL) {
            sf->ready_tail = NULL;
        }
        c->wait_next = NULL;

        if (c->bulk != NULL) {
            loyalty_sf_bulk_start(c);
            continue;
        }

        if (loyalty_sf_build(c) != LOYALTY_OK) {
            loyalty_log(LOYALTY_LOG_ERR, NULL, sf->dest->name, -1, -1,
                        "out of memory building a collection");
            loyalty_sf_finish(c, LOYALTY_SF_TRANSIENT, NULL,
                              "out of memory", 0, 0);
            continue;
        }

        c->sent = 1;
        loyalty_sf_queue(sf, &c->req);
    }
}


void
loyalty_sf_token_ready(loyalty_sf_t *sf)
{
    loyalty_sf_send(sf);
    loyalty_pull_token_ready(sf);
}


static int
loyalty_sf_build(loyalty_sf_call_t *c)
{
    int                   event;
    size_t                i, j, n;
    loyalty_sf_t         *sf;
    loyalty_jw_t          w;
    loyalty_str_t         body, object, name, key;
    loyalty_sf_pool_t     pool;
    loyalty_sf_item_t    *it;
    loyalty_flow_conf_t  *flow;
    struct curl_slist    *h, *list;
    char                  line[600];

    sf = c->sf;
    flow = c->items[0]->flow;
    event = (c->items[0]->external_id == NULL);

    free(c->url);
    free(c->body);
    curl_slist_free_all(c->req.headers);
    c->url = NULL;
    c->body = NULL;
    c->req.headers = NULL;

    n = strlen(sf->instance_url) + strlen(c->items[0]->object)
        + (event ? 0 : strlen(c->items[0]->external_id))
        + strlen(sf->dest->api_version) + 64;

    c->url = malloc(n);
    if (c->url == NULL) {
        return LOYALTY_ERROR;
    }

    if (event) {
        /* platform events are published: a create collection */
        snprintf(c->url, n, "%s/services/data/v%s/composite/sobjects",
                 sf->instance_url, sf->dest->api_version);

    } else {
        snprintf(c->url, n, "%s/services/data/v%s/composite/sobjects/%s/%s",
                 sf->instance_url, sf->dest->api_version,
                 c->items[0]->object, c->items[0]->external_id);
    }

    loyalty_sf_pool_init(&pool);
    loyalty_jw_init(&w, &pool.alloc, 256 * c->n + 64);

    (void) flow;
    object.data = (u_char *) c->items[0]->object;
    object.len = strlen(c->items[0]->object);

    loyalty_sf_collection_begin(&w, 0);

    for (i = 0; i < c->n; i++) {
        it = c->items[i];
        loyalty_sf_record_begin(&w, &object);

        if (!event) {
            name.data = (u_char *) it->external_id;
            name.len = strlen(it->external_id);
            key.data = (u_char *) it->key;
            key.len = strlen(it->key);
            loyalty_jw_name(&w, &name);
            loyalty_jw_str(&w, NULL, &key);
        }

        for (j = 0; j < it->nmapped; j++) {
            if (it->mapped[j].status != LOYALTY_SF_MAPPED || it->skip[j]) {
                continue;
            }

            loyalty_sf_mapped_write(&w, &it->mapped[j]);
        }

        loyalty_sf_record_end(&w);
    }

    loyalty_sf_collection_end(&w);

    if (loyalty_jw_finish(&w, &body) != LOYALTY_OK) {
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    c->body = malloc(body.len + 1);
    if (c->body == NULL) {
        loyalty_sf_pool_free(&pool);
        return LOYALTY_ERROR;
    }

    memcpy(c->body, body.data, body.len);
    c->body[body.len] = '\0';
    loyalty_sf_pool_free(&pool);

    /* the token that fails (401) is the one to invalidate */
    snprintf(c->token, sizeof(c->token), "%s", sf->token);
    snprintf(line, sizeof(line), "Authorization: Bearer %s", c->token);

    list = curl_slist_append(NULL, line);
    h = list;
    h = h ? curl_slist_append(list, "Content-Type: application/json") : NULL;
    h = h ? curl_slist_append(list, "Accept: application/json") : NULL;
    h = h ? curl_slist_append(list, "Expect:") : NULL;

    if (h == NULL) {
        curl_slist_free_all(list);
        return LOYALTY_ERROR;
    }

    c->req.dest = sf->dest;
    c->req.method = event ? "POST" : "PATCH";
    c->req.url = c->url;
    c->req.headers = list;
    c->req.body = c->body;
    c->req.body_len = body.len;
    c->req.capture = "Sforce-Limit-Info";
    c->req.body_max = 1024 * 1024;
    c->req.handler = loyalty_sf_done;
    c->req.data = c;

    return LOYALTY_OK;
}


static void
loyalty_sf_done(loyalty_http_req_t *r, const loyalty_http_res_t *res)
{
    loyalty_sf_t         *sf;
    loyalty_err_t         err;
    loyalty_str_t         body;
    loyalty_sf_call_t    *c;
    loyalty_sf_pool_t     pool;
    loyalty_sf_result_t  *results, one;
    loyalty_dest_conf_t  *dest;
    char                  why[200];

    c = r->data;
    sf = c->sf;
    dest = sf->dest;
    c->sent = 0;

    if (res->abandoned) {
        loyalty_sf_finish(c, LOYALTY_SF_TRANSIENT, NULL, NULL, -1, 0);
        return;
    }

    if (res->header != NULL) {
        loyalty_sf_usage(sf, res->header);
    }

    if (res->error != NULL) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, dest->name, -1,
                    (long) (res->us / 1000), "collection of %zu failed: %s",
                    c->n, res->error);
        loyalty_sf_finish(c, LOYALTY_SF_TRANSIENT, NULL, res->error, 0,
                          res->us);
        return;
    }

    body.data = (u_char *) res->body;
    body.len = res->body_len;
    loyalty_sf_pool_init(&pool);
    memset(&err, 0, sizeof(err));

    if (res->status == 200) {
        results = loyalty_sf_palloc(&pool,
                                    c->n * sizeof(loyalty_sf_result_t));

        if (results == NULL
            || loyalty_sf_results_parse(&body, c->n, &pool.alloc, results,
                                        &err)
               != LOYALTY_OK)
        {
            loyalty_log(LOYALTY_LOG_WARN, NULL, dest->name, 200,
                        (long) (res->us / 1000), "collection answer not "
                        "understood: %s", err.msg);
            loyalty_sf_finish(c, LOYALTY_SF_TRANSIENT, NULL,
                              "salesforce: answer not understood", 200,
                              res->us);
            loyalty_sf_pool_free(&pool);
            return;
        }

        loyalty_log(LOYALTY_LOG_INFO, NULL, dest->name, 200,
                    (long) (res->us / 1000), "collection of %zu records",
                    c->n);
        loyalty_sf_finish(c, LOYALTY_SF_SUCCESS, results, NULL, 200,
                          res->us);
        loyalty_sf_pool_free(&pool);
        return;
    }

    memset(&one, 0, sizeof(one));

    if (loyalty_sf_answer_parse((int) res->status, &body, &pool.alloc, &one,
                                &err)
        != LOYALTY_OK)
    {
        one.cls = LOYALTY_SF_TRANSIENT;
    }

    snprintf(why, sizeof(why), "HTTP %ld %.*s: %.*s", res->status,
             (int) (one.code.len > 60 ? 60 : one.code.len),
             loyalty_sf_p(one.code),
             (int) (one.message.len > 100 ? 100 : one.message.len),
             loyalty_sf_p(one.message));

    /* the code only: Salesforce's messages may quote record values */
    loyalty_log(LOYALTY_LOG_WARN, NULL, dest->name, (int) res->status,
                (long) (res->us / 1000), "collection of %zu refused: "
                "HTTP %ld %.*s", c->n, res->status,
                (int) (one.code.len > 60 ? 60 : one.code.len),
                loyalty_sf_p(one.code));

    if (one.cls == LOYALTY_SF_AUTH || res->status == 401) {
        if (!c->retried && !loyalty_cycle.stopping) {
            /* one new token and one more try of this call */
            c->retried = 1;
            loyalty_sf_auth_failed(sf, c->token);

            if (sf->ready_tail == NULL) {
                sf->ready = c;
            } else {
                sf->ready_tail->wait_next = c;
            }
            sf->ready_tail = c;

            loyalty_sf_pool_free(&pool);
            loyalty_sf_send(sf);
            return;
        }

        one.cls = LOYALTY_SF_TRANSIENT;
    }

    if (one.cls == LOYALTY_SF_LIMIT) {
        /* the org's budget: every worker stops, nothing is dead-lettered */
        loyalty_rl_pause(dest, dest->limit_pause_ms, res->status);

    } else {
        /* a whole call failed: no record is known to be at fault, and
         * one bad record must not take 199 others to the dead letters;
         * max_attempts ends it, with Salesforce's message */
        one.cls = LOYALTY_SF_TRANSIENT;
    }

    loyalty_sf_finish(c, one.cls, NULL, why, res->status, res->us);

    loyalty_sf_pool_free(&pool);
}


/* out of the destination's list of calls in flight */

static void
loyalty_sf_call_unlink(loyalty_sf_call_t *c)
{
    loyalty_sf_t  *sf;

    sf = c->sf;

    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        sf->calls = c->next;
    }

    if (c->next != NULL) {
        c->next->prev = c->prev;
    }

    sf->ncalls--;

    /* its keys are free again (its records are freed before the next
     * flush): what waited for them may go */
    sf->stalled = 0;
}


/* every record of the call gets its outcome; then the next call */

void
loyalty_sf_finish(loyalty_sf_call_t *c, loyalty_sf_class_e cls,
    const loyalty_sf_result_t *results, const char *why, long status,
    uint64_t us)
{
    size_t                      i;
    loyalty_sf_t               *sf;
    loyalty_outcome_t           o;
    loyalty_sf_item_t          *it;
    loyalty_dest_conf_t        *dest;
    const loyalty_sf_result_t  *rs;
    char                        error[400];

    sf = c->sf;
    dest = sf->dest;

    loyalty_sf_call_unlink(c);

    for (i = 0; i < c->n; i++) {
        it = c->items[i];
        rs = results ? &results[i] : NULL;

        memset(&o, 0, sizeof(o));
        o.status = status > 0 ? status : 0;
        o.error = error;
        error[0] = '\0';

        if (status < 0) {
            o.abandoned = 1;
            o.error = NULL;
            loyalty_sf_commit(it, 0);
            loyalty_sf_item_done(it, &o, 0);
            loyalty_sf_item_free(it);
            continue;
        }

        if (rs != NULL) {
            cls = rs->cls;
            snprintf(error, sizeof(error), "%s%.*s: %.*s (%.*s)",
                     rs->cls == LOYALTY_SF_CONFLICT ? "conflict: " : "",
                     (int) (rs->code.len > 60 ? 60 : rs->code.len),
                     loyalty_sf_p(rs->code),
                     (int) (rs->message.len > 250 ? 250 : rs->message.len),
                     loyalty_sf_p(rs->message),
                     (int) (rs->fields.len > 60 ? 60 : rs->fields.len),
                     loyalty_sf_p(rs->fields));

        } else {
            snprintf(error, sizeof(error), "%s", why ? why : "failed");
        }

        switch (cls) {

        case LOYALTY_SF_SUCCESS:
            o.ok = 1;
            o.error = NULL;
            loyalty_log(LOYALTY_LOG_INFO, it->job, dest->name, (int) status,
                        (long) (us / 1000), "%s %s",
                        it->external_id ? "upserted" : "published",
                        it->object);

            if (it->flow->lifecycle != NULL) {
                /* a Lead's values are kept (v:) before its lease is
                 * freed: a promotion that takes the lease next copies
                 * them all */
                if (it->phase == LOYALTY_SF_LC_LEAD) {
                    (void) loyalty_sf_lifecycle_written(it);
                }

                loyalty_sf_commit(it, 1);

                if (it->phase != LOYALTY_SF_LC_LEAD
                    && loyalty_sf_lifecycle_written(it))
                {
                    /* the Lead is marked: now the Contact */
                    continue;
                }
            }

            loyalty_metrics_delivery(dest, LOYALTY_DELIVERY_SUCCESS, us);
            break;

        case LOYALTY_SF_PERMANENT:
        case LOYALTY_SF_CONFLICT:
            /* a duplicate or an ambiguous match is never forced: the
             * event waits in loyalty:{S}:conflicts for a person */
            o.permanent = 1;
            o.conflict = (cls == LOYALTY_SF_CONFLICT);
            loyalty_metrics_delivery(dest, LOYALTY_DELIVERY_PERMANENT, us);
            loyalty_log(LOYALTY_LOG_WARN, it->job, dest->name, (int) status,
                        (long) (us / 1000), "%s refused (%s): %.*s",
                        it->object, loyalty_sf_class_name(cls),
                        rs ? (int) (rs->code.len > 60 ? 60 : rs->code.len)
                           : 0, rs ? loyalty_sf_p(rs->code) : "");
            break;

        case LOYALTY_SF_LIMIT:
            o.retry_after_ms = dest->limit_pause_ms;
            /* fall through */

        default:
            loyalty_metrics_delivery(dest, LOYALTY_DELIVERY_TRANSIENT, us);
            if (rs != NULL) {
                loyalty_log(LOYALTY_LOG_WARN, it->job, dest->name,
                            (int) status, (long) (us / 1000),
                            "%s not written (transient): %.*s",
                            it->object,
                            (int) (rs->code.len > 60 ? 60 : rs->code.len),
                            loyalty_sf_p(rs->code));
            }
            break;
        }

        /* a failure leaves the state as it was: a retry sends again */
        loyalty_sf_commit(it, cls == LOYALTY_SF_SUCCESS);
        loyalty_sf_item_done(it, &o, us);
        loyalty_sf_item_free(it);
    }

    c->n = 0;
    loyalty_sf_call_free(c);

    loyalty_sf_schedule(sf);
}


/* "YYYY-MM-DDTHH:MM:SS.mmmZ" of occurred (else received): orders as a
 * string; time holds 25 bytes (also for the backfill's coalescing) */

void
loyalty_sf_event_time(loyalty_job_t *job, char *time)
{
    size_t            i, n, len;
    loyalty_event_t  *ev;
    char              utc[LOYALTY_TIME_MAX];

    ev = &job->ev;
    n = (ev->occurred.len > 0) ? loyalty_time_utc(&ev->occurred, utc) : 0;

    if (n >= 20) {
        memcpy(time, utc, 19);
        time[19] = '.';
        len = (n > 21 && utc[19] == '.') ? n - 21 : 0;

        for (i = 0; i < 3; i++) {
            time[20 + i] = (i < len) ? utc[20 + i] : '0';
        }

        time[23] = 'Z';
        time[24] = '\0';

    } else if (loyalty_time_unix_ms(ev->received, time) != 24) {
        /* never older than anything: the write is not held back */
        snprintf(time, 25, "9999-12-31T23:59:59.999Z");
    }
}


/*
 * The event time (occurred, else received) in the fixed-length form
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" that orders as a string, the state keys,
 * and a short hash of each mapped value with its JSON kind.
 */

static int
loyalty_sf_delta_prepare(loyalty_sf_item_t *it)
{
    size_t                i, n, len;
    uint64_t              h;
    loyalty_sf_mapped_t  *m;

    loyalty_sf_event_time(it->job, it->time);

    len = strlen(it->flow->dest->name)
          + strlen(it->object) + strlen(it->key) + 32;

    it->state = loyalty_sf_palloc(&it->pool, len);
    it->lock = loyalty_sf_palloc(&it->pool, len);
    /* room for every field of the map: later events of the record may
     * be coalesced into it (loyalty_sf_merge); a Lead's marking has
     * its own fields */
    n = it->flow->fields_count > it->nmapped ? it->flow->fields_count
                                             : it->nmapped;
    it->skip = loyalty_sf_palloc(&it->pool, n + 1);
    it->hashes = loyalty_sf_palloc(&it->pool, 17 * n + 1);
    it->ftimes = loyalty_sf_palloc(&it->pool, 25 * n + 1);

    if (it->state == NULL || it->lock == NULL || it->skip == NULL
        || it->hashes == NULL || it->ftimes == NULL)
    {
        return LOYALTY_ERROR;
    }

    /* one state per record whatever store the event came from: two
     * stores' events for one person are ordered against each other */
    snprintf(it->state, len, "loyalty:state:{%s:%s:%s}",
             it->flow->dest->name, it->object, it->key);
    snprintf(it->lock, len, "%s:lock", it->state);

    memset(it->skip, 0, n + 1);

    for (i = 0; i < it->nmapped; i++) {
        m = &it->mapped[i];

        /* a value the promoted Contact takes from its Lead keeps the
         * time of its own event */
        memcpy(it->ftimes + 25 * i,
               it->phase == LOYALTY_SF_LC_PROMOTE && it->lc_time[i]
               ? it->lc_time[i] : it->time, 25);

        /* FNV-1a 64 of the kind and the canonical text */
        h = 14695981039346656037ULL;
        h = (h ^ (uint64_t) ('0' + m->value.json)) * 1099511628211ULL;

        for (n = 0; n < m->value.text.len; n++) {
            h = (h ^ m->value.text.data[n]) * 1099511628211ULL;
        }

        snprintf(it->hashes + 17 * i, 17, "%016llx", (unsigned long long) h);
    }

    return LOYALTY_OK;
}


/* one script per record of the call, pipelined; the call goes on the
 * last answer */

void
loyalty_sf_check(loyalty_sf_call_t *c)
{
    size_t              i, j, len, off;
    loyalty_sf_item_t  *it;
    const char         *args[7];
    char               *pairs, lease[24];

    c->checking = 1;     /* held until every script is sent */

    snprintf(lease, sizeof(lease), "%u", c->lease_ms ? c->lease_ms
             : c->sf->dest->timeout_ms * 2 > 1000
             ? c->sf->dest->timeout_ms * 2 : 1000);

    for (i = 0; i < c->n; i++) {
        it = c->items[i];
        it->call = c;
        it->verdict = LOYALTY_SF_DELTA_SEND;

        len = 1;
        for (j = 0; j < it->nmapped; j++) {
            if (it->mapped[j].status == LOYALTY_SF_MAPPED) {
                len += strlen(it->mapped[j].map->field) + 18 + 25;
            }
        }

        if (len == 1 || it->nostate) {
            /* nothing mapped (the external id alone), or one record per
             * event (append, platform events): no state */
            continue;
        }

        pairs = loyalty_sf_palloc(&it->pool, len);
        if (pairs == NULL) {
            it->verdict = LOYALTY_SF_DELTA_ERROR;
            continue;
        }

        off = 0;
        for (j = 0; j < it->nmapped; j++) {
            if (it->mapped[j].status == LOYALTY_SF_MAPPED) {
                off += sprintf(pairs + off, "%s%s %s %s", off ? " " : "",
                               it->mapped[j].map->field,
                               it->hashes + 17 * j, it->ftimes + 25 * j);
            }
        }

        /* a Lead is written only while its person is not promoted */
        args[0] = it->state;
        args[1] = it->lock;
        args[2] = it->phase == LOYALTY_SF_LC_LEAD ? it->lc_key : it->state;
        args[3] = loyalty_cycle.consumer;
        args[4] = lease;
        args[5] = pairs;
        args[6] = it->phase == LOYALTY_SF_LC_LEAD ? "1" : "0";

        if (loyalty_consumer_eval("salesforce delta",
                                  loyalty_sf_check_script, 3, args, 7,
                                  loyalty_sf_checked, it)
            != LOYALTY_OK)
        {
            it->verdict = LOYALTY_SF_DELTA_ERROR;
            continue;
        }

        c->checking++;
    }

    if (--c->checking == 0) {
        loyalty_sf_checked_all(c);
    }
}


static void
loyalty_sf_checked(void *r, void *data)
{
    size_t                i, k;
    redisReply           *reply, *e;
    loyalty_sf_call_t    *c;
    loyalty_sf_item_t    *it;
    loyalty_dest_conf_t  *dest;

    reply = r;
    it = data;
    c = it->call;
    dest = c->sf->dest;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        it->verdict = LOYALTY_SF_DELTA_ERROR;

    } else if (reply->type == REDIS_REPLY_INTEGER && reply->integer == -2) {
        it->verdict = LOYALTY_SF_DELTA_PROMOTED;

    } else if (reply->type == REDIS_REPLY_INTEGER) {
        it->verdict = LOYALTY_SF_DELTA_LOCKED;
        dest->sf_skipped[LOYALTY_SF_SKIP_LOCKED]++;

    } else if (reply->type == REDIS_REPLY_ARRAY) {
        it->locked = 1;
        it->verdict = LOYALTY_SF_DELTA_UNCHANGED;

        for (i = 0, k = 0; i < it->nmapped; i++) {
            if (it->mapped[i].status != LOYALTY_SF_MAPPED) {
                continue;
            }

            e = (k < reply->elements) ? reply->element[k] : NULL;
            k++;

            if (e == NULL || e->type != REDIS_REPLY_INTEGER
                || e->integer == 0)
            {
                it->verdict = LOYALTY_SF_DELTA_SEND;
                continue;
            }

            it->skip[i] = (u_char) e->integer;

            if (e->integer == 2) {
                dest->sf_skipped[LOYALTY_SF_SKIP_OLDER]++;
                loyalty_log(LOYALTY_LOG_INFO, it->job, dest->name, -1, -1,
                            "%s.%s not written: a newer value is there",
                            it->object, it->mapped[i].map->field);
            } else {
                dest->sf_skipped[LOYALTY_SF_SKIP_UNCHANGED]++;
            }
        }

        if (it->verdict == LOYALTY_SF_DELTA_UNCHANGED) {
            /* the script freed the lease */
            it->locked = 0;
        }

    } else {
        it->verdict = LOYALTY_SF_DELTA_ERROR;
    }

    if (--c->checking == 0) {
        loyalty_sf_checked_all(c);
    }
}


/* records with nothing to send, or locked elsewhere, end here */

static void
loyalty_sf_checked_all(loyalty_sf_call_t *c)
{
    size_t                i, n;
    loyalty_sf_t         *sf;
    loyalty_outcome_t     o;
    loyalty_sf_item_t    *it;
    loyalty_dest_conf_t  *dest;

    sf = c->sf;
    dest = sf->dest;

    if (loyalty_cycle.stopping) {
        loyalty_sf_finish(c, LOYALTY_SF_TRANSIENT, NULL, NULL, -1, 0);
        return;
    }

    for (i = 0, n = 0; i < c->n; i++) {
        it = c->items[i];

        if (it->verdict == LOYALTY_SF_DELTA_SEND) {
            c->items[n++] = it;
            continue;
        }

        if (it->verdict == LOYALTY_SF_DELTA_PROMOTED) {
            /* decided again: it goes to the Contact (its key stays
             * busy until then) */
            it->call = NULL;
            loyalty_sf_lifecycle_submit(it);
            continue;
        }

        if (it->verdict == LOYALTY_SF_DELTA_UNCHANGED
            && it->flow->lifecycle != NULL
            && loyalty_sf_lifecycle_written(it))
        {
            continue;
        }

        memset(&o, 0, sizeof(o));

        switch (it->verdict) {

        case LOYALTY_SF_DELTA_UNCHANGED:
            o.ok = 1;
            dest->sf_skipped[LOYALTY_SF_SKIP_RECORD]++;
            loyalty_metrics_delivery(dest, LOYALTY_DELIVERY_SUCCESS, 0);
            loyalty_log(LOYALTY_LOG_INFO, it->job, dest->name, -1, -1,
                        "unchanged %s: not sent", it->object);
            break;

        case LOYALTY_SF_DELTA_LOCKED:
            o.retry_after_ms = LOYALTY_SF_LOCKED_RETRY_MS;
            o.error = "salesforce: the record is being written by another "
                      "worker";
            loyalty_metrics_delivery(dest, LOYALTY_DELIVERY_TRANSIENT, 0);
            loyalty_log(LOYALTY_LOG_INFO, it->job, dest->name, -1, -1,
                        "%s locked by another worker: retry",
                        it->object);
            break;

        default:
            o.error = "salesforce: delta state not read from Redis";
            loyalty_metrics_delivery(dest, LOYALTY_DELIVERY_TRANSIENT, 0);
            break;
        }

        loyalty_sf_item_done(it, &o, 0);
        loyalty_sf_item_free(it);
    }

    c->n = n;

    if (n == 0) {
        loyalty_sf_call_unlink(c);
        loyalty_sf_call_free(c);
        loyalty_sf_schedule(sf);
        return;
    }

    if (sf->ready_tail == NULL) {
        sf->ready = c;
    } else {
        sf->ready_tail->wait_next = c;
    }
    sf->ready_tail = c;

    loyalty_sf_send(sf);
}


/* written: store the sent fields' time|hash; either way free the lease */

static void
loyalty_sf_commit(loyalty_sf_item_t *it, int ok)
{
    size_t       j, len, off;
    const char  *args[5];
    char        *pairs;

    if (!it->locked) {
        return;
    }

    it->locked = 0;
    len = 1;

    for (j = 0; ok && j < it->nmapped; j++) {
        if (it->mapped[j].status == LOYALTY_SF_MAPPED && !it->skip[j]) {
            len += strlen(it->mapped[j].map->field) + 18 + 25;
        }
    }

    pairs = loyalty_sf_palloc(&it->pool, len);
    if (pairs == NULL) {
        /* the lease expires; the state stays behind: a resend */
        return;
    }

    off = 0;
    pairs[0] = '\0';

    for (j = 0; ok && j < it->nmapped; j++) {
        if (it->mapped[j].status == LOYALTY_SF_MAPPED && !it->skip[j]) {
            off += sprintf(pairs + off, "%s%s %s %s", off ? " " : "",
                           it->mapped[j].map->field, it->hashes + 17 * j,
                           it->ftimes + 25 * j);
        }
    }

    args[0] = it->state;
    args[1] = it->lock;
    args[2] = loyalty_cycle.consumer;
    args[3] = pairs;

    (void) loyalty_consumer_eval("salesforce delta commit",
                                 loyalty_sf_commit_script, 2, args, 4,
                                 NULL, NULL);
}


static void
loyalty_sf_call_free(loyalty_sf_call_t *c)
{
    if (c->bulk != NULL) {
        loyalty_sf_bulk_free(c);
    }

    curl_slist_free_all(c->req.headers);
    free(c->url);
    free(c->body);
    free(c);
}


/* "api-usage=18/15000": shared in Redis, and the metrics' gauges */

void
loyalty_sf_usage(loyalty_sf_t *sf, const char *header)
{
    loyalty_str_t       h;
    const char         *args[4];
    loyalty_sf_usage_t  u;
    char                used[24], limit[24], at[24];

    h.data = (u_char *) header;
    h.len = strlen(header);

    if (loyalty_sf_usage_parse(&h, &u) != LOYALTY_OK) {
        return;
    }

    sf->dest->sf_used = u.used;
    sf->dest->sf_limit = u.limit;
    loyalty_sf_budget_seen(sf, u.used, u.limit);

    snprintf(used, sizeof(used), "%lld", (long long) u.used);
    snprintf(limit, sizeof(limit), "%lld", (long long) u.limit);
    snprintf(at, sizeof(at), "%lld", (long long) time(NULL) * 1000);

    args[0] = sf->key_usage;
    args[1] = used;
    args[2] = limit;
    args[3] = at;

    (void) loyalty_consumer_eval("salesforce usage", loyalty_sf_usage_script,
                                 1, args, 4, NULL, NULL);
}


/* SIGTERM: what was gathered or waits for a token stays pending */

void
loyalty_sf_cancel(loyalty_cycle_t *cycle)
{
    unsigned              i;
    loyalty_sf_t         *sf;
    loyalty_outcome_t     o;
    loyalty_sf_item_t    *it, *next;
    loyalty_sf_call_t    *c;

    memset(&o, 0, sizeof(o));
    o.abandoned = 1;

    for (i = 0; i < cycle->conf->destinations_count; i++) {
        sf = cycle->conf->destinations[i].sf;
        if (sf == NULL) {
            continue;
        }

        evtimer_del(sf->window);
        loyalty_sf_auth_stop(sf);
        loyalty_sf_budget_stop(sf);
        loyalty_sf_slots_cancel(sf);
        loyalty_sf_bulk_cancel(sf);

        it = sf->head;
        sf->head = NULL;
        sf->tail = NULL;
        sf->pending = 0;

        for ( /* void */ ; it != NULL; it = next) {
            next = it->next;
            loyalty_sf_item_done(it, &o, 0);
            loyalty_sf_item_free(it);
        }

        while (sf->ready != NULL) {
            c = sf->ready;
            sf->ready = c->wait_next;
            loyalty_sf_finish(c, LOYALTY_SF_TRANSIENT, NULL, NULL, -1, 0);
        }

        sf->ready_tail = NULL;
    }
}


void
loyalty_sf_cleanup(loyalty_cycle_t *cycle)
{
    unsigned              i;
    loyalty_sf_t         *sf;
    loyalty_sf_item_t    *it, *next;
    loyalty_sf_call_t    *c;

    for (i = 0; i < cycle->conf->destinations_count; i++) {
        sf = cycle->conf->destinations[i].sf;
        if (sf == NULL) {
            continue;
        }

        for (it = sf->head; it != NULL; it = next) {
            next = it->next;
            loyalty_sf_item_free(it);
        }

        /* calls in flight were freed with the layer's requests */
        while (sf->calls != NULL) {
            c = sf->calls;
            sf->calls = c->next;

            while (c->n > 0) {
                loyalty_sf_item_free(c->items[--c->n]);
            }

            loyalty_sf_call_free(c);
        }

        if (sf->window != NULL) {
            event_free(sf->window);
        }

        loyalty_sf_auth_cleanup(sf);
        loyalty_sf_budget_cleanup(sf);
        loyalty_sf_slots_cleanup(sf);
        free(sf);
        cycle->conf->destinations[i].sf = NULL;
    }
}
