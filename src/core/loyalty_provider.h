/*
 * Copyright (C) loyalty-edge authors
 *
 * The sender registry: one entry per sender (standard, generic, and the
 * named platforms), each knowing how to turn a secret into a key, how to
 * verify a delivery, and how to normalise it into envelope v1 events.
 */

#ifndef _LOYALTY_PROVIDER_H_INCLUDED_
#define _LOYALTY_PROVIDER_H_INCLUDED_


#include "loyalty_core.h"
#include "loyalty_sig.h"
#include "loyalty_envelope.h"
#include "loyalty_json.h"


typedef struct loyalty_request_s   loyalty_request_t;
typedef struct loyalty_provider_s  loyalty_provider_t;


/* case-insensitive header lookup supplied by the transport */
typedef int (*loyalty_header_pt)(const loyalty_request_t *req,
    const char *name, loyalty_str_t *value);


/* one delivery as the transport (nginx, a test, a fuzzer) sees it */
struct loyalty_request_s {
    loyalty_str_t         body;
    time_t                now;             /* seconds */
    int64_t               now_ms;
    loyalty_header_pt     header;
    void                 *data;            /* the transport's own */
};


/* per-location settings, filled from directives, read by providers */
typedef struct {
    const loyalty_provider_t  *provider;
    loyalty_hmac_key_t       **keys;
    size_t                     nkeys;
    size_t                     nalloc;
    time_t                     tolerance;
    loyalty_md_e               md;
    loyalty_enc_e              encoding;
    const char                *signature_header;
    const char                *id_header;       /* NULL: body digest */
} loyalty_provider_conf_t;


typedef struct {
    loyalty_event_t           *events;
    size_t                     nevents;
} loyalty_batch_t;


struct loyalty_provider_s {
    const char   *name;

    /* secret as configured -> key for this sender's scheme */
    int         (*key)(const loyalty_provider_conf_t *conf,
                       const loyalty_str_t *secret, loyalty_hmac_key_t **key,
                       loyalty_err_t *err);

    /* LOYALTY_OK, or LOYALTY_DECLINED with the reason in err */
    int         (*verify)(const loyalty_provider_conf_t *conf,
                          const loyalty_request_t *req, loyalty_err_t *err);

    /*
     * Verified delivery -> zero or more events (zero: acknowledge and
     * queue nothing, e.g. a ping).  LOYALTY_DECLINED with err->code
     * LOYALTY_ERR_JSON or LOYALTY_ERR_INPUT for bad payloads.
     */
    int         (*normalize)(const loyalty_provider_conf_t *conf,
                             const loyalty_request_t *req,
                             const loyalty_alloc_t *a, loyalty_batch_t *out,
                             loyalty_err_t *err);
};


const loyalty_provider_t *loyalty_provider_find(const u_char *name,
    size_t len);
/* comma-separated names, for error messages */
const char *loyalty_provider_names(void);

void loyalty_provider_conf_init(loyalty_provider_conf_t *conf);
int loyalty_provider_add_secret(loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_err_t *err);
void loyalty_provider_conf_free(loyalty_provider_conf_t *conf);


/* shared by providers */

loyalty_event_t *loyalty_provider_event(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const char *src, loyalty_batch_t *out);
int loyalty_provider_body_digest(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_str_t *out);
int loyalty_provider_time(time_t t, const loyalty_alloc_t *a,
    loyalty_str_t *out);
int loyalty_provider_identity(const loyalty_json_t *obj,
    const loyalty_alloc_t *a, loyalty_event_t *ev);
int loyalty_provider_json_event(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_event_t *ev, const char **topic_keys,
    const char **time_keys, time_t fallback_time, int unwrap_data,
    loyalty_err_t *err);


extern const loyalty_provider_t  loyalty_provider_standard;
extern const loyalty_provider_t  loyalty_provider_generic;


#endif /* _LOYALTY_PROVIDER_H_INCLUDED_ */
