/*
 * Copyright (C) loyalty-edge authors
 *
 * The webhook destination: POSTs the envelope as JSON, signed with
 * Standard Webhooks: webhook-id is the event id (receivers dedupe on
 * it), webhook-timestamp the unix time, webhook-signature
 * "v1,<base64 HMAC-SHA256 of id.timestamp.body>".  Body and signature
 * are made when the request starts (a request that waited for a rate
 * limit token is not signed with an old timestamp).  2xx is delivered;
 * a 4xx is the event's fault (dead letter), except 408, 423, 425, 429.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "loyalty_worker.h"


typedef struct {
    loyalty_http_req_t    req;             /* first: the handler's r */
    loyalty_job_t        *job;
    loyalty_flow_conf_t  *flow;
    char                 *body_buf;
} loyalty_webhook_t;


static int loyalty_webhook_prepare(loyalty_http_req_t *r);
static void loyalty_webhook_done(loyalty_http_req_t *r,
    const loyalty_http_res_t *res);
static void loyalty_webhook_release(loyalty_http_req_t *r);
static int loyalty_webhook_body(loyalty_webhook_t *d);
static int loyalty_webhook_sign(loyalty_webhook_t *d);


void
loyalty_webhook_submit(loyalty_job_t *job, loyalty_flow_conf_t *flow)
{
    loyalty_outcome_t     o;
    loyalty_webhook_t    *d;
    loyalty_dest_conf_t  *dest;

    dest = flow->dest;

    d = calloc(1, sizeof(loyalty_webhook_t));
    if (d == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, job, dest->name, -1, -1,
                    "out of memory");
        memset(&o, 0, sizeof(o));
        o.error = "out of memory";
        loyalty_consumer_done(job, flow, &o);
        return;
    }

    d->job = job;
    d->flow = flow;
    d->req.dest = dest;
    d->req.prepare = loyalty_webhook_prepare;
    d->req.handler = loyalty_webhook_done;
    d->req.release = loyalty_webhook_release;
    d->req.data = d;

    loyalty_http_queue(&d->req);
}


static void
loyalty_webhook_release(loyalty_http_req_t *r)
{
    loyalty_webhook_t  *d;

    d = r->data;
    curl_slist_free_all(r->headers);
    free(d->body_buf);
    free(d);
}


static int
loyalty_webhook_prepare(loyalty_http_req_t *r)
{
    loyalty_webhook_t  *d;

    d = r->data;

    if (loyalty_webhook_body(d) != LOYALTY_OK
        || loyalty_webhook_sign(d) != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    r->body = d->body_buf;

    return LOYALTY_OK;
}


static void
loyalty_webhook_done(loyalty_http_req_t *r, const loyalty_http_res_t *res)
{
    long                  status, latency;
    loyalty_outcome_t     o;
    loyalty_webhook_t    *d;
    loyalty_dest_conf_t  *dest;
    char                  error[160];

    d = r->data;
    dest = r->dest;
    status = res->status;
    latency = (long) (res->us / 1000);

    memset(&o, 0, sizeof(o));
    o.status = status;
    o.error = error;
    error[0] = '\0';

    if (res->abandoned) {
        o.abandoned = 1;

    } else if (res->unstarted) {
        /* never started */
        o.error = res->error;
        loyalty_metrics_delivery(dest, LOYALTY_DELIVERY_TRANSIENT, 0);

    } else if (res->error == NULL && status >= 200 && status < 300) {
        o.ok = 1;
        loyalty_log(LOYALTY_LOG_INFO, d->job, dest->name, (int) status,
                    latency, "delivered");

    } else if (res->error != NULL) {
        o.status = 0;
        snprintf(error, sizeof(error), "%s", res->error);
        loyalty_log(LOYALTY_LOG_WARN, d->job, dest->name, -1, latency,
                    "delivery failed: %s", error);

    } else {
        /* 4xx is the event's fault, except timeouts, locks, rate limits */
        o.permanent = (status >= 400 && status < 500 && status != 408
                       && status != 423 && status != 425 && status != 429);
        o.retry_after_ms = res->retry_after_ms;
        snprintf(error, sizeof(error), "HTTP %ld: %.*s", status,
                 (int) (res->body_len > 120 ? 120 : res->body_len),
                 res->body);
        loyalty_log(LOYALTY_LOG_WARN, d->job, dest->name, (int) status,
                    latency, "delivery refused (%s): \"%.*s\"",
                    o.permanent ? "permanent" : "transient",
                    (int) res->body_len, res->body);
    }

    if (!o.abandoned && !res->unstarted) {
        loyalty_metrics_delivery(dest, o.ok ? LOYALTY_DELIVERY_SUCCESS
                                 : o.permanent ? LOYALTY_DELIVERY_PERMANENT
                                 : LOYALTY_DELIVERY_TRANSIENT, res->us);
    }

    curl_slist_free_all(r->headers);
    free(d->body_buf);

    loyalty_consumer_done(d->job, d->flow, &o);
    free(d);
}


static char *
loyalty_webhook_field(char *p, const char *name, const loyalty_str_t *v)
{
    if (v->len == 0) {
        return p;
    }

    p += sprintf(p, ",\"%s\":\"", name);
    p += loyalty_jw_escape((u_char *) p, v->data, v->len);
    *p++ = '"';

    return p;
}


/* the envelope as one JSON object; data is embedded as JSON */

static int
loyalty_webhook_body(loyalty_webhook_t *d)
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

    d->body_buf = malloc(size);
    if (d->body_buf == NULL) {
        return LOYALTY_ERROR;
    }

    p = d->body_buf;
    p += sprintf(p, "{\"v\":1");
    p = loyalty_webhook_field(p, "id", &ev->id);
    p = loyalty_webhook_field(p, "src", &ev->src);
    p = loyalty_webhook_field(p, "store", &ev->store);
    p = loyalty_webhook_field(p, "type", &ev->type);
    p = loyalty_webhook_field(p, "topic", &ev->topic);
    p = loyalty_webhook_field(p, "occurred", &ev->occurred);

    if (ev->received) {
        p += sprintf(p, ",\"received\":%lld", (long long) ev->received);
    }

    p = loyalty_webhook_field(p, "corr", &ev->corr);
    p = loyalty_webhook_field(p, "email", &ev->email);
    p = loyalty_webhook_field(p, "ext_id", &ev->ext_id);
    p = loyalty_webhook_field(p, "store_cid", &ev->store_cid);
    p = loyalty_webhook_field(p, "phone", &ev->phone);
    p = loyalty_webhook_field(p, "raw", &ev->raw);
    p += sprintf(p, ",\"data\":");
    memcpy(p, ev->data.data, ev->data.len);
    p += ev->data.len;
    *p++ = '}';

    d->req.body_len = p - d->body_buf;

    return LOYALTY_OK;
}


static int
loyalty_webhook_sign(loyalty_webhook_t *d)
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
    parts[4].data = (u_char *) d->body_buf;
    parts[4].len = d->req.body_len;

    n = loyalty_hmac(d->req.dest->key, parts, 5, mac);
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

    d->req.headers = list;

    return LOYALTY_OK;
}
