/*
 * Copyright (C) loyalty-edge authors
 *
 * Standard Webhooks v1: webhook-id, webhook-timestamp, webhook-signature
 * over "id.timestamp.body", "whsec_" base64 secrets.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_provider.h"


static int loyalty_standard_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_standard_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);


const loyalty_provider_t  loyalty_provider_standard = {
    .name = "standard",
    .key = loyalty_provider_key_whsec,
    .verify = loyalty_standard_verify,
    .normalize = loyalty_standard_normalize
};


static int
loyalty_standard_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    static const char *const  headers[] = {
        "webhook-id", "webhook-timestamp", "webhook-signature"
    };

    return loyalty_provider_standard_verify(conf, req, headers, err);
}


static int
loyalty_standard_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    time_t            ts;
    size_t            i;
    loyalty_str_t     id, stamp;
    loyalty_event_t  *ev;

    static const char  *topic_keys[] = { "type", NULL };
    static const char  *time_keys[] = { "timestamp", NULL };

    if (req->header(req, "webhook-id", &id) != LOYALTY_OK
        || !loyalty_event_id_valid(id.data, id.len))
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "invalid webhook-id");
        return LOYALTY_DECLINED;
    }

    /* verified already: digits only */
    ts = 0;

    if (req->header(req, "webhook-timestamp", &stamp) == LOYALTY_OK) {
        for (i = 0; i < stamp.len && i < 12; i++) {
            ts = ts * 10 + (stamp.data[i] - '0');
        }
    }

    ev = loyalty_provider_event(req, a, "standard", out);
    if (ev == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    ev->id = id;

    return loyalty_provider_json_event(conf, req, a, ev, topic_keys, time_keys,
                                       ts, 1, err);
}
