/*
 * Copyright (C) loyalty-edge authors
 *
 * Lifecycle flows: a person is written to one object (a Lead) until one
 * of the `until` event types happened, then to the flow's object (a
 * Contact) for good.  The promotion is kept per person (whatever the
 * store, like the delta state) in loyalty:lifecycle:{<dest>:<Lead
 * object>:<key>}, in the slot of the Lead's state, a hash:
 *
 *   by         the event id that promoted the person (set once, never
 *              removed: the person never goes back to the Lead)
 *   lead       1 once a Lead write succeeded
 *   v:<field>  the last value written to the Lead: its event time (24
 *              characters), its JSON kind (a digit) and its text
 *   converted  1 once a flow's Contact got the full profile
 *   converted:<flow id>
 *              1 once this flow's Contact got the Lead's values of its
 *              own fields (flows sharing a lifecycle map different
 *              fields: each copies its own)
 *
 * Before a record joins its call, one script decides where it goes;
 * Redis answers in order on one connection, so a person's events keep
 * their stream order.  Promotion: the Lead is marked with the
 * `converted` fields (Salesforce's real convertLead is a SOAP call),
 * then the Contact is written with every value the Lead got plus the
 * event's own (per field the newer), then `converted:<flow id>` is
 * set.  The Lead's values are read again once the marking is written:
 * the marking took the Lead's lease after every Lead write checked
 * before the promotion (a Lead write keeps its values before it frees
 * the lease), so none is missed.  A failure on the way retries the
 * event, which promotes again (every step is idempotent).  A Lead
 * write checks `by` under its record lease (the delta script), so a
 * Lead is never written after its person was promoted, on any worker.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "loyalty_worker_sf.h"


/*
 * KEYS: lifecycle, the Lead's delta state and its lease; ARGV: "1" for
 * an `until` event, the event id, the flow's id.  {0}: the Lead; {3}:
 * the Contact; {2 or 4, field, value, ...}: the promotion with the
 * Lead's values (2: a Lead exists, or another worker is writing one
 * right now: mark it first; its lease makes the marking wait for that
 * write).
 */
static const char  loyalty_sf_lc_script[] =
    "local by = redis.call('HGET', KEYS[1], 'by') "
    "if not by then "
    "  if ARGV[1] ~= '1' then return {0} end "
    "  redis.call('HSET', KEYS[1], 'by', ARGV[2]) "
    "end "
    "if redis.call('HEXISTS', KEYS[1], 'converted:' .. ARGV[3]) == 1 then "
    "  return {3} "
    "end "
    "local r = {4} "
    "if redis.call('HEXISTS', KEYS[1], 'lead') == 1 "
    "   or redis.call('EXISTS', KEYS[2], KEYS[3]) > 0 then "
    "  r[1] = 2 "
    "end "
    "local all = redis.call('HGETALL', KEYS[1]) "
    "for i = 1, #all, 2 do "
    "  if string.sub(all[i], 1, 2) == 'v:' then "
    "    r[#r + 1] = string.sub(all[i], 3) "
    "    r[#r + 1] = all[i + 1] "
    "  end "
    "end "
    "return r";

/*
 * KEYS: lifecycle; ARGV: the flag to set ("" for none; converted:<flow>
 * also sets converted), then name, value pairs of the Lead's values
 * (v:<name>); a value from a newer event is kept.
 */
static const char  loyalty_sf_lc_mark_script[] =
    "if ARGV[1] ~= '' then "
    "  redis.call('HSET', KEYS[1], ARGV[1], '1') "
    "  if string.sub(ARGV[1], 1, 10) == 'converted:' then "
    "    redis.call('HSET', KEYS[1], 'converted', '1') "
    "  end "
    "end "
    "for i = 2, #ARGV, 2 do "
    "  local s = redis.call('HGET', KEYS[1], 'v:' .. ARGV[i]) "
    "  if not s or string.sub(s, 1, 24) <= string.sub(ARGV[i + 1], 1, 24) "
    "  then "
    "    redis.call('HSET', KEYS[1], 'v:' .. ARGV[i], ARGV[i + 1]) "
    "  end "
    "end "
    "return 1";


static void loyalty_sf_lc_decided(void *r, void *data);
static int loyalty_sf_lc_promote(loyalty_sf_item_t *it, redisReply *reply);
static int loyalty_sf_lc_convert(loyalty_sf_item_t *it);
static void loyalty_sf_lc_mark(loyalty_sf_item_t *it, const char *what);


int
loyalty_sf_lifecycle_conf(loyalty_flow_conf_t *f, unsigned i, char *err,
    size_t len)
{
    unsigned                  k, j;
    loyalty_json_t           *v;
    loyalty_sf_map_field_t   *map;
    loyalty_field_conf_t     *fc;
    loyalty_lifecycle_conf_t *lc;

    lc = f->lifecycle;

    if (lc->external_id == NULL) {
        lc->external_id = strdup(f->external_id);
        if (lc->external_id == NULL) {
            snprintf(err, len, "out of memory");
            return LOYALTY_ERROR;
        }
    }

    if (strcmp(lc->object, f->object) == 0 || loyalty_sf_is_event(lc->object)
        || lc->object[0] == '\0' || strspn(lc->object, "abcdefghijklmnopqrs"
           "tuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
           != strlen(lc->object)
        || strspn(lc->external_id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJK"
           "LMNOPQRSTUVWXYZ0123456789_") != strlen(lc->external_id))
    {
        snprintf(err, len, "flows[%u]: lifecycle.object \"%s\" must be a "
                 "Salesforce object other than the flow's %s (the record "
                 "before promotion, e.g. Lead), lifecycle.external_id an "
                 "API name", i, lc->object, f->object);
        return LOYALTY_ERROR;
    }

    for (k = 0; k < lc->until_count; k++) {
        if (f->on_count == 0) {
            break;
        }

        for (j = 0; j < f->on_count; j++) {
            if (strcmp(f->on[j], lc->until[k]) == 0) {
                break;
            }
        }

        if (j == f->on_count) {
            snprintf(err, len, "flows[%u]: lifecycle.until \"%s\" is not "
                     "in the flow's on: the promotion would never come", i,
                     lc->until[k]);
            return LOYALTY_ERROR;
        }
    }

    if (lc->converted_count == 0) {
        return LOYALTY_OK;
    }

    map = calloc(lc->converted_count, sizeof(loyalty_sf_map_field_t));
    lc->map = map;

    if (map == NULL) {
        snprintf(err, len, "out of memory");
        return LOYALTY_ERROR;
    }

    for (k = 0; k < lc->converted_count; k++) {
        fc = &lc->converted[k];

        if (fc->value == NULL || fc->from != NULL || fc->lookup != NULL
            || (fc->type != NULL && strcmp(fc->type, "text") != 0))
        {
            snprintf(err, len, "flows[%u]: lifecycle.converted[%u]: "
                     "{ field, value } (a fixed text, e.g. Status: Closed - "
                     "Converted)", i, k);
            return LOYALTY_ERROR;
        }

        if (strcmp(fc->field, lc->external_id) == 0) {
            snprintf(err, len, "flows[%u]: lifecycle.converted[%u]: %s is "
                     "the Lead's external id", i, k, fc->field);
            return LOYALTY_ERROR;
        }

        v = calloc(1, sizeof(loyalty_json_t));
        if (v == NULL) {
            snprintf(err, len, "out of memory");
            return LOYALTY_ERROR;
        }

        v->type = LOYALTY_JSON_STRING;
        v->text.data = (u_char *) fc->value;
        v->text.len = strlen(fc->value);
        v->plain = 1;
        fc->constant = v;

        map[k].field = fc->field;
        map[k].from = "value";
        map[k].type.type = LOYALTY_SF_TEXT;
        map[k].owner = LOYALTY_SF_OWNER_EITHER;
        map[k].constant = v;
    }

    return LOYALTY_OK;
}


void
loyalty_sf_lifecycle_conf_free(loyalty_lifecycle_conf_t *lc)
{
    unsigned  k;

    for (k = 0; lc->converted != NULL && k < lc->converted_count; k++) {
        free(lc->converted[k].constant);
        lc->converted[k].constant = NULL;
    }

    free(lc->map);
    lc->map = NULL;
}


/* where the record goes: one script, answered in stream order */

void
loyalty_sf_lifecycle_submit(loyalty_sf_item_t *it)
{
    size_t                     len;
    unsigned                   k;
    const char                *args[6];
    loyalty_event_t           *ev;
    loyalty_lifecycle_conf_t  *lc;
    char                       id[256];

    lc = it->flow->lifecycle;
    ev = &it->job->ev;

    if (it->lc_key == NULL) {
        len = strlen(it->flow->dest->name)
              + strlen(lc->object) + strlen(it->key) + 32;

        it->lc_key = loyalty_sf_palloc(&it->pool, 3 * len);
        if (it->lc_key == NULL) {
            loyalty_sf_item_fail(it, 0, "out of memory");
            return;
        }

        /* the lifecycle hash, then the Lead's state and lease keys (as
         * loyalty_worker_sf.c names them): one slot */
        snprintf(it->lc_key, len, "loyalty:lifecycle:{%s:%s:%s}",
                 it->flow->dest->name, lc->object, it->key);
        snprintf(it->lc_key + len, len, "loyalty:state:{%s:%s:%s}",
                 it->flow->dest->name, lc->object, it->key);
        snprintf(it->lc_key + 2 * len, len, "loyalty:state:{%s:%s:%s}:lock",
                 it->flow->dest->name, lc->object, it->key);
        it->lc_keys_len = len;
    }

    args[0] = it->lc_key;
    args[1] = it->lc_key + it->lc_keys_len;
    args[2] = it->lc_key + 2 * it->lc_keys_len;
    args[3] = "0";

    for (k = 0; k < lc->until_count; k++) {
        if (loyalty_str_eq(&ev->type, lc->until[k])) {
            args[3] = "1";
        }
    }

    snprintf(id, sizeof(id), "%.*s", (int) ev->id.len,
             ev->id.data ? (const char *) ev->id.data : "");
    args[4] = id;
    args[5] = it->flow->id;

    if (loyalty_consumer_eval("salesforce lifecycle", loyalty_sf_lc_script,
                              3, args, 6, loyalty_sf_lc_decided, it)
        != LOYALTY_OK)
    {
        loyalty_sf_item_fail(it, 0, "salesforce: lifecycle state not read "
                             "from Redis");
    }
}


static void
loyalty_sf_lc_decided(void *r, void *data)
{
    redisReply         *reply;
    loyalty_sf_item_t  *it;

    reply = r;
    it = data;

    /* stopping: abandoned (loyalty_sf_item_fail), left pending */
    if (loyalty_cycle.stopping
        || reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        loyalty_sf_item_fail(it, 0, "salesforce: lifecycle state not read "
                             "from Redis");
        return;
    }

    switch (reply->element[0]->integer) {

    case 0:
        it->phase = LOYALTY_SF_LC_LEAD;
        it->object = it->flow->lifecycle->object;
        it->external_id = it->flow->lifecycle->external_id;
        break;

    case 3:
        if (it->lc_own != NULL) {
            /* promoted meanwhile: the event's own values */
            memcpy(it->mapped, it->lc_own,
                   it->lc_nown * sizeof(loyalty_sf_mapped_t));
            it->nmapped = it->lc_nown;
        }

        it->phase = LOYALTY_SF_LC_NONE;
        it->object = it->flow->object;
        it->external_id = it->flow->external_id;
        break;

    default:
        if (loyalty_sf_lc_promote(it, reply) != LOYALTY_OK) {
            loyalty_sf_item_fail(it, 0, "out of memory");
            return;
        }

        /* once marked, the Contact (with the Lead's values read
         * again, now that no Lead write can be in flight) */
        if (reply->element[0]->integer == 2 && !it->lc_converted
            && it->flow->lifecycle->converted_count > 0)
        {
            if (loyalty_sf_lc_convert(it) != LOYALTY_OK) {
                loyalty_sf_item_fail(it, 0, "out of memory");
                return;
            }
        }

        break;
    }

    /* after its marking: before the person's later writes */
    loyalty_sf_enqueue(it, it->lc_converted);
}


/*
 * The Contact's first record: per mapped field the newer of the event's
 * value and the Lead's last one (a Lead written by later events before
 * an older promoting event arrived keeps its newer values), so the
 * Contact starts complete and never older than its Lead.
 */

static int
loyalty_sf_lc_promote(loyalty_sf_item_t *it, redisReply *reply)
{
    size_t                  i, k, n;
    redisReply             *f, *v;
    u_char                 *p;
    loyalty_sf_mapped_t    *m;
    loyalty_sf_map_field_t *map;

    it->phase = LOYALTY_SF_LC_PROMOTE;
    it->object = it->flow->object;
    it->external_id = it->flow->external_id;

    if (it->lc_mapped != NULL) {
        /* promoted again after a reroute: start from the event */
        it->mapped = it->lc_mapped;
        it->nmapped = it->lc_nmapped;
        it->lc_mapped = NULL;
    }

    /* the event's own values (kept: the Lead's are read again on a
     * second promotion, and may replace some of them) */
    if (it->lc_own == NULL) {
        it->lc_own = loyalty_sf_palloc(&it->pool, it->nmapped
                                       * sizeof(loyalty_sf_mapped_t) + 1);
        if (it->lc_own == NULL) {
            return LOYALTY_ERROR;
        }

        memcpy(it->lc_own, it->mapped,
               it->nmapped * sizeof(loyalty_sf_mapped_t));
        it->lc_nown = it->nmapped;

    } else {
        memcpy(it->mapped, it->lc_own,
               it->lc_nown * sizeof(loyalty_sf_mapped_t));
        it->nmapped = it->lc_nown;
    }

    map = it->flow->map;
    loyalty_sf_event_time(it->job, it->time);

    it->lc_time = loyalty_sf_palloc(&it->pool, it->flow->fields_count
                                               * sizeof(char *) + 1);
    if (it->lc_time == NULL) {
        return LOYALTY_ERROR;
    }

    memset(it->lc_time, 0, it->flow->fields_count * sizeof(char *));

    for (i = 1; i + 1 < reply->elements; i += 2) {
        f = reply->element[i];
        v = reply->element[i + 1];

        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING
            || v->len < 25 || v->str[24] < '0' || v->str[24] > '3')
        {
            continue;
        }

        for (k = 0; k < it->flow->fields_count; k++) {
            if (strcmp(map[k].field, f->str) == 0) {
                break;
            }
        }

        if (k == it->flow->fields_count) {
            continue;           /* no longer mapped */
        }

        for (n = 0; n < it->nmapped; n++) {
            if (it->mapped[n].map == &map[k]) {
                break;
            }
        }

        if (n < it->nmapped) {
            /* the event's own value wins unless the Lead's is newer; a
             * field the event does not write (not the owner) stays so */
            if (it->mapped[n].status != LOYALTY_SF_MAPPED
                || memcmp(v->str, it->time, 24) <= 0)
            {
                continue;
            }

        } else if (it->nmapped >= it->flow->fields_count) {
            continue;

        } else {
            n = it->nmapped++;
        }

        m = &it->mapped[n];
        memset(m, 0, sizeof(*m));
        m->map = &map[k];
        m->status = LOYALTY_SF_MAPPED;
        m->value.json = (loyalty_sf_json_e) (v->str[24] - '0');
        p = loyalty_sf_palloc(&it->pool, v->len + 1);
        if (p == NULL) {
            return LOYALTY_ERROR;
        }

        memcpy(p, v->str, v->len);
        p[24] = '\0';
        it->lc_time[n] = (const char *) p;
        m->value.text.data = p + 25;
        m->value.text.len = v->len - 25;
    }

    return LOYALTY_OK;
}


/* first the Lead, with the `converted` fields only */

static int
loyalty_sf_lc_convert(loyalty_sf_item_t *it)
{
    size_t                     n;
    loyalty_sf_mapped_t       *m;
    loyalty_lifecycle_conf_t  *lc;

    lc = it->flow->lifecycle;

    m = loyalty_sf_palloc(&it->pool, lc->converted_count
                                     * sizeof(loyalty_sf_mapped_t));
    if (m == NULL) {
        return LOYALTY_ERROR;
    }

    if (loyalty_sf_map_apply(lc->map, lc->converted_count, LOYALTY_SF_TO_CRM,
                             NULL, &it->pool.alloc, m, &n)
        != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    it->lc_mapped = it->mapped;
    it->lc_nmapped = it->nmapped;
    it->mapped = m;
    it->nmapped = n;
    it->phase = LOYALTY_SF_LC_CONVERT;
    it->object = lc->object;
    it->external_id = lc->external_id;

    return LOYALTY_OK;
}


int
loyalty_sf_lifecycle_written(loyalty_sf_item_t *it)
{
    switch (it->phase) {

    case LOYALTY_SF_LC_LEAD:
        /* its values make the Contact's first record */
        loyalty_sf_lc_mark(it, "lead");
        return 0;

    case LOYALTY_SF_LC_CONVERT:
        /*
         * The Lead's values copied when the promotion was decided may
         * miss a Lead write that was in flight then (in this worker, or
         * in another that held the Lead's lease); the marking took the
         * lease after it, so they are read again now.  Its key stays
         * busy until the Contact's record is queued.
         */
        it->mapped = it->lc_mapped;
        it->nmapped = it->lc_nmapped;
        it->lc_mapped = NULL;
        it->lc_converted = 1;
        it->call = NULL;
        it->verdict = LOYALTY_SF_DELTA_SEND;
        loyalty_sf_lifecycle_submit(it);
        return 1;

    case LOYALTY_SF_LC_PROMOTE:
        loyalty_sf_lc_mark(it, NULL);
        return 0;

    default:
        return 0;
    }
}


/*
 * HSET what 1, and for a Lead the values it got (with their event
 * times), six a script (the eval takes 13 arguments), in order on the
 * one connection; the flag goes with the last.
 */

#define LOYALTY_SF_LC_MARK_FIELDS  6

static void
loyalty_sf_lc_mark(loyalty_sf_item_t *it, const char *what)
{
    size_t                i, n;
    const char           *args[2 + 2 * LOYALTY_SF_LC_MARK_FIELDS];
    loyalty_sf_mapped_t  *m;
    char                 *v, *flag;

    args[0] = it->lc_key;
    args[1] = "";
    n = 2;

    if (what == NULL) {
        /* this flow's promotion is complete */
        flag = loyalty_sf_palloc(&it->pool, strlen(it->flow->id) + 11);
        if (flag == NULL) {
            return;
        }

        sprintf(flag, "converted:%s", it->flow->id);
        what = flag;
    }

    for (i = 0; it->phase == LOYALTY_SF_LC_LEAD && i < it->nmapped; i++) {
        m = &it->mapped[i];

        if (m->status != LOYALTY_SF_MAPPED || it->skip[i]) {
            continue;
        }

        v = loyalty_sf_palloc(&it->pool, m->value.text.len + 26);
        if (v == NULL) {
            return;
        }

        /* coalesced events: each value has its own event's time */
        memcpy(v, it->ftimes + 25 * i, 24);
        v[24] = (char) ('0' + m->value.json);
        memcpy(v + 25, m->value.text.data, m->value.text.len);
        v[m->value.text.len + 25] = '\0';

        if (n == 2 + 2 * LOYALTY_SF_LC_MARK_FIELDS) {
            (void) loyalty_consumer_eval("salesforce lifecycle mark",
                                         loyalty_sf_lc_mark_script, 1, args,
                                         n, NULL, NULL);
            n = 2;
        }

        args[n++] = m->map->field;
        args[n++] = v;
    }

    args[1] = what;

    (void) loyalty_consumer_eval("salesforce lifecycle mark",
                                 loyalty_sf_lc_mark_script, 1, args, n,
                                 NULL, NULL);
}
