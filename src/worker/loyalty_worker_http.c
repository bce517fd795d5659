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
 * The webhook destination POSTs the envelope as JSON, signed with
 * Standard Webhooks: webhook-id is the event id (receivers dedupe on
 * it), webhook-timestamp the unix time, webhook-signature
 * "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "loyalty_worker.h"


#define LOYALTY_HTTP_SNIPPET  128


typedef struct loyalty_delivery_s  loyalty_delivery_t;

struct loyalty_delivery_s {
    loyalty_delivery_t   *next;             /* destination queue, or the
                                               requests in flight */
    loyalty_delivery_t   *prev;             /* in flight */
    loyalty_job_t        *job;
    loyalty_dest_conf_t  *dest;
    CURL                 *easy;
    struct curl_slist    *headers;
    char                 *body;
    size_t                body_len;
    uint64_t              start_us;
    size_t                snippet_len;
    char                  snippet[LOYALTY_HTTP_SNIPPET];
    char                  error[CURL_ERROR_SIZE];
};


typedef struct {
    struct event         *ev;
    curl_socket_t         fd;
} loyalty_http_sock_t;


static int loyalty_http_socket_cb(CURL *easy, curl_socket_t fd, int what,
    void *userp, void *socketp);
static int loyalty_http_timer_cb(CURLM *multi, long timeout_ms, void *userp);
static void loyalty_http_event(evutil_socket_t fd, short what, void *arg);
static void loyalty_http_timeout(evutil_socket_t fd, short what, void *arg);
static void loyalty_http_check(void);
static void loyalty_http_start(loyalty_delivery_t *d);
static void loyalty_http_finish(loyalty_delivery_t *d, CURLcode rc);
static int loyalty_http_body(loyalty_delivery_t *d);
static int loyalty_http_sign(loyalty_delivery_t *d);
static size_t loyalty_http_write(char *p, size_t size, size_t n, void *arg);


static CURLM         *loyalty_multi;

/* requests in flight, freed by cleanup after a deadline or a second
 * signal: nothing of them may outlive the image (reload) */
static loyalty_delivery_t  *loyalty_http_active;
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
    loyalty_delivery_t  *d;

    while (loyalty_http_active != NULL) {
        d = loyalty_http_active;
        loyalty_http_active = d->next;

        curl_multi_remove_handle(loyalty_multi, d->easy);
        curl_easy_cleanup(d->easy);
        curl_slist_free_all(d->headers);
        free(d->body);
        free(d);
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
            event_free(s->ev);
            free(s);
            curl_multi_assign(loyalty_multi, fd, NULL);
        }

        return 0;
    }

    kind = EV_PERSIST
           | ((what & CURL_POLL_IN) ? EV_READ : 0)
           | ((what & CURL_POLL_OUT) ? EV_WRITE : 0);

    if (s == NULL) {
        s = calloc(1, sizeof(loyalty_http_sock_t));
        if (s == NULL) {
            return -1;
        }

        s->fd = fd;
        curl_multi_assign(loyalty_multi, fd, s);

    } else {
        event_free(s->ev);
    }

    s->ev = event_new(cycle->base, fd, kind, loyalty_http_event, s);
    if (s->ev == NULL) {
        return -1;
    }

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
    loyalty_delivery_t  *d;

    while ((msg = curl_multi_info_read(loyalty_multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE) {
            continue;
        }

        easy = msg->easy_handle;
        rc = msg->data.result;
        d = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **) &d);

        loyalty_http_finish(d, rc);
    }
}


void
loyalty_http_submit(loyalty_job_t *job, loyalty_dest_conf_t *dest)
{
    loyalty_outcome_t    o;
    loyalty_delivery_t  *d, **q;

    d = calloc(1, sizeof(loyalty_delivery_t));
    if (d == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, job, dest->name, -1, -1,
                    "out of memory");
        memset(&o, 0, sizeof(o));
        o.error = "out of memory";
        loyalty_consumer_done(job, dest, &o);
        return;
    }

    d->job = job;
    d->dest = dest;

    if (dest->rate <= 0 && dest->inflight < dest->concurrency) {
        loyalty_http_start(d);
        return;
    }

    /* append: the queue keeps stream order per destination */
    q = (loyalty_delivery_t **) &dest->queue_head;
    if (*q == NULL) {
        dest->queue_head = d;
    } else {
        ((loyalty_delivery_t *) dest->queue_tail)->next = d;
    }

    dest->queue_tail = d;
    dest->queued++;

    if (dest->rate > 0) {
        loyalty_http_next(dest);
    }
}


/* SIGTERM: what has not started stays pending in Redis for a restart */

void
loyalty_http_cancel_queued(void)
{
    unsigned              i;
    loyalty_conf_t       *conf;
    loyalty_outcome_t     o;
    loyalty_delivery_t   *d, *next;
    loyalty_dest_conf_t  *dest;

    conf = loyalty_cycle.conf;
    memset(&o, 0, sizeof(o));
    o.abandoned = 1;

    for (i = 0; i < conf->destinations_count; i++) {
        dest = &conf->destinations[i];

        for (d = dest->queue_head; d != NULL; d = next) {
            next = d->next;
            loyalty_consumer_done(d->job, dest, &o);
            free(d);
        }

        dest->queue_head = NULL;
        dest->queue_tail = NULL;
        dest->queued = 0;
    }

    loyalty_rl_stop(&loyalty_cycle);
}


/* a slot is free or a token came: start what may start */

void
loyalty_http_next(loyalty_dest_conf_t *dest)
{
    if (loyalty_cycle.stopping) {
        return;
    }

    if (dest->rate > 0) {
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
    loyalty_delivery_t  *d;

    d = dest->queue_head;

    if (d == NULL || dest->inflight >= dest->concurrency) {
        return LOYALTY_DECLINED;
    }

    dest->queue_head = d->next;
    dest->queued--;

    if (dest->queue_head == NULL) {
        dest->queue_tail = NULL;
    }

    d->next = NULL;
    loyalty_http_start(d);

    return LOYALTY_OK;
}


static void
loyalty_http_start(loyalty_delivery_t *d)
{
    CURL                 *easy;
    loyalty_outcome_t     o;
    loyalty_dest_conf_t  *dest;

    dest = d->dest;

    if (loyalty_http_body(d) != LOYALTY_OK
        || loyalty_http_sign(d) != LOYALTY_OK)
    {
        loyalty_log(LOYALTY_LOG_ERR, d->job, dest->name, -1, -1,
                    "out of memory building the request");
        goto failed;
    }

    easy = curl_easy_init();
    if (easy == NULL) {
        goto failed;
    }

    d->easy = easy;

    curl_easy_setopt(easy, CURLOPT_URL, dest->url);
    curl_easy_setopt(easy, CURLOPT_POST, 1L);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, d->body);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) d->body_len);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, d->headers);
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
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, d->error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, d);

    if (curl_multi_add_handle(loyalty_multi, easy) != CURLM_OK) {
        curl_easy_cleanup(easy);
        d->easy = NULL;
        goto failed;
    }

    d->start_us = loyalty_now_us();
    dest->inflight++;
    loyalty_http_running++;

    d->next = loyalty_http_active;
    d->prev = NULL;
    if (loyalty_http_active != NULL) {
        loyalty_http_active->prev = d;
    }
    loyalty_http_active = d;

    return;

failed:

    curl_slist_free_all(d->headers);
    free(d->body);
    loyalty_metrics_delivery(dest, LOYALTY_DELIVERY_TRANSIENT, 0);
    memset(&o, 0, sizeof(o));
    o.error = "cannot start the request";
    loyalty_consumer_done(d->job, dest, &o);
    free(d);
}


static size_t
loyalty_http_write(char *p, size_t size, size_t n, void *arg)
{
    size_t               len;
    loyalty_delivery_t  *d;

    d = arg;
    len = size * n;

    if (d->snippet_len < LOYALTY_HTTP_SNIPPET) {
        n = LOYALTY_HTTP_SNIPPET - d->snippet_len;
        n = len < n ? len : n;
        memcpy(d->snippet + d->snippet_len, p, n);
        d->snippet_len += n;
    }

    return len;
}


static void
loyalty_http_finish(loyalty_delivery_t *d, CURLcode rc)
{
    long                  status, latency;
    uint64_t              us;
    curl_off_t            after;
    loyalty_outcome_t     o;
    loyalty_dest_conf_t  *dest;
    char                  error[160];

    dest = d->dest;
    status = 0;
    after = 0;
    us = loyalty_now_us() - d->start_us;
    latency = (long) (us / 1000);

    curl_easy_getinfo(d->easy, CURLINFO_RESPONSE_CODE, &status);

    /* seconds or an HTTP date, both turned into seconds by libcurl */
    if (curl_easy_getinfo(d->easy, CURLINFO_RETRY_AFTER, &after) != CURLE_OK
        || after < 0)
    {
        after = 0;
    }

    curl_multi_remove_handle(loyalty_multi, d->easy);
    curl_easy_cleanup(d->easy);

    if (d->prev != NULL) {
        d->prev->next = d->next;
    } else {
        loyalty_http_active = d->next;
    }

    if (d->next != NULL) {
        d->next->prev = d->prev;
    }

    /* every worker stops sending to dest for Retry-After (or 1 s) */
    if (rc == CURLE_OK && status == 429 && dest->rate > 0) {
        loyalty_rl_pause(dest, (uint64_t) (after > 3600 ? 3600 : after)
                               * 1000);
    }

    dest->inflight--;
    loyalty_http_running--;

    memset(&o, 0, sizeof(o));
    o.status = status;
    o.error = error;
    error[0] = '\0';

    if (rc == CURLE_OK && status >= 200 && status < 300) {
        o.ok = 1;
        loyalty_log(LOYALTY_LOG_INFO, d->job, dest->name, (int) status,
                    latency, "delivered");

    } else if (rc != CURLE_OK) {
        o.status = 0;
        snprintf(error, sizeof(error), "%.150s",
                 d->error[0] ? d->error : curl_easy_strerror(rc));
        loyalty_log(LOYALTY_LOG_WARN, d->job, dest->name, -1, latency,
                    "delivery failed: %s", error);

    } else {
        /* 4xx is the event's fault, except timeouts, locks, rate limits */
        o.permanent = (status >= 400 && status < 500 && status != 408
                       && status != 423 && status != 425 && status != 429);
        o.retry_after_ms = (uint64_t) (after > 86400 ? 86400 : after) * 1000;
        snprintf(error, sizeof(error), "HTTP %ld: %.*s", status,
                 (int) (d->snippet_len > 120 ? 120 : d->snippet_len),
                 d->snippet);
        loyalty_log(LOYALTY_LOG_WARN, d->job, dest->name, (int) status,
                    latency, "delivery refused (%s): \"%.*s\"",
                    o.permanent ? "permanent" : "transient",
                    (int) d->snippet_len, d->snippet);
    }

    loyalty_metrics_delivery(dest, o.ok ? LOYALTY_DELIVERY_SUCCESS
                                   : o.permanent ? LOYALTY_DELIVERY_PERMANENT
                                   : LOYALTY_DELIVERY_TRANSIENT, us);

    curl_slist_free_all(d->headers);
    free(d->body);

    loyalty_consumer_done(d->job, dest, &o);
    free(d);

    if (loyalty_cycle.stopping) {
        loyalty_consumer_close(&loyalty_cycle);
        return;
    }

    loyalty_http_next(dest);
}


static char *
loyalty_http_field(char *p, const char *name, const loyalty_str_t *v)
{
    if (v->len == 0) {
        return p;
    }

    p += sprintf(p, ",\"%s\":\"", name);
    p += loyalty_json_escape(p, v->data, v->len);
    *p++ = '"';

    return p;
}


/* the envelope as one JSON object; data is embedded as JSON */

static int
loyalty_http_body(loyalty_delivery_t *d)
{
    char             *p;
    size_t            size;
    loyalty_event_t  *ev;

    ev = &d->job->ev;

    size = 256 + ev->data.len
           + 6 * (ev->id.len + ev->src.len + ev->store.len + ev->type.len
                  + ev->topic.len + ev->occurred.len + ev->corr.len
                  + ev->email.len + ev->ext_id.len + ev->store_cid.len
                  + ev->phone.len + ev->raw.len);

    d->body = malloc(size);
    if (d->body == NULL) {
        return LOYALTY_ERROR;
    }

    p = d->body;
    p += sprintf(p, "{\"v\":1");
    p = loyalty_http_field(p, "id", &ev->id);
    p = loyalty_http_field(p, "src", &ev->src);
    p = loyalty_http_field(p, "store", &ev->store);
    p = loyalty_http_field(p, "type", &ev->type);
    p = loyalty_http_field(p, "topic", &ev->topic);
    p = loyalty_http_field(p, "occurred", &ev->occurred);

    if (ev->received) {
        p += sprintf(p, ",\"received\":%lld", (long long) ev->received);
    }

    p = loyalty_http_field(p, "corr", &ev->corr);
    p = loyalty_http_field(p, "email", &ev->email);
    p = loyalty_http_field(p, "ext_id", &ev->ext_id);
    p = loyalty_http_field(p, "store_cid", &ev->store_cid);
    p = loyalty_http_field(p, "phone", &ev->phone);
    p = loyalty_http_field(p, "raw", &ev->raw);
    p += sprintf(p, ",\"data\":");
    memcpy(p, ev->data.data, ev->data.len);
    p += ev->data.len;
    *p++ = '}';

    d->body_len = p - d->body;

    return LOYALTY_OK;
}


static int
loyalty_http_sign(loyalty_delivery_t *d)
{
    int                   n;
    size_t                len;
    loyalty_str_t         parts[5];
    loyalty_event_t      *ev;
    struct curl_slist    *h, *list;
    char                  ts[24], line[512];
    u_char                mac[LOYALTY_HMAC_MAX];
    u_char                b64[loyalty_base64_encoded_len(LOYALTY_HMAC_MAX)
                              + 1];

    ev = &d->job->ev;
    snprintf(ts, sizeof(ts), "%lld", (long long) time(NULL));

    parts[0] = ev->id;
    parts[1].data = (u_char *) ".";
    parts[1].len = 1;
    parts[2].data = (u_char *) ts;
    parts[2].len = strlen(ts);
    parts[3] = parts[1];
    parts[4].data = (u_char *) d->body;
    parts[4].len = d->body_len;

    n = loyalty_hmac(d->dest->key, parts, 5, mac);
    if (n < 0) {
        return LOYALTY_ERROR;
    }

    len = loyalty_base64_encode(b64, mac, (size_t) n);
    b64[len] = '\0';

    list = NULL;

    /* the event id and corr were validated: printable, no spaces */
    snprintf(line, sizeof(line), "webhook-id: %.*s", (int) ev->id.len,
             ev->id.data);
    list = curl_slist_append(list, line);
    h = list;

    snprintf(line, sizeof(line), "webhook-timestamp: %s", ts);
    h = h ? curl_slist_append(list, line) : NULL;

    snprintf(line, sizeof(line), "webhook-signature: v1,%s", b64);
    h = h ? curl_slist_append(list, line) : NULL;

    h = h ? curl_slist_append(list, "Content-Type: application/json") : NULL;

    /* no "Expect: 100-continue" round trip for large bodies */
    h = h ? curl_slist_append(list, "Expect:") : NULL;

    if (h != NULL && ev->corr.len) {
        snprintf(line, sizeof(line), "X-Correlation-ID: %.*s",
                 (int) ev->corr.len, ev->corr.data);
        h = curl_slist_append(list, line);
    }

    if (h == NULL) {
        curl_slist_free_all(list);
        return LOYALTY_ERROR;
    }

    d->headers = list;

    return LOYALTY_OK;
}
