/*
 * Copyright (C) loyalty-edge authors
 *
 * Prometheus metrics.  The registry is a set of fixed arrays sized from
 * the configuration at start (destinations x outcomes, stores x
 * outcomes): counting is an index and an add, no allocation, no lock
 * (one thread).  Gauges (in flight, queued, held) are read from the
 * running state when scraped, so they cost nothing per event.
 *
 * With `metrics: ADDR`, evhttp serves GET /metrics on the worker's own
 * event base (text exposition format 0.0.4); anything else is a 404.
 * Counters start from zero with the process, and so after a SIGHUP
 * reload (a new image): loyalty_worker_start_time_seconds tells.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netdb.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "loyalty_worker.h"


/* upper bounds in microseconds: 5 ms ... 10 s, then +Inf */
#define LOYALTY_METRICS_BUCKETS  11

static const uint64_t  loyalty_metrics_le_us[LOYALTY_METRICS_BUCKETS] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
    5000000, 10000000
};

static const char  *loyalty_metrics_le[LOYALTY_METRICS_BUCKETS + 1] = {
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5",
    "5", "10", "+Inf"
};

static const char  *loyalty_metrics_delivery_names[] = {
    "success", "transient", "permanent"
};

static const char  *loyalty_metrics_event_names[] = {
    "acked", "retried", "dead_lettered", "invalid", "unmatched", "conflict"
};

/* LOYALTY_SF_SKIP_* */
static const char  *loyalty_metrics_skip_names[] = {
    "unchanged_field", "older_field", "unchanged_record", "locked"
};


typedef struct {
    /* per outcome; bucket[o][i] is not cumulative, the last is +Inf */
    uint64_t              count[LOYALTY_DELIVERY_OUTCOMES];
    uint64_t              sum_us[LOYALTY_DELIVERY_OUTCOMES];
    uint64_t              bucket[LOYALTY_DELIVERY_OUTCOMES]
                                [LOYALTY_METRICS_BUCKETS + 1];
    uint64_t              rl_waits;
    uint64_t              rl_pauses;
    char                 *label;           /* escaped name */
} loyalty_metrics_dest_t;


typedef struct {
    uint64_t              events[LOYALTY_EVENT_OUTCOMES];
    char                 *label;
} loyalty_metrics_store_t;


typedef struct {
    loyalty_cycle_t          *cycle;
    loyalty_metrics_dest_t   *dests;
    unsigned                  ndests;
    loyalty_metrics_store_t  *stores;
    unsigned                  nstores;
    uint64_t                  reconnects;
    double                    start_time;
    struct evhttp            *http;
} loyalty_metrics_t;


static char *loyalty_metrics_escape(const char *s);
static void loyalty_metrics_request(struct evhttp_request *r, void *arg);
static void loyalty_metrics_render(loyalty_metrics_t *m,
    struct evbuffer *b);


static loyalty_metrics_t  loyalty_metrics;


int
loyalty_metrics_init(loyalty_cycle_t *cycle)
{
    unsigned            i;
    loyalty_conf_t     *conf;
    loyalty_metrics_t  *m;
    struct timespec     ts;

    m = &loyalty_metrics;
    conf = cycle->conf;

    memset(m, 0, sizeof(loyalty_metrics_t));
    m->cycle = cycle;
    m->ndests = conf->destinations_count;
    m->nstores = conf->stores_count;
    m->dests = calloc(m->ndests, sizeof(loyalty_metrics_dest_t));
    m->stores = calloc(m->nstores, sizeof(loyalty_metrics_store_t));

    if (m->dests == NULL || m->stores == NULL) {
        return LOYALTY_ERROR;
    }

    /* label values are escaped once, not at every scrape */
    for (i = 0; i < m->ndests; i++) {
        m->dests[i].label = loyalty_metrics_escape(
                                conf->destinations[i].name);
        if (m->dests[i].label == NULL) {
            return LOYALTY_ERROR;
        }
    }

    for (i = 0; i < m->nstores; i++) {
        m->stores[i].label = loyalty_metrics_escape(conf->stores[i]);
        if (m->stores[i].label == NULL) {
            return LOYALTY_ERROR;
        }
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    m->start_time = (double) ts.tv_sec + (double) (ts.tv_nsec / 1000000)
                    / 1000.0;

    if (conf->metrics == NULL) {
        return LOYALTY_OK;
    }

    m->http = evhttp_new(cycle->base);
    if (m->http == NULL) {
        return LOYALTY_ERROR;
    }

    /* a scrape is one small GET: keep everything else out cheaply */
    evhttp_set_timeout(m->http, 10);
    evhttp_set_max_headers_size(m->http, 8192);
    evhttp_set_max_body_size(m->http, 0);
    evhttp_set_gencb(m->http, loyalty_metrics_request, m);

    errno = 0;

    if (evhttp_bind_socket_with_handle(m->http, conf->metrics_host,
                                       (ev_uint16_t) conf->metrics_port)
        == NULL)
    {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "metrics: cannot listen on %s (%s port %d): %s",
                    conf->metrics, conf->metrics_host, conf->metrics_port,
                    errno ? strerror(errno) : "bind failed");
        return LOYALTY_ERROR;
    }

    loyalty_log(loyalty_conf_metrics_loopback(conf) ? LOYALTY_LOG_INFO
                                                    : LOYALTY_LOG_WARN,
                NULL, NULL, -1, -1, "metrics: GET /metrics on %s%s",
                conf->metrics, loyalty_conf_metrics_loopback(conf) ? ""
                : " (not loopback: anyone who reaches it can read them)");

    return LOYALTY_OK;
}


void
loyalty_metrics_cleanup(void)
{
    unsigned            i;
    loyalty_metrics_t  *m;

    m = &loyalty_metrics;

    if (m->http != NULL) {
        evhttp_free(m->http);
        m->http = NULL;
    }

    for (i = 0; m->dests != NULL && i < m->ndests; i++) {
        free(m->dests[i].label);
    }

    for (i = 0; m->stores != NULL && i < m->nstores; i++) {
        free(m->stores[i].label);
    }

    free(m->dests);
    free(m->stores);
    m->dests = NULL;
    m->stores = NULL;
}


/*
 * SIGHUP: a new metrics address is tried in this process before the
 * reload commits, so a port in use is an error logged here (the old
 * configuration runs on) rather than a fatal one in the new image.
 */

int
loyalty_metrics_probe(loyalty_conf_t *conf, char *err, size_t len)
{
    int               fd, on, rc;
    char              port[8];
    struct addrinfo   hints, *ai;

    if (conf->metrics == NULL) {
        return LOYALTY_OK;
    }

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_PASSIVE;
    snprintf(port, sizeof(port), "%d", conf->metrics_port);

    if (getaddrinfo(conf->metrics_host, port, &hints, &ai) != 0) {
        snprintf(err, len, "metrics \"%s\": bad address", conf->metrics);
        return LOYALTY_ERROR;
    }

    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    on = 1;
    rc = -1;

    if (fd != -1) {
        (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
        rc = bind(fd, ai->ai_addr, ai->ai_addrlen);
    }

    if (rc != 0) {
        snprintf(err, len, "metrics \"%s\": cannot listen: %s",
                 conf->metrics, strerror(errno));
    }

    if (fd != -1) {
        close(fd);
    }

    freeaddrinfo(ai);

    return rc == 0 ? LOYALTY_OK : LOYALTY_ERROR;
}


/* the hot path: an index, a few adds, a scan of 11 bounds */

void
loyalty_metrics_delivery(loyalty_dest_conf_t *dest, unsigned outcome,
    uint64_t us)
{
    unsigned                 i;
    loyalty_metrics_dest_t  *d;

    d = &loyalty_metrics.dests[dest - loyalty_metrics.cycle->conf
                                      ->destinations];

    for (i = 0; i < LOYALTY_METRICS_BUCKETS; i++) {
        if (us <= loyalty_metrics_le_us[i]) {
            break;
        }
    }

    d->count[outcome]++;
    d->sum_us[outcome] += us;
    d->bucket[outcome][i]++;
}


void
loyalty_metrics_event(unsigned store, unsigned outcome)
{
    loyalty_metrics.stores[store].events[outcome]++;
}


void
loyalty_metrics_rl_wait(loyalty_dest_conf_t *dest)
{
    loyalty_metrics.dests[dest - loyalty_metrics.cycle->conf->destinations]
        .rl_waits++;
}


void
loyalty_metrics_rl_pause(loyalty_dest_conf_t *dest)
{
    loyalty_metrics.dests[dest - loyalty_metrics.cycle->conf->destinations]
        .rl_pauses++;
}


void
loyalty_metrics_reconnect(void)
{
    loyalty_metrics.reconnects++;
}


/* label values: backslash, double quote and line feed are escaped */

static char *
loyalty_metrics_escape(const char *s)
{
    char  *out, *p;

    out = malloc(2 * strlen(s) + 1);
    if (out == NULL) {
        return NULL;
    }

    for (p = out; *s; s++) {
        if (*s == '\\' || *s == '"') {
            *p++ = '\\';
            *p++ = *s;

        } else if (*s == '\n') {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = *s;
        }
    }

    *p = '\0';

    return out;
}


static void
loyalty_metrics_request(struct evhttp_request *r, void *arg)
{
    const char                *path;
    struct evbuffer           *b;
    const struct evhttp_uri   *uri;

    uri = evhttp_request_get_evhttp_uri(r);
    path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;

    if (evhttp_request_get_command(r) != EVHTTP_REQ_GET || path == NULL
        || strcmp(path, "/metrics") != 0)
    {
        evhttp_send_error(r, HTTP_NOTFOUND, NULL);
        return;
    }

    b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(r, HTTP_INTERNAL, NULL);
        return;
    }

    loyalty_metrics_render(arg, b);

    evhttp_add_header(evhttp_request_get_output_headers(r), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(r, HTTP_OK, "OK", b);
    evbuffer_free(b);
}


#define loyalty_metrics_head(b, name, type, help)                            \
    evbuffer_add_printf(b, "# HELP " name " " help "\n# TYPE " name " "       \
                        type "\n")


static void
loyalty_metrics_render(loyalty_metrics_t *m, struct evbuffer *b)
{
    unsigned                  i, j, o, k, sf;
    uint64_t                  cum;
    loyalty_conf_t           *conf;
    loyalty_dest_conf_t      *dest;
    loyalty_metrics_dest_t   *d;
    loyalty_metrics_store_t  *s;

    conf = m->cycle->conf;

    loyalty_metrics_head(b, "loyalty_worker_deliveries_total", "counter",
        "HTTP deliveries finished, by destination and outcome.");

    for (i = 0; i < m->ndests; i++) {
        for (o = 0; o < LOYALTY_DELIVERY_OUTCOMES; o++) {
            evbuffer_add_printf(b, "loyalty_worker_deliveries_total"
                "{destination=\"%s\",outcome=\"%s\"} %llu\n",
                m->dests[i].label, loyalty_metrics_delivery_names[o],
                (unsigned long long) m->dests[i].count[o]);
        }
    }

    loyalty_metrics_head(b, "loyalty_worker_delivery_duration_seconds",
        "histogram", "Time from the start of a request to its outcome.");

    for (i = 0; i < m->ndests; i++) {
        d = &m->dests[i];

        for (o = 0; o < LOYALTY_DELIVERY_OUTCOMES; o++) {
            cum = 0;

            for (k = 0; k <= LOYALTY_METRICS_BUCKETS; k++) {
                cum += d->bucket[o][k];
                evbuffer_add_printf(b,
                    "loyalty_worker_delivery_duration_seconds_bucket"
                    "{destination=\"%s\",outcome=\"%s\",le=\"%s\"} %llu\n",
                    d->label, loyalty_metrics_delivery_names[o],
                    loyalty_metrics_le[k], (unsigned long long) cum);
            }

            evbuffer_add_printf(b,
                "loyalty_worker_delivery_duration_seconds_sum"
                "{destination=\"%s\",outcome=\"%s\"} %llu.%06llu\n"
                "loyalty_worker_delivery_duration_seconds_count"
                "{destination=\"%s\",outcome=\"%s\"} %llu\n",
                d->label, loyalty_metrics_delivery_names[o],
                (unsigned long long) (d->sum_us[o] / 1000000),
                (unsigned long long) (d->sum_us[o] % 1000000),
                d->label, loyalty_metrics_delivery_names[o],
                (unsigned long long) d->count[o]);
        }
    }

    loyalty_metrics_head(b, "loyalty_worker_events_total", "counter",
        "Stream entries and retries finished, by store and outcome.");

    for (i = 0; i < m->nstores; i++) {
        s = &m->stores[i];

        for (o = 0; o < LOYALTY_EVENT_OUTCOMES; o++) {
            evbuffer_add_printf(b, "loyalty_worker_events_total"
                "{store=\"%s\",outcome=\"%s\"} %llu\n", s->label,
                loyalty_metrics_event_names[o],
                (unsigned long long) s->events[o]);
        }
    }

    loyalty_metrics_head(b, "loyalty_worker_rate_limit_waits_total",
        "counter", "Token requests answered with a wait.");

    for (i = 0; i < m->ndests; i++) {
        evbuffer_add_printf(b, "loyalty_worker_rate_limit_waits_total"
            "{destination=\"%s\"} %llu\n", m->dests[i].label,
            (unsigned long long) m->dests[i].rl_waits);
    }

    loyalty_metrics_head(b, "loyalty_worker_rate_limit_pauses_total",
        "counter", "Shared pauses set after a 429.");

    for (i = 0; i < m->ndests; i++) {
        evbuffer_add_printf(b, "loyalty_worker_rate_limit_pauses_total"
            "{destination=\"%s\"} %llu\n", m->dests[i].label,
            (unsigned long long) m->dests[i].rl_pauses);
    }

    loyalty_metrics_head(b, "loyalty_worker_redis_reconnects_total",
        "counter", "Redis connections established again after a loss.");
    evbuffer_add_printf(b, "loyalty_worker_redis_reconnects_total %llu\n",
                        (unsigned long long) m->reconnects);

    loyalty_metrics_head(b, "loyalty_worker_inflight", "gauge",
        "Requests in flight.");

    for (i = 0; i < m->ndests; i++) {
        dest = &conf->destinations[i];
        evbuffer_add_printf(b, "loyalty_worker_inflight"
            "{destination=\"%s\"} %u\n", m->dests[i].label, dest->inflight);
    }

    loyalty_metrics_head(b, "loyalty_worker_queued", "gauge",
        "Requests waiting for a concurrency slot or a rate limit token.");

    for (i = 0; i < m->ndests; i++) {
        dest = &conf->destinations[i];
        evbuffer_add_printf(b, "loyalty_worker_queued"
            "{destination=\"%s\"} %u\n", m->dests[i].label, dest->queued);
    }

    /* the org's daily API budget, from the last Sforce-Limit-Info */
    for (i = 0, sf = 0; i < m->ndests; i++) {
        sf += conf->destinations[i].kind == LOYALTY_DEST_SALESFORCE;
    }

    if (sf) {
        loyalty_metrics_head(b, "loyalty_worker_salesforce_api_used",
            "gauge", "Salesforce API requests used today (last answer).");

        for (i = 0; i < m->ndests; i++) {
            dest = &conf->destinations[i];
            if (dest->kind == LOYALTY_DEST_SALESFORCE) {
                evbuffer_add_printf(b, "loyalty_worker_salesforce_api_used"
                    "{destination=\"%s\"} %lld\n", m->dests[i].label,
                    (long long) dest->sf_used);
            }
        }

        loyalty_metrics_head(b, "loyalty_worker_salesforce_skipped_total",
            "counter", "Salesforce delta: fields and records not sent.");

        for (i = 0; i < m->ndests; i++) {
            dest = &conf->destinations[i];
            if (dest->kind != LOYALTY_DEST_SALESFORCE) {
                continue;
            }

            for (j = 0; j < 4; j++) {
                evbuffer_add_printf(b, "loyalty_worker_salesforce_skipped_"
                    "total{destination=\"%s\",reason=\"%s\"} %llu\n",
                    m->dests[i].label, loyalty_metrics_skip_names[j],
                    (unsigned long long) dest->sf_skipped[j]);
            }
        }

        loyalty_metrics_head(b, "loyalty_worker_salesforce_bulk_jobs_total",
            "counter", "Salesforce Bulk API jobs made for backlogs.");

        for (i = 0; i < m->ndests; i++) {
            dest = &conf->destinations[i];
            if (dest->kind == LOYALTY_DEST_SALESFORCE) {
                evbuffer_add_printf(b, "loyalty_worker_salesforce_bulk_jobs_"
                    "total{destination=\"%s\"} %llu\n", m->dests[i].label,
                    (unsigned long long) dest->sf_bulk_jobs);
            }
        }

        loyalty_metrics_head(b, "loyalty_worker_salesforce_budget_pauses_"
            "total", "counter", "Daily budget guard: pauses at the reserve.");

        for (i = 0; i < m->ndests; i++) {
            dest = &conf->destinations[i];
            if (dest->kind == LOYALTY_DEST_SALESFORCE) {
                evbuffer_add_printf(b, "loyalty_worker_salesforce_budget_"
                    "pauses_total{destination=\"%s\"} %llu\n",
                    m->dests[i].label,
                    (unsigned long long) dest->sf_budget_pauses);
            }
        }

        loyalty_metrics_head(b, "loyalty_worker_salesforce_budget_paused",
            "gauge", "1 while this worker's budget guard pauses the "
            "destination.");

        for (i = 0; i < m->ndests; i++) {
            dest = &conf->destinations[i];
            if (dest->kind == LOYALTY_DEST_SALESFORCE) {
                evbuffer_add_printf(b, "loyalty_worker_salesforce_budget_"
                    "paused{destination=\"%s\"} %u\n", m->dests[i].label,
                    (unsigned) dest->sf_budget_paused);
            }
        }

        loyalty_metrics_head(b, "loyalty_worker_salesforce_api_limit",
            "gauge", "Salesforce daily API request limit (last answer).");

        for (i = 0; i < m->ndests; i++) {
            dest = &conf->destinations[i];
            if (dest->kind == LOYALTY_DEST_SALESFORCE) {
                evbuffer_add_printf(b, "loyalty_worker_salesforce_api_limit"
                    "{destination=\"%s\"} %lld\n", m->dests[i].label,
                    (long long) dest->sf_limit);
            }
        }
    }

    loyalty_metrics_head(b, "loyalty_worker_identity_resolutions_total",
        "counter", "Identity map resolutions: new, matched, ambiguous.");
    evbuffer_add_printf(b, "loyalty_worker_identity_resolutions_total"
        "{outcome=\"new\"} %llu\n"
        "loyalty_worker_identity_resolutions_total{outcome=\"matched\"} %llu\n"
        "loyalty_worker_identity_resolutions_total{outcome=\"ambiguous\"} "
        "%llu\n",
        (unsigned long long) loyalty_identity_counts[LOYALTY_IDENTITY_NEW],
        (unsigned long long) loyalty_identity_counts[LOYALTY_IDENTITY_MATCHED],
        (unsigned long long)
            loyalty_identity_counts[LOYALTY_IDENTITY_AMBIGUOUS]);

    loyalty_pull_metrics(conf, b);

    loyalty_metrics_head(b, "loyalty_worker_held_entries", "gauge",
        "Entries read and not finished yet (at most batch).");
    evbuffer_add_printf(b, "loyalty_worker_held_entries %u\n",
                        m->cycle->jobs);

    loyalty_metrics_head(b, "loyalty_worker_up", "gauge",
        "1 while the worker serves metrics.");
    evbuffer_add_printf(b, "loyalty_worker_up 1\n");

    loyalty_metrics_head(b, "loyalty_worker_start_time_seconds", "gauge",
        "Start of this process image (unix time): counters reset then.");
    evbuffer_add_printf(b, "loyalty_worker_start_time_seconds %.3f\n",
                        m->start_time);

    loyalty_metrics_head(b, "loyalty_worker_build_info", "gauge",
        "Always 1; the version is a label.");
    evbuffer_add_printf(b, "loyalty_worker_build_info{version=\""
                        LOYALTY_WORKER_VERSION "\"} 1\n");
}
