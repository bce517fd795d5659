/*
 * Copyright (C) loyalty-edge authors
 *
 * The salesforce destination's state, shared by loyalty_worker_sf.c
 * (records, batches, Collections calls) and loyalty_worker_sf_auth.c
 * (the access token, cached in Redis for every worker).
 */

#ifndef _LOYALTY_WORKER_SF_H_INCLUDED_
#define _LOYALTY_WORKER_SF_H_INCLUDED_


#include <openssl/evp.h>

#include "loyalty_worker.h"
#include "loyalty_sf_api.h"
#include "loyalty_sf_map.h"


/* the delta script's answer for a record */
enum {
    LOYALTY_SF_DELTA_SEND = 0,
    LOYALTY_SF_DELTA_UNCHANGED,         /* nothing left to send */
    LOYALTY_SF_DELTA_LOCKED,            /* another worker writes it */
    LOYALTY_SF_DELTA_ERROR,             /* Redis did not answer */
    LOYALTY_SF_DELTA_PROMOTED           /* a Lead whose person became a
                                           Contact meanwhile */
};


/* where a lifecycle flow's record goes (loyalty_worker_sf_lifecycle.c) */
enum {
    LOYALTY_SF_LC_NONE = 0,             /* the flow's object */
    LOYALTY_SF_LC_LEAD,                 /* before any `until` event */
    LOYALTY_SF_LC_CONVERT,              /* the Lead marked converted */
    LOYALTY_SF_LC_PROMOTE               /* first Contact write: the full
                                           profile */
};


/* a malloc'ed chain of blocks: one per record or call, freed at once */

typedef struct loyalty_sf_blk_s  loyalty_sf_blk_t;

typedef struct {
    loyalty_sf_blk_t     *blocks;
    loyalty_alloc_t       alloc;
} loyalty_sf_pool_t;


typedef struct loyalty_sf_item_s  loyalty_sf_item_t;
typedef struct loyalty_sf_call_s  loyalty_sf_call_t;

struct loyalty_sf_item_s {
    loyalty_sf_item_t    *next;
    loyalty_sf_item_t    *busy_next;       /* sf->busy bucket */
    loyalty_job_t        *job;
    loyalty_flow_conf_t  *flow;
    const char           *key;             /* external id value */
    loyalty_sf_mapped_t  *mapped;
    size_t                nmapped;
    uint64_t              added_ms;
    char                  time[32];        /* event time, canonical ms */
    char                 *state;           /* loyalty:state:{...} */
    char                 *lock;            /* state + ":lock" */
    char                 *hashes;          /* 17 bytes per mapped field:
                                              its value's hash, hex */
    char                 *ftimes;          /* 25 bytes per mapped field:
                                              its event's time */
    loyalty_sf_item_t    *riders;          /* later events of the record
                                              coalesced into this one
                                              (by next): same outcome */
    unsigned              nriders;
    loyalty_sf_call_t    *call;            /* while its script runs */
    u_char               *skip;            /* per mapped: 1 unchanged,
                                              2 older: not sent */
    const char           *object;          /* flow's, or lifecycle's */
    const char           *external_id;     /* NULL: platform event */
    char                 *lc_key;          /* loyalty:{S}:lifecycle:...,
                                              then the Lead's state and
                                              lease keys */
    size_t                lc_keys_len;     /* room of each */
    loyalty_sf_mapped_t  *lc_mapped;       /* the event's, while the
                                              Lead is marked converted */
    size_t                lc_nmapped;
    loyalty_sf_mapped_t  *lc_own;          /* the event's own values, */
    size_t                lc_nown;         /* before the Lead's joined */
    const char          **lc_time;         /* per mapped: the time of a
                                              value taken from the Lead */
    unsigned              phase:3;         /* LOYALTY_SF_LC_* */
    unsigned              lc_converted:1;  /* the Lead is marked: the
                                              Contact next */
    unsigned              nostate:1;       /* append, events: no delta */
    unsigned              verdict:3;       /* LOYALTY_SF_DELTA_* */
    unsigned              locked:1;        /* we hold the record lease */
    unsigned              busy:1;          /* in sf->busy */
    loyalty_sf_pool_t     pool;
};


typedef struct loyalty_sf_s       loyalty_sf_t;

struct loyalty_sf_call_s {
    loyalty_http_req_t    req;
    loyalty_sf_call_t    *next;            /* sf->calls */
    loyalty_sf_call_t    *prev;
    loyalty_sf_call_t    *wait_next;       /* sf->ready: needs a token */
    loyalty_sf_t         *sf;
    loyalty_sf_item_t   **items;           /* few, or a Bulk job's */
    loyalty_sf_item_t    *few[LOYALTY_SF_COLLECTION_MAX];
    size_t                n;
    void                 *bulk;            /* loyalty_sf_bulk_t: a job */
    unsigned              lease_ms;        /* record leases, 0: default */
    char                 *url;
    char                 *body;
    char                  token[512];      /* the one sent */
    unsigned              checking;        /* delta scripts to answer */
    unsigned              sent:1;          /* queued with the layer */
    unsigned              retried:1;       /* after a 401 */
};


/* buckets of the keys being written (a power of two) */
#define LOYALTY_SF_BUSY_BUCKETS  4096


struct loyalty_sf_s {
    loyalty_dest_conf_t  *dest;

    /* records gathered for the next call */
    loyalty_sf_item_t    *head;
    loyalty_sf_item_t    *tail;
    size_t                pending;
    struct event         *window;

    loyalty_sf_call_t    *calls;           /* made, not finished */
    unsigned              ncalls;
    unsigned              stalled:1;       /* every waiting key is being
                                              written: wait for a call */

    /* the records of calls made, by key: a record waits while its key
     * is written (hashed: a backlog holds thousands) */
    loyalty_sf_item_t    *busy[LOYALTY_SF_BUSY_BUCKETS];
    loyalty_sf_call_t    *ready;           /* waiting for a token */
    loyalty_sf_call_t    *ready_tail;

    /* auth (loyalty_worker_sf_auth.c) */
    char                  token[512];      /* "" when none */
    char                  instance_url[512];
    char                  user_id[24];     /* the token's user, "" */
    char                  key_token[160];  /* loyalty:sf:{d}:token */
    char                  key_lock[160];
    char                  key_usage[160];
    char                  secret[512];     /* client secret */
    EVP_PKEY             *pkey;            /* jwt_bearer */
    struct event         *auth_timer;
    unsigned              auth_backoff_ms;
    unsigned              auth_busy:1;
    unsigned              auth_locked:1;   /* we hold the lock */
    loyalty_http_req_t    auth_req;
    char                 *auth_body;
    char                  auth_url[2200];

    void                 *budget;          /* loyalty_worker_sf_budget.c */
    void                 *slots;           /* loyalty_worker_sf_slots.c */
};


void *loyalty_sf_palloc(void *ctx, size_t size);
void loyalty_sf_pool_init(loyalty_sf_pool_t *pool);
void loyalty_sf_pool_free(loyalty_sf_pool_t *pool);

int loyalty_sf_auth_init(loyalty_sf_t *sf);
void loyalty_sf_auth_need(loyalty_sf_t *sf);
void loyalty_sf_auth_failed(loyalty_sf_t *sf, const char *token);
void loyalty_sf_auth_stop(loyalty_sf_t *sf);
void loyalty_sf_auth_cleanup(loyalty_sf_t *sf);

/* a token is in sf->token: send what waited for it */
void loyalty_sf_token_ready(loyalty_sf_t *sf);

/* the scheduled pulls of this destination that wait for a token */
void loyalty_pull_token_ready(loyalty_sf_t *sf);

/* a mapped record joins the destination's list (front: it goes first) */
void loyalty_sf_enqueue(loyalty_sf_item_t *it, int front);
void loyalty_sf_item_fail(loyalty_sf_item_t *it, int permanent,
    const char *error);

/* lifecycle flows (loyalty_worker_sf_lifecycle.c) */
int loyalty_sf_lifecycle_conf(loyalty_flow_conf_t *f, unsigned i,
    char *err, size_t len);
void loyalty_sf_lifecycle_conf_free(loyalty_lifecycle_conf_t *lc);
void loyalty_sf_lifecycle_submit(loyalty_sf_item_t *it);
/* after a successful (or unchanged) write: 1 when the item goes on */
int loyalty_sf_lifecycle_written(loyalty_sf_item_t *it);

/* loyalty_worker_sf.c, for the Bulk API path */
void loyalty_sf_check(loyalty_sf_call_t *c);
loyalty_sf_item_t *loyalty_sf_key_busy(loyalty_sf_t *sf, const char *key);
void loyalty_sf_busy_add(loyalty_sf_t *sf, loyalty_sf_item_t *it);
void loyalty_sf_merge(loyalty_sf_item_t *into, loyalty_sf_item_t *it);
void loyalty_sf_finish(loyalty_sf_call_t *c, loyalty_sf_class_e cls,
    const loyalty_sf_result_t *results, const char *why, long status,
    uint64_t us);
void loyalty_sf_schedule(loyalty_sf_t *sf);
void loyalty_sf_usage(loyalty_sf_t *sf, const char *header);

/* an event as its flow maps it (also for loyalty_worker_backfill.c) */
const char *loyalty_sf_key(loyalty_job_t *job, loyalty_flow_conf_t *flow,
    const loyalty_alloc_t *a);
int loyalty_sf_envelope(loyalty_job_t *job, loyalty_json_t *data,
    const loyalty_alloc_t *a);
void loyalty_sf_event_time(loyalty_job_t *job, char *time);

/* loyalty_worker_sf_bulk.c: a backlog deeper than bulk_threshold goes
 * as one Bulk API 2.0 job; LOYALTY_DECLINED when it is not deep */
int loyalty_sf_bulk_flush(loyalty_sf_t *sf);
void loyalty_sf_bulk_start(loyalty_sf_call_t *c);
void loyalty_sf_bulk_cancel(loyalty_sf_t *sf);
void loyalty_sf_bulk_free(loyalty_sf_call_t *c);

/* loyalty_worker_sf_slots.c: org_concurrency for all workers */
int loyalty_sf_slots_init(loyalty_sf_t *sf);
void loyalty_sf_queue(loyalty_sf_t *sf, loyalty_http_req_t *req);
void loyalty_sf_slots_cancel(loyalty_sf_t *sf);
void loyalty_sf_slots_cleanup(loyalty_sf_t *sf);

/* loyalty_worker_sf_budget.c: the daily budget guard */
int loyalty_sf_budget_init(loyalty_sf_t *sf);
void loyalty_sf_budget_seen(loyalty_sf_t *sf, int64_t used, int64_t limit);
void loyalty_sf_budget_stop(loyalty_sf_t *sf);
void loyalty_sf_budget_cleanup(loyalty_sf_t *sf);


#endif /* _LOYALTY_WORKER_SF_H_INCLUDED_ */
