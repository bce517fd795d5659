/*
 * Copyright (C) loyalty-edge authors
 *
 * The daily budget guard of a salesforce destination with
 * budget_reserve (percent of the org's daily API limit kept for its
 * other integrations).  Every answer's Sforce-Limit-Info comes here
 * (loyalty_sf_usage): once used >= limit - reserve, the destination's
 * shared pause (loyalty:rl:{<dest>}:pause, value "budget") stops every
 * worker's calls; events wait pending, nothing is dead-lettered.  The
 * worker that saw it polls GET .../limits every budget_poll_ms (one
 * call, outside the paused queue) and renews the pause while there is
 * no room; with room again it lifts its pause (not a 403's) and the
 * destination sends again.  Salesforce counts the budget over a
 * rolling 24 h, so room comes back by itself as old calls age out.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "loyalty_worker_sf.h"
#include "loyalty_sf_bulk.h"


typedef struct {
    struct event         *timer;
    loyalty_http_req_t    req;
    struct curl_slist    *headers;
    char                  url[1200];
    char                  token[512];
    unsigned              busy:1;       /* the poll is in flight */
} loyalty_sf_budget_t;


/* KEYS: pause; ARGV: ms.  Only ever lengthens a pause */
static const char  loyalty_sf_budget_pause_script[] =
    "local p = redis.call('PTTL', KEYS[1]) "
    "if p < tonumber(ARGV[1]) then "
    "  redis.call('SET', KEYS[1], 'budget', 'PX', ARGV[1]) end "
    "return 1";

/* KEYS: pause.  The budget's pause only, never a 403's */
static const char  loyalty_sf_budget_resume_script[] =
    "if redis.call('GET', KEYS[1]) == 'budget' then "
    "  redis.call('DEL', KEYS[1]) end "
    "return 1";

/* KEYS: usage; ARGV: used, limit, at (ms) */
static const char  loyalty_sf_budget_usage_script[] =
    "redis.call('HSET', KEYS[1], 'used', ARGV[1], 'limit', ARGV[2], "
    "           'at', ARGV[3]) return 1";


static void loyalty_sf_budget_pause(loyalty_sf_t *sf);
static void loyalty_sf_budget_arm(loyalty_sf_t *sf, unsigned ms);
static void loyalty_sf_budget_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_sf_budget_done(loyalty_http_req_t *r,
    const loyalty_http_res_t *res);
static int loyalty_sf_budget_over(loyalty_dest_conf_t *dest, int64_t used,
    int64_t limit);


int
loyalty_sf_budget_init(loyalty_sf_t *sf)
{
    loyalty_sf_budget_t  *g;

    if (sf->dest->budget_reserve == 0) {
        return LOYALTY_OK;
    }

    g = calloc(1, sizeof(loyalty_sf_budget_t));
    if (g == NULL) {
        return LOYALTY_ERROR;
    }

    sf->budget = g;
    g->timer = evtimer_new(loyalty_cycle.base, loyalty_sf_budget_timer, sf);

    return g->timer ? LOYALTY_OK : LOYALTY_ERROR;
}


static int
loyalty_sf_budget_over(loyalty_dest_conf_t *dest, int64_t used,
    int64_t limit)
{
    return limit > 0
           && used >= limit - limit * (int64_t) dest->budget_reserve / 100;
}


/* every Sforce-Limit-Info this worker reads */

void
loyalty_sf_budget_seen(loyalty_sf_t *sf, int64_t used, int64_t limit)
{
    loyalty_dest_conf_t  *dest;

    dest = sf->dest;

    if (sf->budget == NULL || !loyalty_sf_budget_over(dest, used, limit)) {
        return;
    }

    if (!dest->sf_budget_paused) {
        dest->sf_budget_paused = 1;
        dest->sf_budget_pauses++;
        loyalty_log(LOYALTY_LOG_WARN, NULL, dest->name, -1, -1,
                    "daily API budget: %lld of %lld used, %u%% kept for "
                    "the org's other integrations: paused (shared)",
                    (long long) used, (long long) limit,
                    dest->budget_reserve);
    }

    loyalty_sf_budget_pause(sf);
    loyalty_sf_budget_arm(sf, dest->budget_poll_ms);
}


static void
loyalty_sf_budget_pause(loyalty_sf_t *sf)
{
    const char  *args[2];
    char         px[24];

    /* outlives one poll interval: a poller that dies lets it expire */
    snprintf(px, sizeof(px), "%u", sf->dest->budget_poll_ms + 1000);
    args[0] = sf->dest->rl_pause_key;
    args[1] = px;

    if (args[0] != NULL) {
        (void) loyalty_consumer_eval("salesforce budget pause",
                                     loyalty_sf_budget_pause_script, 1,
                                     args, 2, NULL, NULL);
    }
}


static void
loyalty_sf_budget_arm(loyalty_sf_t *sf, unsigned ms)
{
    struct timeval        tv;
    loyalty_sf_budget_t  *g;

    g = sf->budget;

    if (g->busy || loyalty_cycle.stopping
        || evtimer_pending(g->timer, NULL))
    {
        return;
    }

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(g->timer, &tv);
}


/* GET .../limits, at once (the destination's queue is paused) */

static void
loyalty_sf_budget_timer(evutil_socket_t fd, short what, void *arg)
{
    loyalty_sf_t         *sf;
    loyalty_sf_budget_t  *g;
    char                  line[600];

    (void) fd;
    (void) what;

    sf = arg;
    g = sf->budget;

    if (loyalty_cycle.stopping || g->busy) {
        return;
    }

    if (sf->token[0] == '\0') {
        loyalty_sf_auth_need(sf);
        loyalty_sf_budget_arm(sf, 1000);
        return;
    }

    curl_slist_free_all(g->headers);
    snprintf(g->token, sizeof(g->token), "%s", sf->token);
    snprintf(line, sizeof(line), "Authorization: Bearer %s", g->token);
    g->headers = curl_slist_append(NULL, line);

    if (g->headers == NULL
        || curl_slist_append(g->headers, "Accept: application/json")
           == NULL)
    {
        loyalty_sf_budget_arm(sf, sf->dest->budget_poll_ms);
        return;
    }

    snprintf(g->url, sizeof(g->url), "%s/services/data/v%s/limits",
             sf->instance_url, sf->dest->api_version);

    memset(&g->req, 0, sizeof(g->req));
    g->req.dest = sf->dest;
    g->req.method = "GET";
    g->req.url = g->url;
    g->req.headers = g->headers;
    g->req.body_max = 64 * 1024;
    g->req.handler = loyalty_sf_budget_done;
    g->req.data = sf;

    g->busy = 1;
    loyalty_http_send(&g->req);
}


static void
loyalty_sf_budget_done(loyalty_http_req_t *r, const loyalty_http_res_t *res)
{
    loyalty_sf_t         *sf;
    loyalty_err_t         err;
    loyalty_str_t         body;
    const char           *args[4];
    loyalty_sf_pool_t     pool;
    loyalty_sf_budget_t  *g;
    loyalty_sf_usage_t    u;
    loyalty_dest_conf_t  *dest;
    char                  used[24], limit[24], at[24];

    sf = r->data;
    g = sf->budget;
    dest = sf->dest;
    g->busy = 0;

    if (res->abandoned || loyalty_cycle.stopping) {
        return;
    }

    body.data = (u_char *) res->body;
    body.len = res->body_len;
    loyalty_sf_pool_init(&pool);
    memset(&err, 0, sizeof(err));

    if (res->error != NULL || res->status != 200
        || loyalty_sf_limits_parse(&body, &pool.alloc, &u, &err)
           != LOYALTY_OK)
    {
        loyalty_sf_pool_free(&pool);

        if (res->status == 401) {
            loyalty_sf_auth_failed(sf, g->token);
        }

        loyalty_log(LOYALTY_LOG_WARN, NULL, dest->name, (int) res->status,
                    (long) (res->us / 1000), "daily API budget: limits not "
                    "read (%s): still paused",
                    res->error ? res->error : "HTTP error");

        /* a 403 there is the whole limit: certainly no room */
        loyalty_sf_budget_pause(sf);
        loyalty_sf_budget_arm(sf, dest->budget_poll_ms);
        return;
    }

    loyalty_sf_pool_free(&pool);

    dest->sf_used = u.used;
    dest->sf_limit = u.limit;

    snprintf(used, sizeof(used), "%lld", (long long) u.used);
    snprintf(limit, sizeof(limit), "%lld", (long long) u.limit);
    snprintf(at, sizeof(at), "%llu",
             (unsigned long long) loyalty_now_ms());
    args[0] = sf->key_usage;
    args[1] = used;
    args[2] = limit;
    args[3] = at;

    (void) loyalty_consumer_eval("salesforce usage",
                                 loyalty_sf_budget_usage_script, 1, args, 4,
                                 NULL, NULL);

    if (loyalty_sf_budget_over(dest, u.used, u.limit)) {
        loyalty_sf_budget_pause(sf);
        loyalty_sf_budget_arm(sf, dest->budget_poll_ms);
        return;
    }

    dest->sf_budget_paused = 0;
    loyalty_log(LOYALTY_LOG_INFO, NULL, dest->name, 200, -1,
                "daily API budget: %lld of %lld used: resumed",
                (long long) u.used, (long long) u.limit);

    args[0] = dest->rl_pause_key;
    (void) loyalty_consumer_eval("salesforce budget resume",
                                 loyalty_sf_budget_resume_script, 1, args, 1,
                                 NULL, NULL);

    /* after the DEL (same connection): ask for a slot again now */
    if (dest->rl_timer != NULL) {
        evtimer_del(dest->rl_timer);
    }

    loyalty_http_next(dest);
}


void
loyalty_sf_budget_stop(loyalty_sf_t *sf)
{
    loyalty_sf_budget_t  *g;

    g = sf->budget;

    if (g != NULL && g->timer != NULL) {
        evtimer_del(g->timer);
    }
}


void
loyalty_sf_budget_cleanup(loyalty_sf_t *sf)
{
    loyalty_sf_budget_t  *g;

    g = sf->budget;

    if (g == NULL) {
        return;
    }

    if (g->timer != NULL) {
        event_free(g->timer);
    }

    curl_slist_free_all(g->headers);
    free(g);
    sf->budget = NULL;
}
