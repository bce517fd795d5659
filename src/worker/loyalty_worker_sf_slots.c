/*
 * Copyright (C) loyalty-edge authors
 *
 * The org's cap on concurrent requests (apis.md §11.8: 25 long-running
 * requests per org, 5 on Developer orgs), for all workers together: a
 * salesforce destination's Collections calls and Bulk API steps take a
 * slot of loyalty:sf:{<url>}:slots first, a sorted set of leases (member
 * "<consumer>:<n>", score = expiry in ms of Redis TIME).  At most
 * org_concurrency members are live; a request gets a slot when one is
 * free, gives it back (ZREM) with its answer, and a worker that dies
 * loses its slots when their lease (timeout_ms + 5 s) runs out.
 * Destinations with the same url share the set.
 *
 * Per destination one acquire script at a time, like the rate limit:
 * requests wait in order in the destination's own list; a full set is
 * asked again every 50 ms.  Nothing blocks the loop.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "loyalty_worker_sf.h"


#define LOYALTY_SF_SLOT_WAIT_MS     50
#define LOYALTY_SF_SLOT_DOWN_MS     500


typedef struct loyalty_sf_slot_s  loyalty_sf_slot_t;

struct loyalty_sf_slot_s {
    loyalty_sf_slot_t      *next;
    loyalty_sf_t           *sf;
    loyalty_http_req_t     *req;
    loyalty_http_done_pt    handler;       /* the driver's */
    void                   *data;
    void                  (*release)(loyalty_http_req_t *r);
    unsigned                held:1;
    char                    member[340];
};


typedef struct {
    loyalty_sf_slot_t      *head;          /* waiting for a slot */
    loyalty_sf_slot_t      *tail;
    struct event           *timer;
    unsigned                asking:1;
    uint64_t                seq;
    char                    lease[24];
    char                    max[24];
    char                    key[2200];
} loyalty_sf_slots_t;


/* KEYS: slots; ARGV: member, lease ms, max.  0: taken, else ms to wait */
static const char  loyalty_sf_slot_take_script[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) "
    "if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then "
    "  return 50 end "
    "redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1]) "
    "redis.call('PEXPIRE', KEYS[1], ARGV[2]) "
    "return 0";

/* KEYS: slots; ARGV: member */
static const char  loyalty_sf_slot_give_script[] =
    "return redis.call('ZREM', KEYS[1], ARGV[1])";


static void loyalty_sf_slot_ask(loyalty_sf_t *sf);
static void loyalty_sf_slot_reply(void *r, void *data);
static void loyalty_sf_slot_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_sf_slot_wait(loyalty_sf_t *sf, unsigned ms);
static void loyalty_sf_slot_done(loyalty_http_req_t *r,
    const loyalty_http_res_t *res);
static void loyalty_sf_slot_release(loyalty_http_req_t *r);


int
loyalty_sf_slots_init(loyalty_sf_t *sf)
{
    loyalty_sf_slots_t   *s;
    loyalty_dest_conf_t  *d;

    d = sf->dest;

    if (d->org_concurrency == 0) {
        return LOYALTY_OK;
    }

    s = calloc(1, sizeof(loyalty_sf_slots_t));
    if (s == NULL) {
        return LOYALTY_ERROR;
    }

    sf->slots = s;
    snprintf(s->key, sizeof(s->key), "loyalty:sf:{%s}:slots", d->url);
    snprintf(s->lease, sizeof(s->lease), "%u", d->timeout_ms + 5000);
    snprintf(s->max, sizeof(s->max), "%u", d->org_concurrency);
    s->timer = evtimer_new(loyalty_cycle.base, loyalty_sf_slot_timer, sf);

    return s->timer ? LOYALTY_OK : LOYALTY_ERROR;
}


/* instead of loyalty_http_queue() for a call to the org */

void
loyalty_sf_queue(loyalty_sf_t *sf, loyalty_http_req_t *req)
{
    loyalty_sf_slot_t   *slot;
    loyalty_sf_slots_t  *s;
    loyalty_http_res_t   res;

    s = sf->slots;

    if (s == NULL) {
        loyalty_http_queue(req);
        return;
    }

    slot = calloc(1, sizeof(loyalty_sf_slot_t));
    if (slot == NULL) {
        memset(&res, 0, sizeof(res));
        res.error = "out of memory";
        req->handler(req, &res);
        return;
    }

    slot->sf = sf;
    slot->req = req;
    slot->handler = req->handler;
    slot->data = req->data;
    slot->release = req->release;
    snprintf(slot->member, sizeof(slot->member), "%s:%llu",
             loyalty_cycle.consumer, (unsigned long long) ++s->seq);

    req->handler = loyalty_sf_slot_done;
    req->data = slot;
    req->release = loyalty_sf_slot_release;

    if (s->tail == NULL) {
        s->head = slot;
    } else {
        s->tail->next = slot;
    }
    s->tail = slot;

    loyalty_sf_slot_ask(sf);
}


static void
loyalty_sf_slot_ask(loyalty_sf_t *sf)
{
    const char          *args[4];
    loyalty_sf_slots_t  *s;

    s = sf->slots;

    if (s->head == NULL || s->asking || loyalty_cycle.stopping
        || evtimer_pending(s->timer, NULL))
    {
        return;
    }

    args[0] = s->key;
    args[1] = s->head->member;
    args[2] = s->lease;
    args[3] = s->max;

    if (loyalty_consumer_eval("salesforce org slot",
                              loyalty_sf_slot_take_script, 1, args, 4,
                              loyalty_sf_slot_reply, sf)
        != LOYALTY_OK)
    {
        /* Redis is away: wait, never go over the cap */
        loyalty_sf_slot_wait(sf, LOYALTY_SF_SLOT_DOWN_MS);
        return;
    }

    s->asking = 1;
}


static void
loyalty_sf_slot_reply(void *r, void *data)
{
    redisReply          *reply;
    loyalty_sf_t        *sf;
    loyalty_sf_slot_t   *slot;
    loyalty_sf_slots_t  *s;

    reply = r;
    sf = data;
    s = sf->slots;
    s->asking = 0;

    if (loyalty_cycle.stopping || s->head == NULL) {
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER) {
        loyalty_sf_slot_wait(sf, LOYALTY_SF_SLOT_DOWN_MS);
        return;
    }

    if (reply->integer > 0) {
        loyalty_log(LOYALTY_LOG_DEBUG, NULL, sf->dest->name, -1, -1,
                    "org_concurrency: all %s slots taken, wait", s->max);
        loyalty_sf_slot_wait(sf, LOYALTY_SF_SLOT_WAIT_MS);
        return;
    }

    slot = s->head;
    s->head = slot->next;
    if (s->head == NULL) {
        s->tail = NULL;
    }

    slot->next = NULL;
    slot->held = 1;
    loyalty_http_queue(slot->req);

    loyalty_sf_slot_ask(sf);
}


static void
loyalty_sf_slot_wait(loyalty_sf_t *sf, unsigned ms)
{
    struct timeval       tv;
    loyalty_sf_slots_t  *s;

    s = sf->slots;

    if (loyalty_cycle.stopping) {
        return;
    }

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(s->timer, &tv);
}


static void
loyalty_sf_slot_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;

    loyalty_sf_slot_ask(arg);
}


/* the answer: the slot goes back, then the driver's handler */

static void
loyalty_sf_slot_done(loyalty_http_req_t *r, const loyalty_http_res_t *res)
{
    const char          *args[2];
    loyalty_sf_t        *sf;
    loyalty_sf_slot_t   *slot;
    loyalty_sf_slots_t  *s;

    slot = r->data;
    sf = slot->sf;
    s = sf->slots;

    r->handler = slot->handler;
    r->data = slot->data;
    r->release = slot->release;

    if (slot->held) {
        args[0] = s->key;
        args[1] = slot->member;
        (void) loyalty_consumer_eval("salesforce org slot",
                                     loyalty_sf_slot_give_script, 1, args,
                                     2, NULL, NULL);
    }

    free(slot);

    /* after the ZREM on the same connection: the next may take it */
    loyalty_sf_slot_ask(sf);

    r->handler(r, res);
}


/* at exit, for a request still in flight: free, report nothing */

static void
loyalty_sf_slot_release(loyalty_http_req_t *r)
{
    loyalty_sf_slot_t  *slot;

    slot = r->data;
    r->handler = slot->handler;
    r->data = slot->data;
    r->release = slot->release;
    free(slot);

    if (r->release != NULL) {
        r->release(r);
    }
}


/* SIGTERM: what waits for a slot is abandoned, as a queued request */

void
loyalty_sf_slots_cancel(loyalty_sf_t *sf)
{
    loyalty_sf_slot_t   *slot;
    loyalty_sf_slots_t  *s;
    loyalty_http_res_t   res;
    loyalty_http_req_t  *r;

    s = sf->slots;

    if (s == NULL) {
        return;
    }

    evtimer_del(s->timer);
    memset(&res, 0, sizeof(res));
    res.abandoned = 1;

    while (s->head != NULL) {
        slot = s->head;
        s->head = slot->next;

        r = slot->req;
        r->handler = slot->handler;
        r->data = slot->data;
        r->release = slot->release;
        free(slot);

        r->handler(r, &res);
    }

    s->tail = NULL;
}


void
loyalty_sf_slots_cleanup(loyalty_sf_t *sf)
{
    loyalty_sf_slot_t   *slot;
    loyalty_sf_slots_t  *s;

    s = sf->slots;

    if (s == NULL) {
        return;
    }

    while (s->head != NULL) {
        slot = s->head;
        s->head = slot->next;
        free(slot);
    }

    if (s->timer != NULL) {
        event_free(s->timer);
    }

    free(s);
    sf->slots = NULL;
}
