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
    loyalty_str_t             *secrets;         /* as configured */
    char                       default_country[3];  /* "" or "GB" */
    loyalty_str_t             *orgs;            /* Salesforce allow-list */
    size_t                     norgs;
} loyalty_provider_conf_t;


typedef struct {
    loyalty_event_t           *events;
    size_t                     nevents;
} loyalty_batch_t;


/* flags */
#define LOYALTY_PROVIDER_NO_SECRET   0x01  /* trust comes from elsewhere */
#define LOYALTY_PROVIDER_ORGS        0x02  /* needs loyalty_salesforce_org */


struct loyalty_provider_s {
    const char   *name;
    unsigned      flags;

    /* defaults of loyalty_signature_header and _encoding, when used */
    const char   *signature_header;
    loyalty_enc_e encoding;

    /* the body of a successful answer (200) instead of the JSON 202 */
    const loyalty_str_t *ack;
    const char   *ack_type;

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
/* the sender, with its defaults for signature header and encoding */
void loyalty_provider_conf_set(loyalty_provider_conf_t *conf,
    const loyalty_provider_t *provider);
int loyalty_provider_add_secret(loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_err_t *err);
void loyalty_provider_conf_free(loyalty_provider_conf_t *conf);
/* a 15 or 18 character Salesforce organization id for the allow-list */
int loyalty_provider_add_org(loyalty_provider_conf_t *conf,
    const loyalty_str_t *org, loyalty_err_t *err);
/* 1 when org (15 or 18 characters) is on the allow-list */
int loyalty_provider_org_allowed(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *org);
/* ISO 3166-1 alpha-2 of national phone numbers */
int loyalty_provider_set_country(loyalty_provider_conf_t *conf,
    const loyalty_str_t *country, loyalty_err_t *err);


/* shared by providers */

/* an HMAC-SHA256 key of the secret's bytes, as configured */
int loyalty_provider_key_raw(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_hmac_key_t **key,
    loyalty_err_t *err);
/* "whsec_" + base64 (Standard Webhooks, Svix): the decoded bytes */
int loyalty_provider_key_whsec(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_hmac_key_t **key,
    loyalty_err_t *err);
/*
 * Standard Webhooks / Svix: "id.timestamp.body" signed in a "v1,<base64>"
 * list, the three headers named by the sender (webhook-*, svix-*)
 */
int loyalty_provider_standard_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const char *const *headers,
    loyalty_err_t *err);
/* an HMAC of the raw body in one header, any configured key */
int loyalty_provider_body_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const char *header, loyalty_enc_e enc,
    loyalty_err_t *err);

loyalty_event_t *loyalty_provider_event(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const char *src, loyalty_batch_t *out);
/* n zeroed events (n >= 1) in out, each with src and received set */
loyalty_event_t *loyalty_provider_events(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const char *src, size_t n,
    loyalty_batch_t *out);
/* the lower-case hex SHA-256 of parts, e.g. to make a dedupe key */
int loyalty_provider_digest(const loyalty_str_t *parts, size_t nparts,
    const loyalty_alloc_t *a, loyalty_str_t *out);
int loyalty_provider_body_digest(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_str_t *out);
/* loyalty_id_header's value, or else the body's SHA-256 */
int loyalty_provider_delivery_id(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_str_t *id, loyalty_err_t *err);
int loyalty_provider_time(time_t t, const loyalty_alloc_t *a,
    loyalty_str_t *out);
int loyalty_provider_identity(const loyalty_provider_conf_t *conf,
    const loyalty_json_t *obj, const loyalty_alloc_t *a, loyalty_event_t *ev);
int loyalty_provider_json_event(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_event_t *ev, const char **topic_keys,
    const char **time_keys, time_t fallback_time, int unwrap_data,
    loyalty_err_t *err);


extern const loyalty_provider_t  loyalty_provider_standard;
extern const loyalty_provider_t  loyalty_provider_generic;
extern const loyalty_provider_t  loyalty_provider_shopify;
extern const loyalty_provider_t  loyalty_provider_bigcommerce;
extern const loyalty_provider_t  loyalty_provider_loyaltylion;
extern const loyalty_provider_t  loyalty_provider_smile;
extern const loyalty_provider_t  loyalty_provider_yotpo;
extern const loyalty_provider_t  loyalty_provider_voyado;
extern const loyalty_provider_t  loyalty_provider_stripe;
extern const loyalty_provider_t  loyalty_provider_salesforce;


#endif /* _LOYALTY_PROVIDER_H_INCLUDED_ */
