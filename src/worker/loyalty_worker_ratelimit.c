/*
 * Copyright (C) loyalty-edge authors
 *
 * Shared rate limits per destination, for destinations with a `rate`.
 *
 * GCRA in one Lua script on loyalty:rl:{<destination>}: the key holds the
 * theoretical arrival time (TAT, microseconds of Redis TIME, so the
 * clocks of the workers' machines do not matter).  Emission interval
 * T = 1e6 / rate us, tolerance tau = burst x T: a request at `now` is
 * allowed when TAT + T - tau <= now (TAT = max(TAT, now)), and the TAT
 * moves on by T; otherwise the script answers how many ms to wait.  In
 * any window of W seconds at most burst + W x rate requests are allowed,
 * whichever worker asks.
 *
 * A 429 sets loyalty:rl:{<destination>}:pause (PX = Retry-After, 1 s
 * without one); the token script answers its PTTL first, without taking
 * a token, so every worker stops sending until it expires.
 *
 * Per destination, one token request at a time: the worker asks only
 * when a request is queued and a concurrency slot is free, starts the
 * head of the queue when the answer is 0, and otherwise arms the
 * destination's timer for the ms the script gave.  Nothing spins, and a
 * waiting destination never holds up another one.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "loyalty_worker.h"


#define LOYALTY_RL_REDIS_DOWN_MS   500
#define LOYALTY_RL_MAX_WAIT_MS     3600000


/* KEYS: state, pause; ARGV: interval_us, tolerance_us.  0 or ms to wait */
static const char  loyalty_rl_token_script[] =
    "local p = redis.call('PTTL', KEYS[2]) "
    "if p > 0 then return p end "
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2]) "
    "local T = tonumber(ARGV[1]) "
    "local tat = tonumber(redis.call('GET', KEYS[1]) or 0) or 0 "
    "if tat < now then tat = now end "
    "local allow = tat + T - tonumber(ARGV[2]) "
    "if allow > now then "
    "  return math.floor((allow - now + 999) / 1000) end "
    "redis.call('SET', KEYS[1], string.format('%d', tat + T), 'PX', "
    "           math.floor((tat + T - now) / 1000) + 1000) "
    "return 0";

/* KEYS: pause; ARGV: ms.  Only ever lengthens the pause */
static const char  loyalty_rl_pause_script[] =
    "local p = redis.call('PTTL', KEYS[1]) "
    "if p < tonumber(ARGV[1]) then "
    "  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1]) end "
    "return 1";


static void loyalty_rl_reply(void *r, void *data);
static void loyalty_rl_timer(evutil_socket_t fd, short what, void *arg);
static void loyalty_rl_wait(loyalty_dest_conf_t *dest, uint64_t ms);


int
loyalty_rl_init(loyalty_cycle_t *cycle)
{
    size_t                n;
    double                t;
    unsigned              i;
    loyalty_dest_conf_t  *dest;

    for (i = 0; i < cycle->conf->destinations_count; i++) {
        dest = &cycle->conf->destinations[i];

        /* a salesforce destination always has the pause (403 budget) */
        if (dest->rate <= 0 && dest->kind != LOYALTY_DEST_SALESFORCE) {
            continue;
        }

        n = strlen(dest->name) + sizeof("loyalty:rl:{}:pause");
        dest->rl_key = malloc(n);
        dest->rl_pause_key = malloc(n);
        dest->rl_timer = evtimer_new(cycle->base, loyalty_rl_timer, dest);

        if (dest->rl_key == NULL || dest->rl_pause_key == NULL
            || dest->rl_timer == NULL)
        {
            return LOYALTY_ERROR;
        }

        /* one hash tag: the token script uses both (Redis Cluster) */
        snprintf(dest->rl_key, n, "loyalty:rl:{%s}", dest->name);
        snprintf(dest->rl_pause_key, n, "loyalty:rl:{%s}:pause",
                 dest->name);

        /* rounded up: never faster than the rate; 0: only the pause */
        t = 0;
        if (dest->rate > 0) {
            t = (double) (uint64_t) (1e6 / dest->rate);
            if (t < 1e6 / dest->rate) {
                t += 1;
            }
        }

        snprintf(dest->rl_interval, sizeof(dest->rl_interval), "%.0f", t);
        snprintf(dest->rl_tolerance, sizeof(dest->rl_tolerance), "%.0f",
                 t * dest->burst);
    }

    return LOYALTY_OK;
}


/* a request is queued and a slot is free: ask the script for a token */

void
loyalty_rl_ask(loyalty_dest_conf_t *dest)
{
    const char  *args[4];

    if (dest->rl_asking || loyalty_cycle.stopping
        || evtimer_pending(dest->rl_timer, NULL))
    {
        return;
    }

    args[0] = dest->rl_key;
    args[1] = dest->rl_pause_key;
    args[2] = dest->rl_interval;
    args[3] = dest->rl_tolerance;

    if (loyalty_consumer_eval("rate limit", loyalty_rl_token_script, 2, args,
                              4, loyalty_rl_reply, dest)
        != LOYALTY_OK)
    {
        /* Redis is down: no token, try again later (never fail open) */
        loyalty_rl_wait(dest, LOYALTY_RL_REDIS_DOWN_MS);
        return;
    }

    dest->rl_asking = 1;
}


static void
loyalty_rl_reply(void *r, void *data)
{
    redisReply           *reply;
    loyalty_dest_conf_t  *dest;

    reply = r;
    dest = data;
    dest->rl_asking = 0;

    if (loyalty_cycle.stopping) {
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer < 0)
    {
        loyalty_rl_wait(dest, LOYALTY_RL_REDIS_DOWN_MS);
        return;
    }

    if (reply->integer > 0) {
        loyalty_log(LOYALTY_LOG_DEBUG, NULL, dest->name, -1, -1,
                    "rate limit: wait %lld ms", reply->integer);
        loyalty_metrics_rl_wait(dest);
        loyalty_rl_wait(dest, (uint64_t) reply->integer);
        return;
    }

    /* a token: it goes to the head of the queue, then ask for the next */
    loyalty_http_start_head(dest);
    loyalty_http_next(dest);
}


static void
loyalty_rl_wait(loyalty_dest_conf_t *dest, uint64_t ms)
{
    struct timeval  tv;

    if (loyalty_cycle.stopping) {
        return;
    }

    if (ms > LOYALTY_RL_MAX_WAIT_MS) {
        ms = LOYALTY_RL_MAX_WAIT_MS;
    }

    tv.tv_sec = (time_t) (ms / 1000);
    tv.tv_usec = (suseconds_t) ((ms % 1000) * 1000);
    evtimer_add(dest->rl_timer, &tv);
}


static void
loyalty_rl_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;

    loyalty_http_next(arg);
}


/* a 429 (or Salesforce's 403): every worker stops sending for ms */

void
loyalty_rl_pause(loyalty_dest_conf_t *dest, uint64_t ms, long status)
{
    const char  *args[2];
    char         px[24];

    if (dest->rl_pause_key == NULL) {
        return;
    }

    if (ms == 0) {
        ms = 1000;
    }

    if (ms > LOYALTY_RL_MAX_WAIT_MS) {
        ms = LOYALTY_RL_MAX_WAIT_MS;
    }

    snprintf(px, sizeof(px), "%llu", (unsigned long long) ms);
    args[0] = dest->rl_pause_key;
    args[1] = px;

    if (loyalty_consumer_eval("rate limit pause", loyalty_rl_pause_script, 1,
                              args, 2, NULL, NULL)
        == LOYALTY_OK)
    {
        loyalty_metrics_rl_pause(dest);
        loyalty_log(LOYALTY_LOG_INFO, NULL, dest->name, (int) status, -1,
                    "%ld: destination paused for %llu ms (shared)", status,
                    (unsigned long long) ms);
    }
}


void
loyalty_rl_stop(loyalty_cycle_t *cycle)
{
    unsigned  i;

    for (i = 0; i < cycle->conf->destinations_count; i++) {
        if (cycle->conf->destinations[i].rl_timer != NULL) {
            evtimer_del(cycle->conf->destinations[i].rl_timer);
        }
    }
}


void
loyalty_rl_cleanup(loyalty_cycle_t *cycle)
{
    unsigned              i;
    loyalty_dest_conf_t  *dest;

    for (i = 0; i < cycle->conf->destinations_count; i++) {
        dest = &cycle->conf->destinations[i];

        if (dest->rl_timer != NULL) {
            event_free(dest->rl_timer);
            dest->rl_timer = NULL;
        }

        free(dest->rl_key);
        free(dest->rl_pause_key);
        dest->rl_key = NULL;
        dest->rl_pause_key = NULL;
    }
}
