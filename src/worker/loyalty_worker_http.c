/*
 * Copyright (C) loyalty-edge authors
 *
 * Outbound HTTP: one libcurl multi handle driven by the libevent base
 * through the multi socket API (CURLMOPT_SOCKETFUNCTION maps curl's
 * sockets to events, CURLMOPT_TIMERFUNCTION arms one timer, both call
 * curl_multi_socket_action).  Connections stay in the multi's cache
 * (keep-alive).  Each destination runs at most `concurrency` requests;
 * the rest wait in its queue, in order.  A destination with a `rate`
 * also needs a token from the shared limiter (loyalty_worker_ratelimit.c)
 * for each request: the head of its queue starts when one is granted.
 *
 * This layer knows nothing of what a request means: destination types
 * are drivers (loyalty_worker_webhook.c, loyalty_worker_sf.c) that fill
 * a loyalty_http_req_t and get its result in their handler.  Requests
 * queued with loyalty_http_queue() take a slot (and a token) of their
 * destination; loyalty_http_send() starts one at once (token endpoint
 * calls, which must not wait behind the writes they unblock).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "loyalty_worker.h"


#define LOYALTY_HTTP_ANSWER  128        /* kept by default */


typedef struct loyalty_http_sock_s  loyalty_http_sock_t;

struct loyalty_http_sock_s {
    loyalty_http_sock_t  *next;             /* in the free list */
    struct event         *ev;
    curl_socket_t         fd;
    short                 kind;             /* EV_READ|EV_WRITE wanted */
};


static int loyalty_http_socket_cb(CURL *easy, curl_socket_t fd, int what,
    void *userp, void *socketp);
static int loyalty_http_timer_cb(CURLM *multi, long timeout_ms, void *userp);
static void loyalty_http_event(evutil_socket_t fd, short what, void *arg);
static void loyalty_http_timeout(evutil_socket_t fd, short what, void *arg);
static void loyalty_http_check(void);
static void loyalty_http_start(loyalty_http_req_t *r);
static void loyalty_http_finish(loyalty_http_req_t *r, CURLcode rc);
static void loyalty_http_fail(loyalty_http_req_t *r, const char *error);
static size_t loyalty_http_write(char *p, size_t size, size_t n, void *arg);
static size_t loyalty_http_header(char *p, size_t size, size_t n,
    void *arg);


static CURLM         *loyalty_multi;

/* curl drops and re-adds a socket around every transfer on a kept-alive
 * connection: the watchers (and their events) are kept for reuse */
static loyalty_http_sock_t  *loyalty_http_socks_free;

/* requests in flight, freed by cleanup after a deadline or a second
 * signal: nothing of them may outlive the image (reload) */
static loyalty_http_req_t  *loyalty_http_active;
static struct event  *loyalty_http_timer;
static unsigned       loyalty_http_running;

int
loyalty_http_init(loyalty_cycle_t *cycle)
{
    long      conns;
    unsigned  i;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        return LOYALTY_ERROR;
    }

    loyalty_multi = curl_multi_init();
    loyalty_http_timer = evtimer_new(cycle->base, loyalty_http_timeout, NULL);

    if (loyalty_multi == NULL || loyalty_http_timer == NULL) {
        return LOYALTY_ERROR;
    }

    conns = 0;
    for (i = 0; i < cycle->conf->destinations_count; i++) {
        conns += cycle->conf->destinations[i].concurrency;
    }

    curl_multi_setopt(loyalty_multi, CURLMOPT_SOCKETFUNCTION,
                      loyalty_http_socket_cb);
    curl_multi_setopt(loyalty_multi, CURLMOPT_SOCKETDATA, cycle);
    curl_multi_setopt(loyalty_multi, CURLMOPT_TIMERFUNCTION,
                      loyalty_http_timer_cb);
    curl_multi_setopt(loyalty_multi, CURLMOPT_TIMERDATA, cycle);
    curl_multi_setopt(loyalty_multi, CURLMOPT_MAXCONNECTS, conns + 4);

    return LOYALTY_OK;
}


void
loyalty_http_cleanup(void)
{
    loyalty_http_req_t   *r;
    loyalty_http_sock_t  *s;

    /* the jobs are gone: drivers free their requests, report nothing */
    while (loyalty_http_active != NULL) {
        r = loyalty_http_active;
        loyalty_http_active = r->next;

        curl_multi_remove_handle(loyalty_multi, r->easy);
        curl_easy_cleanup(r->easy);
        free(r->answer);
        r->answer = NULL;
        r->easy = NULL;

        if (r->release != NULL) {
            r->release(r);
        }
    }

    loyalty_http_running = 0;

    if (loyalty_multi != NULL) {
        curl_multi_cleanup(loyalty_multi);
        loyalty_multi = NULL;
    }

    if (loyalty_http_timer != NULL) {
        event_free(loyalty_http_timer);
        loyalty_http_timer = NULL;
    }

    /* curl_multi_cleanup removed every socket: all are in the list */
    while (loyalty_http_socks_free != NULL) {
        s = loyalty_http_socks_free;
        loyalty_http_socks_free = s->next;
        event_free(s->ev);
        free(s);
    }

    curl_global_cleanup();
}


unsigned
loyalty_http_inflight(void)
{
    return loyalty_http_running;
}


static int
loyalty_http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
    void *socketp)
{
    short                 kind;
    loyalty_cycle_t      *cycle;
    loyalty_http_sock_t  *s;

    (void) easy;

    cycle = userp;
    s = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (s != NULL) {
            event_del(s->ev);
            s->kind = 0;
            s->next = loyalty_http_socks_free;
            loyalty_http_socks_free = s;
            curl_multi_assign(loyalty_multi, fd, NULL);
        }

        return 0;
    }

    kind = EV_PERSIST
           | ((what & CURL_POLL_IN) ? EV_READ : 0)
           | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);

    if (s != NULL && s->kind == kind) {
        return 0;
    }

    if (s == NULL) {
        s = loyalty_http_socks_free;

        if (s != NULL) {
            loyalty_http_socks_free = s->next;

        } else {
            s = calloc(1, sizeof(loyalty_http_sock_t));
            if (s == NULL) {
                return -1;
            }

            s->ev = event_new(cycle->base, -1, 0, loyalty_http_event, s);
            if (s->ev == NULL) {
                free(s);
                return -1;
            }
        }

        s->fd = fd;
        curl_multi_assign(loyalty_multi, fd, s);

    } else {
        event_del(s->ev);
    }

    /* the event is not pending here, so it may be assigned again */
    event_assign(s->ev, cycle->base, fd, kind, loyalty_http_event, s);
    s->kind = kind;
    event_add(s->ev, NULL);

    return 0;
}


static int
loyalty_http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    struct timeval  tv;

    (void) multi;
    (void) userp;

    if (timeout_ms < 0) {
        evtimer_del(loyalty_http_timer);
        return 0;
    }

    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    evtimer_add(loyalty_http_timer, &tv);

    return 0;
}


static void
loyalty_http_event(evutil_socket_t fd, short what, void *arg)
{
    int  running, flags;

    (void) arg;

    flags = ((what & EV_READ) ? CURL_CSELECT_IN : 0)
            | ((what & EV_WRITE) ? CURL_CSELECT_OUT : 0);

    curl_multi_socket_action(loyalty_multi, fd, flags, &running);
    loyalty_http_check();
}


static void
loyalty_http_timeout(evutil_socket_t fd, short what, void *arg)
{
    int  running;

    (void) fd;
    (void) what;
    (void) arg;

    curl_multi_socket_action(loyalty_multi, CURL_SOCKET_TIMEOUT, 0, &running);
    loyalty_http_check();
}


static void
loyalty_http_check(void)
{
    int                  left;
    CURL                *easy;
    CURLMsg             *msg;
    CURLcode             rc;
    loyalty_http_req_t  *r;

    while ((msg = curl_multi_info_read(loyalty_multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        rc = msg->data.result;
        r = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &r);

        loyalty_http_finish(r, rc);
    }
}


void
loyalty_http_submit(loyalty_job_t *job, loyalty_flow_conf_t *flow)
{
    if (flow->dest->kind == LOYALTY_DEST_SALESFORCE) {
        loyalty_sf_submit(job, flow);
        return;
    }

    loyalty_webhook_submit(job, flow);
}


/* a request that takes a slot (and a token) of its destination */

void
loyalty_http_queue(loyalty_http_req_t *r)
{
    loyalty_dest_conf_t  *dest;

    dest = r->dest;
    r->gated = 1;
    r->next = NULL;

    if (dest->rl_key == NULL && dest->inflight < dest->concurrency) {
        loyalty_http_start(r);
        return;
    }

    /* append: the queue keeps stream order per destination */
    if (dest->queue_head == NULL) {
        dest->queue_head = r;
    } else {
        ((loyalty_http_req_t *) dest->queue_tail)->next = r;
    }

    dest->queue_tail = r;
    dest->queued++;

    if (dest->rl_key != NULL) {
        loyalty_http_next(dest);
    }
}


/* a request that starts now, outside the destination's slots */

void
loyalty_http_send(loyalty_http_req_t *r)
{
    r->gated = 0;
    r->next = NULL;
    loyalty_http_start(r);
}


/* SIGTERM: what has not started stays pending in Redis for a restart */

void
loyalty_http_cancel_queued(void)
{
    unsigned              i;
    loyalty_conf_t       *conf;
    loyalty_http_res_t    res;
    loyalty_http_req_t   *r, *next;
    loyalty_dest_conf_t  *dest;

    conf = loyalty_cycle.conf;
    memset(&res, 0, sizeof(res));
    res.abandoned = 1;

    for (i = 0; i < conf->destinations_count; i++) {
        dest = &conf->destinations[i];

        r = dest->queue_head;
        dest->queue_head = NULL;
        dest->queue_tail = NULL;
        dest->queued = 0;

        for ( /* void */ ; r != NULL; r = next) {
            next = r->next;
            r->handler(r, &res);
        }
    }

    loyalty_rl_stop(&loyalty_cycle);

    /* what drivers gathered but did not send yet */
    loyalty_sf_cancel(&loyalty_cycle);
}


/* a slot is free or a token came: start what may start */

void
loyalty_http_next(loyalty_dest_conf_t *dest)
{
    if (loyalty_cycle.stopping) {
        return;
    }

    if (dest->rl_key != NULL) {
        /* one token at a time, asked only when it can be used at once */
        if (dest->inflight < dest->concurrency && dest->queue_head != NULL) {
            loyalty_rl_ask(dest);
        }

        return;
    }

    while (dest->inflight < dest->concurrency && dest->queue_head != NULL) {
        (void) loyalty_http_start_head(dest);
    }
}


int
loyalty_http_start_head(loyalty_dest_conf_t *dest)
{
    loyalty_http_req_t  *r;

    r = dest->queue_head;

    if (r == NULL || dest->inflight >= dest->concurrency) {
        return LOYALTY_DECLINED;
    }

    dest->queue_head = r->next;
    dest->queued--;

    if (dest->queue_head == NULL) {
        dest->queue_tail = NULL;
    }

    r->next = NULL;
    loyalty_http_start(r);

    return LOYALTY_OK;
}


static void
loyalty_http_start(loyalty_http_req_t *r)
{
    CURL                 *easy;
    loyalty_dest_conf_t  *dest;

    dest = r->dest;

    if (r->prepare != NULL && r->prepare(r) != LOYALTY_OK) {
        loyalty_http_fail(r, "out of memory building the request");
        return;
    }

    easy = curl_easy_init();
    if (easy == NULL) {
        loyalty_http_fail(r, "cannot start the request");
        return;
    }

    r->easy = easy;
    r->answer = NULL;
    r->answer_len = 0;
    r->answer_size = 0;
    r->header_len = 0;
    r->error[0] = '\0';

    if (r->body_max == 0) {
        r->body_max = LOYALTY_HTTP_ANSWER;
    }

    curl_easy_setopt(easy, CURLOPT_URL, r->url ? r->url : dest->url);

    if (r->method != NULL && strcmp(r->method, "GET") == 0) {
        /* no body, no Content-Type: a plain GET (SOQL queries) */
        curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);

    } else {
        if (r->method == NULL || strcmp(r->method, "POST") == 0) {
            curl_easy_setopt(easy, CURLOPT_POST, 1L);
        } else {
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, r->method);
        }

        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) r->body_len);
    }
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) dest->timeout_ms);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                     (long) dest->connect_timeout_ms);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_USERAGENT,
                     "loyalty-worker/" LOYALTY_WORKER_VERSION);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, loyalty_http_write);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, r);

    if (r->capture != NULL) {
        curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, loyalty_http_header);
        curl_easy_setopt(easy, CURLOPT_HEADERDATA, r);
    }

    if (curl_multi_add_handle(loyalty_multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        r->easy = NULL;
        loyalty_http_fail(r, "cannot start the request");
        return;
    }

    r->start_us = loyalty_now_us();
    loyalty_http_running++;

    if (r->gated) {
        dest->inflight++;
    }

    r->next = loyalty_http_active;
    r->prev = NULL;
    if (loyalty_http_active != NULL) {
        loyalty_http_active->prev = r;
    }
    loyalty_http_active = r;
}


/* a request that could not start: a transient failure for the driver */

static void
loyalty_http_fail(loyalty_http_req_t *r, const char *error)
{
    loyalty_http_res_t  res;

    loyalty_log(LOYALTY_LOG_ERR, NULL, r->dest->name, -1, -1, "%s", error);

    memset(&res, 0, sizeof(res));
    res.error = error;
    res.unstarted = 1;
    r->handler(r, &res);
}


static size_t
loyalty_http_write(char *p, size_t size, size_t n, void *arg)
{
    char                *a;
    size_t               len, want;
    loyalty_http_req_t  *r;

    r = arg;
    len = size * n;

    if (r->answer_len >= r->body_max) {
        return len;
    }

    want = r->body_max - r->answer_len;
    want = len < want ? len : want;

    if (r->answer_len + want + 1 > r->answer_size) {
        n = r->answer_size ? r->answer_size * 2 : 256;
        while (n < r->answer_len + want + 1) {
            n *= 2;
        }

        a = realloc(r->answer, n);
        if (a == NULL) {
            return 0;
        }

        r->answer = a;
        r->answer_size = n;
    }

    memcpy(r->answer + r->answer_len, p, want);
    r->answer_len += want;
    r->answer[r->answer_len] = '\0';

    return len;
}


/* the one response header the driver asked for (Sforce-Limit-Info) */

static size_t
loyalty_http_header(char *p, size_t size, size_t n, void *arg)
{
    size_t               len, name;
    loyalty_http_req_t  *r;

    r = arg;
    len = size * n;
    name = strlen(r->capture);

    if (len > name + 1 && p[name] == ':'
        && strncasecmp(p, r->capture, name) == 0)
    {
        p += name + 1;
        len -= name + 1;

        while (len > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }

        while (len > 0 && (p[len - 1] == '\r' || p[len - 1] == '\n'
                           || p[len - 1] == ' '))
        {
            len--;
        }

        if (len >= sizeof(r->header)) {
            len = sizeof(r->header) - 1;
        }

        memcpy(r->header, p, len);
        r->header[len] = '\0';
        r->header_len = len;
    }

    return size * n;
}


static void
loyalty_http_finish(loyalty_http_req_t *r, CURLcode rc)
{
    long                  status;
    curl_off_t            after;
    loyalty_http_res_t    res;
    loyalty_dest_conf_t  *dest;
    char                 *answer;
    char                  error[160];

    dest = r->dest;
    status = 0;
    after = 0;

    memset(&res, 0, sizeof(res));
    res.us = loyalty_now_us() - r->start_us;

    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);

    /* seconds or an HTTP date, both turned into seconds by libcurl */
    if (curl_easy_getinfo(r->easy, CURLINFO_RETRY_AFTER, &after) != CURLE_OK
        || after < 0)
    {
        after = 0;
    }

    curl_multi_remove_handle(loyalty_multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;

    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        loyalty_http_active = r->next;
    }

    if (r->next != NULL) {
        r->next->prev = r->prev;
    }

    r->next = NULL;
    r->prev = NULL;

    /* every worker stops sending to dest for Retry-After (or 1 s) */
    if (rc == CURLE_OK && status == 429 && r->gated && dest->rate > 0) {
        loyalty_rl_pause(dest, (uint64_t) (after > 3600 ? 3600 : after)
                               * 1000, 429);
    }

    if (r->gated) {
        dest->inflight--;
    }

    loyalty_http_running--;

    if (rc != CURLE_OK) {
        snprintf(error, sizeof(error), "%.150s",
                 r->error[0] ? r->error : curl_easy_strerror(rc));
        res.error = error;

    } else {
        res.status = status;
        res.retry_after_ms = (uint64_t) (after > 86400 ? 86400 : after)
                             * 1000;
        res.body = r->answer ? r->answer : "";
        res.body_len = r->answer_len;
        res.header = r->header_len ? r->header : NULL;
    }

    /* the handler may free r or queue it again: the answer is ours */
    answer = r->answer;
    r->answer = NULL;
    r->answer_len = 0;
    r->answer_size = 0;

    r->handler(r, &res);

    free(answer);

    if (loyalty_cycle.stopping) {
        loyalty_consumer_close(&loyalty_cycle);
        return;
    }

    loyalty_http_next(dest);
}
