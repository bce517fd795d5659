/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty-worker: shared types.  One process, one libevent base; the
 * modules are
 *
 *   loyalty_worker_main.c      argv, signals, start and graceful stop
 *   loyalty_worker_conf.c      YAML (libcyaml schema) -> conf, -t checks
 *   loyalty_worker_consumer.c  Redis: groups, XREADGROUP, XAUTOCLAIM,
 *                              XACK, retries, dead letters, trimming,
 *                              held entries kept fresh, dead consumers
 *   loyalty_worker_http.c      libcurl multi socket API on the base:
 *                              requests, per-destination queues,
 *                              concurrency, rate-limit gating
 *   loyalty_worker_webhook.c   the webhook destination (Standard Webhooks)
 *   loyalty_worker_sf.c        the salesforce destination: field maps,
 *                              batching, sObject Collections upserts
 *   loyalty_worker_sf_auth.c   Salesforce tokens shared in Redis
 *   loyalty_worker_sf_bulk.c   Bulk API 2.0 jobs for deep backlogs
 *   loyalty_worker_sf_budget.c the daily API budget guard (reserve)
 *   loyalty_worker_sf_slots.c  org_concurrency: the org's calls in
 *                              flight, for all workers (Redis leases)
 *   loyalty_worker_backfill.c  loyalty-worker backfill: a store's
 *                              full resync through Bulk API
 *   loyalty_worker_sf_conf.c   -t checks of salesforce destinations and
 *                              flows, the field maps
 *   loyalty_worker_identity.c  the identity map: an event's keys -> one
 *                              person id (Lua), `conflicts ... --merge`
 *   loyalty_worker_sf_pull.c   scheduled SOQL pulls (CRM -> loyalty),
 *                              with _sf_pull_conf.c (`pulls`, -t)
 *   loyalty_worker_ratelimit.c shared GCRA rate limits and 429 pauses
 *                              per destination (Lua, on the cmd connection)
 *   loyalty_worker_metrics.c   Prometheus counters, GET /metrics (evhttp)
 *   loyalty_worker_log.c       JSON log lines on stderr
 *   loyalty_worker_cli.c       stats, dlq list|show|replay|purge
 */

#ifndef _LOYALTY_WORKER_H_INCLUDED_
#define _LOYALTY_WORKER_H_INCLUDED_


#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>

#include <event2/event.h>

#include "loyalty_core.h"
#include "loyalty_envelope.h"
#include "loyalty_jw.h"
#include "loyalty_sig.h"


#define LOYALTY_WORKER_VERSION  "0.1.0"
#define LOYALTY_WORKER_GROUP    "workers"
#define LOYALTY_FLOWS_MAX       1024


/* configuration, as libcyaml loads it (see the schema in _conf.c) */

enum {
    LOYALTY_DEST_WEBHOOK = 0,
    LOYALTY_DEST_SALESFORCE
};


/* salesforce delta: what was not sent (sf_skipped[], the metrics) */
enum {
    LOYALTY_SF_SKIP_UNCHANGED = 0,      /* a field, same value */
    LOYALTY_SF_SKIP_OLDER,              /* a field, a newer value kept */
    LOYALTY_SF_SKIP_RECORD,             /* a record, nothing to send */
    LOYALTY_SF_SKIP_LOCKED              /* a record another worker writes */
};


typedef struct {
    char                 *name;
    char                 *type;
    char                 *url;
    char                 *secret_file;

    /* salesforce */
    char                 *auth;                /* client_credentials,
                                                  jwt_bearer */
    char                 *client_id;
    char                 *client_secret_file;
    char                 *username;
    char                 *audience;
    char                 *private_key_file;
    char                 *api_version;
    uint32_t              batch_window_ms;
    uint32_t              limit_pause_ms;      /* 403 REQUEST_LIMIT_... */
    uint32_t              bulk_threshold;      /* 0: never Bulk API */
    uint32_t              bulk_timeout_ms;
    uint32_t              budget_reserve;      /* % of the daily limit */
    uint32_t              backfill_reserve;    /* %, 0: 2 x budget_... */
    uint32_t              budget_poll_ms;
    uint32_t              org_concurrency;     /* calls in flight, all
                                                  workers, per org url */

    uint32_t              timeout_ms;
    uint32_t              connect_timeout_ms;
    uint32_t              concurrency;
    uint32_t              tls_verify;          /* 0: default (on) */
    double                rate;                /* requests/s, 0: no limit */
    uint32_t              burst;               /* 0: default (1) */

    /* runtime, not from YAML */
    unsigned              kind;                /* LOYALTY_DEST_* */
    loyalty_hmac_key_t   *key;
    void                 *sf;                  /* loyalty_sf_t */
    int64_t               sf_used;             /* Sforce-Limit-Info */
    int64_t               sf_limit;
    uint64_t              sf_skipped[4];       /* LOYALTY_SF_SKIP_* */
    uint64_t              sf_bulk_jobs;        /* Bulk API jobs made */
    uint64_t              sf_budget_pauses;    /* daily budget guard */
    unsigned              sf_budget_paused:1;
    unsigned              inflight;
    unsigned              queued;              /* waiting for a slot */
    void                 *queue_head;          /* loyalty_delivery_t */
    void                 *queue_tail;
    char                 *rl_key;              /* loyalty:rl:{<name>} */
    char                 *rl_pause_key;        /* loyalty:rl:{<name>}:pause */
    struct event         *rl_timer;            /* waiting for a token */
    unsigned              rl_asking:1;         /* token script in flight */
    char                  rl_interval[24];     /* emission interval, us */
    char                  rl_tolerance[24];    /* burst x interval, us */
} loyalty_dest_conf_t;


/* a field map entry's `lookup`: a relationship by external id */

typedef struct {
    char                 *object;
    char                 *external_id;
} loyalty_lookup_conf_t;


/* one entry of a salesforce flow's `fields` */

typedef struct {
    char                 *field;
    char                 *from;
    char                 *type;
    char                 *owner;
    uint32_t              max_length;
    uint32_t              scale;
    uint32_t              precision;
    int                   minor_units;
    int                   nullable;
    char                **values;
    unsigned              values_count;
    char                 *country;
    loyalty_lookup_conf_t *lookup;
    char                 *value;               /* fixed, instead of from */
    void                 *constant;            /* value as loyalty_json_t */
} loyalty_field_conf_t;


/* a flow's `lifecycle`: another object until one of `until` happened */

typedef struct {
    char                 *object;              /* Lead */
    char                 *external_id;         /* default: the flow's */
    char                **until;               /* event types */
    unsigned              until_count;
    loyalty_field_conf_t *converted;           /* { field, value } */
    unsigned              converted_count;
    void                 *map;                 /* converted, as a map */
} loyalty_lifecycle_conf_t;


typedef struct {
    char                 *name;                /* optional: the delivery's
                                                  id in _done */
    char                **stores;
    unsigned              stores_count;
    char                **from;
    unsigned              from_count;
    char                **on;
    unsigned              on_count;
    char                 *to;

    /* salesforce */
    char                 *object;
    char                 *external_id;
    char                 *key;                 /* ext_id, store_cid, ... */
    loyalty_field_conf_t *fields;
    unsigned              fields_count;
    int                   append;              /* ledger: no delta */
    loyalty_lifecycle_conf_t *lifecycle;

    loyalty_dest_conf_t  *dest;                /* resolved from "to" */
    unsigned              slot;                /* its bit in job->done */
    char                  id[200];             /* name, "to" or
                                                  "to:object" */
    unsigned              person:1;            /* key or $person: the
                                                  identity map */
    void                 *map;                 /* loyalty_sf_map_field_t */
    char                **map_from;            /* "$occurred" -> "$.o.." */
} loyalty_flow_conf_t;


/* identity: { match: [store_cid, ext_id, email, phone] } */

typedef struct {
    char                **match;
    unsigned              match_count;
} loyalty_identity_conf_t;


typedef struct loyalty_pull_conf_s  loyalty_pull_conf_t;   /* _sf_pull.h */


typedef struct {
    char                 *redis;
    char                **stores;
    unsigned              stores_count;
    loyalty_dest_conf_t  *destinations;
    unsigned              destinations_count;
    loyalty_flow_conf_t  *flows;
    unsigned              flows_count;
    loyalty_pull_conf_t  *pulls;               /* scheduled SOQL pulls */
    unsigned              pulls_count;
    uint32_t              claim_timeout_ms;
    uint32_t              claim_interval_ms;
    uint32_t              block_ms;
    uint32_t              batch;
    uint32_t              shutdown_timeout_ms;
    uint32_t              retry_base_ms;
    uint32_t              retry_cap_ms;
    uint32_t              max_attempts;
    uint32_t              retry_interval_ms;
    uint32_t              trim_interval_ms;
    uint32_t              consumer_gc_ms;
    char                 *redis_password_file;
    uint32_t              redis_db;
    char                 *log_level;
    char                 *metrics;             /* listen address or NULL */
    loyalty_identity_conf_t  *identity;

    /* runtime */
    unsigned              identity_rules[4];   /* LOYALTY_IDMAP_*, in order */
    unsigned              identity_nrules;
    char                  redis_host[256];
    int                   redis_port;
    char                  metrics_host[64];    /* numeric IP */
    int                   metrics_port;
    char                  redis_user[256];     /* ACL user, "" for none */
    char                  redis_pass[512];     /* "" for no AUTH */
} loyalty_conf_t;


/* one stream entry being delivered */

typedef struct loyalty_job_s  loyalty_job_t;

struct loyalty_job_s {
    loyalty_job_t        *next;             /* all jobs held */
    loyalty_job_t        *prev;
    unsigned              store;            /* index in conf->stores */
    char                 *entry_id;
    loyalty_str_t        *fv;               /* copied field/value pairs */
    size_t                nfv;
    loyalty_event_t       ev;               /* points into fv */
    unsigned              pending;          /* deliveries left (flows) */
    unsigned              failed;
    unsigned              retry:1;          /* from loyalty:{S}:retry */
    unsigned              permanent:1;      /* a 4xx: dead-letter it */
    unsigned              conflict:1;       /* ... to the conflicts */
    unsigned              abandoned:1;      /* SIGTERM: left as it is */
    unsigned              unmatched:1;      /* no flow took it */
    unsigned              attempts;         /* made before this one */
    long                  status;           /* of the last failure */
    uint64_t              retry_after_ms;   /* largest Retry-After */
    const char           *fail_dest;
    char                  error[160];
    uint8_t               done[LOYALTY_FLOWS_MAX / 8];  /* flow slots
                                               delivered (flow->slot) */
    void                 *id_wait;          /* identity script running */
    unsigned              id_state;         /* LOYALTY_IDENTITY_* */
    char                  person[32];       /* when LOYALTY_IDENTITY_OK */
    char                  id_why[200];      /* when ..._CONFLICT */
};


/* the result of one delivery to one destination */

typedef struct {
    unsigned              ok:1;
    unsigned              permanent:1;
    unsigned              conflict:1;       /* an identity conflict: for
                                               review, not a dead letter */
    unsigned              abandoned:1;
    long                  status;           /* HTTP, 0 when none */
    uint64_t              retry_after_ms;
    const char           *error;
} loyalty_outcome_t;


typedef struct {
    struct event_base    *base;
    loyalty_conf_t       *conf;
    char                  consumer[300];
    int                   stopping;
    unsigned              jobs;             /* entries held in memory */
} loyalty_cycle_t;


extern loyalty_cycle_t  loyalty_cycle;


/* log */

enum {
    LOYALTY_LOG_ERR = 0,
    LOYALTY_LOG_WARN,
    LOYALTY_LOG_INFO,
    LOYALTY_LOG_DEBUG
};

extern int  loyalty_log_level;

#define loyalty_log(lvl, job, dest, status, latency, ...)                    \
    do {                                                                      \
        if ((lvl) <= loyalty_log_level) {                                     \
            loyalty_log_write(lvl, job, dest, status, latency, __VA_ARGS__);  \
        }                                                                     \
    } while (0)

void loyalty_log_write(int level, const loyalty_job_t *job,
    const char *dest, int status, long latency_ms, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
int loyalty_log_level_parse(const char *name);
int loyalty_log_init(struct event_base *base);
void loyalty_log_close(void);
uint64_t loyalty_now_ms(void);
uint64_t loyalty_now_us(void);


/* conf */

loyalty_conf_t *loyalty_conf_load(const char *path, char *errbuf,
    size_t errlen);
void loyalty_conf_free(loyalty_conf_t *conf);
int loyalty_conf_metrics_loopback(loyalty_conf_t *conf);
int loyalty_conf_redis_argv(loyalty_conf_t *conf, int which,
    const char **argv, size_t *lens);


/* consumer */

int loyalty_consumer_init(loyalty_cycle_t *cycle);
void loyalty_consumer_stop(loyalty_cycle_t *cycle);
int loyalty_consumer_idle(loyalty_cycle_t *cycle);
void loyalty_consumer_done(loyalty_job_t *job, loyalty_flow_conf_t *flow,
    const loyalty_outcome_t *o);
void loyalty_consumer_close(loyalty_cycle_t *cycle);
void loyalty_consumer_cleanup(loyalty_cycle_t *cycle);
void loyalty_job_free(loyalty_job_t *job);

/* EVAL on the cmd connection; handler(reply, data): reply is a
 * redisReply, NULL when the connection went away; handler may be NULL */
typedef void (*loyalty_reply_pt)(void *reply, void *data);
int loyalty_consumer_eval(const char *what, const char *script, int nkeys,
    const char **args, size_t nargs, loyalty_reply_pt handler, void *data);


/* identity map (loyalty_worker_identity.c) */

enum {
    LOYALTY_IDENTITY_NONE = 0,          /* not asked yet */
    LOYALTY_IDENTITY_OK,                /* job->person */
    LOYALTY_IDENTITY_CONFLICT,          /* ambiguous: job->id_why */
    LOYALTY_IDENTITY_NOKEY,             /* the event has no match key */
    LOYALTY_IDENTITY_ERROR              /* Redis did not answer */
};

enum {
    LOYALTY_IDENTITY_NEW = 0,
    LOYALTY_IDENTITY_MATCHED,
    LOYALTY_IDENTITY_AMBIGUOUS,
    LOYALTY_IDENTITY_OUTCOMES
};

extern uint64_t  loyalty_identity_counts[LOYALTY_IDENTITY_OUTCOMES];

typedef void (*loyalty_identity_pt)(loyalty_job_t *job, void *data);

int loyalty_identity_conf(loyalty_conf_t *conf, char *err, size_t len);
void loyalty_identity_resolve(loyalty_job_t *job,
    loyalty_identity_pt handler, void *data);
int loyalty_identity_merge(void *redis, loyalty_conf_t *conf,
    const char *store, const char *id);


/* cli */

int loyalty_cli(loyalty_conf_t *conf, int argc, char **argv);
/* loyalty_worker_backfill.c; redis is a redisContext (synchronous) */
struct redisContext;
int loyalty_backfill(struct redisContext *redis, loyalty_conf_t *conf,
    int argc, char **argv);


/*
 * http: the generic layer.  A driver fills a request and gets one call
 * of its handler with the result (res->abandoned when it was cancelled
 * before it started, at SIGTERM).  The driver owns url, headers and
 * body and frees them in its handler; the layer owns the answer.
 */

typedef struct loyalty_http_req_s  loyalty_http_req_t;

typedef struct {
    long                  status;           /* HTTP, 0 when none */
    const char           *error;            /* transport error or NULL */
    uint64_t              retry_after_ms;
    const char           *body;             /* up to req->body_max */
    size_t                body_len;
    const char           *header;           /* req->capture, or NULL */
    uint64_t              us;               /* latency */
    unsigned              abandoned:1;
    unsigned              unstarted:1;      /* could not start: error */
} loyalty_http_res_t;

typedef void (*loyalty_http_done_pt)(loyalty_http_req_t *req,
    const loyalty_http_res_t *res);
typedef int (*loyalty_http_prepare_pt)(loyalty_http_req_t *req);

struct loyalty_http_req_s {
    loyalty_http_req_t   *next;             /* queue, or in flight */
    loyalty_http_req_t   *prev;
    loyalty_dest_conf_t  *dest;
    const char           *method;           /* NULL: POST */
    const char           *url;              /* NULL: dest->url */
    void                 *headers;          /* struct curl_slist */
    const char           *body;
    size_t                body_len;
    const char           *capture;          /* a response header to keep */
    size_t                body_max;         /* answer bytes kept */
    loyalty_http_prepare_pt  prepare;       /* at start: body, headers */
    loyalty_http_done_pt  handler;
    void                 (*release)(loyalty_http_req_t *req);  /* at exit:
                                               free, report nothing */
    void                 *data;

    /* the layer's */
    void                 *easy;
    uint64_t              start_us;
    unsigned              gated:1;          /* counted in dest->inflight */
    char                 *answer;
    size_t                answer_len;
    size_t                answer_size;
    size_t                header_len;
    char                  header[256];
    char                  error[256];       /* CURL_ERROR_SIZE */
};

int loyalty_http_init(loyalty_cycle_t *cycle);
void loyalty_http_submit(loyalty_job_t *job, loyalty_flow_conf_t *flow);
void loyalty_http_queue(loyalty_http_req_t *req);
void loyalty_http_send(loyalty_http_req_t *req);
unsigned loyalty_http_inflight(void);
void loyalty_http_cancel_queued(void);
void loyalty_http_cleanup(void);
void loyalty_http_next(loyalty_dest_conf_t *dest);
int loyalty_http_start_head(loyalty_dest_conf_t *dest);


/* destination drivers */

void loyalty_webhook_submit(loyalty_job_t *job, loyalty_flow_conf_t *flow);

int loyalty_sf_init(loyalty_cycle_t *cycle);
void loyalty_sf_submit(loyalty_job_t *job, loyalty_flow_conf_t *flow);
void loyalty_sf_cancel(loyalty_cycle_t *cycle);
void loyalty_sf_cleanup(loyalty_cycle_t *cycle);
int loyalty_sf_conf_dest(loyalty_dest_conf_t *d, char *err, size_t len);
int loyalty_sf_conf_flow(loyalty_flow_conf_t *f, unsigned i, char *err,
    size_t len);
void loyalty_sf_conf_free(loyalty_conf_t *conf);
/* a Salesforce API name: a letter, then letters, digits, _ (Foo__c) */
int loyalty_sf_api_name(const char *s);
/* scale, precision, country, max_length of a field on its type (t is a
 * loyalty_sf_field_type_t) */
int loyalty_sf_conf_typing(loyalty_field_conf_t *fc, const void *t,
    const char *where, char *err, size_t len);


/* metrics: fixed arrays, one call per outcome on the hot path */

enum {
    LOYALTY_DELIVERY_SUCCESS = 0,
    LOYALTY_DELIVERY_TRANSIENT,
    LOYALTY_DELIVERY_PERMANENT,
    LOYALTY_DELIVERY_OUTCOMES
};

enum {
    LOYALTY_EVENT_ACKED = 0,
    LOYALTY_EVENT_RETRIED,
    LOYALTY_EVENT_DEAD_LETTERED,
    LOYALTY_EVENT_INVALID,
    LOYALTY_EVENT_UNMATCHED,
    LOYALTY_EVENT_CONFLICT,
    LOYALTY_EVENT_OUTCOMES
};

int loyalty_metrics_init(loyalty_cycle_t *cycle);
void loyalty_metrics_cleanup(void);
int loyalty_metrics_probe(loyalty_conf_t *conf, char *err, size_t len);
void loyalty_metrics_delivery(loyalty_dest_conf_t *dest, unsigned outcome,
    uint64_t us);
void loyalty_metrics_event(unsigned store, unsigned outcome);
void loyalty_metrics_rl_wait(loyalty_dest_conf_t *dest);
void loyalty_metrics_rl_pause(loyalty_dest_conf_t *dest);
void loyalty_metrics_reconnect(void);

/* the pulls' series (loyalty_worker_sf_pull.c) */
struct evbuffer;
void loyalty_pull_metrics(loyalty_conf_t *conf, struct evbuffer *b);


/* rate limits */

int loyalty_rl_init(loyalty_cycle_t *cycle);
void loyalty_rl_ask(loyalty_dest_conf_t *dest);
void loyalty_rl_pause(loyalty_dest_conf_t *dest, uint64_t ms, long status);
void loyalty_rl_stop(loyalty_cycle_t *cycle);
void loyalty_rl_cleanup(loyalty_cycle_t *cycle);


#endif /* _LOYALTY_WORKER_H_INCLUDED_ */
