/*
 * Copyright (C) loyalty-edge authors
 *
 * Generic HMAC senders: HMAC-SHA256 or HMAC-SHA1 of the raw body, hex or
 * base64, in a configurable header; the event id from a configurable
 * header or, failing that, the body's SHA-256.
 */


#include <string.h>

#include "loyalty_provider.h"


static int loyalty_generic_key(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_hmac_key_t **key,
    loyalty_err_t *err);
static int loyalty_generic_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_generic_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);


const loyalty_provider_t  loyalty_provider_generic = {
    .name = "generic",
    .signature_header = "X-Signature",
    .encoding = LOYALTY_ENC_HEX,
    .key = loyalty_generic_key,
    .verify = loyalty_generic_verify,
    .normalize = loyalty_generic_normalize
};


static int
loyalty_generic_key(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_hmac_key_t **key,
    loyalty_err_t *err)
{
    *key = loyalty_hmac_key_create(conf->md, secret->data, secret->len,
                                   err);

    return (*key != NULL) ? LOYALTY_OK : LOYALTY_ERROR;
}


static int
loyalty_generic_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    return loyalty_provider_body_verify(conf, req, conf->signature_header,
                                        conf->encoding, err);
}


static int
loyalty_generic_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int               rc;
    loyalty_event_t  *ev;

    static const char  *topic_keys[] = { "type", "topic", "event", NULL };
    static const char  *time_keys[] = {
        "timestamp", "occurred_at", "created_at", NULL
    };

    ev = loyalty_provider_event(req, a, "generic", out);
    if (ev == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    rc = loyalty_provider_delivery_id(conf, req, a, &ev->id, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    return loyalty_provider_json_event(conf, req, a, ev, topic_keys, time_keys,
                                       req->now, 0, err);
}
