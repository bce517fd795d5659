/*
 * Copyright (C) loyalty-edge authors
 *
 * Normalisation shared by senders whose payload is a JSON object that
 * already follows, or wraps, the canonical shape (standard, generic).
 */


#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_time.h"


static int loyalty_provider_json_time(const loyalty_json_t *obj,
    const char *key,
    const loyalty_alloc_t *a, loyalty_str_t *out);


int
loyalty_provider_json_event(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_event_t *ev, const char **topic_keys,
    const char **time_keys, time_t fallback_time, int unwrap_data,
    loyalty_err_t *err)
{
    int               rc;
    const char      **k;
    loyalty_str_t     topic;
    loyalty_json_t   *body, *data;

    rc = loyalty_json_parse(&req->body, a, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (body->type != LOYALTY_JSON_OBJECT) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        return LOYALTY_DECLINED;
    }

    /* the tree lives in a: its strings need no copy */
    topic.len = 0;

    for (k = topic_keys; *k != NULL; k++) {
        if (loyalty_json_scalar(body, *k, &topic) == LOYALTY_OK) {
            break;
        }
    }

    ev->topic = topic;
    ev->type.data = (const u_char *) loyalty_canonical_type(&ev->topic);
    ev->type.len = strlen((const char *) ev->type.data);

    ev->occurred.len = 0;
    rc = LOYALTY_DECLINED;

    for (k = time_keys; *k != NULL && rc == LOYALTY_DECLINED; k++) {
        rc = loyalty_provider_json_time(body, *k, a, &ev->occurred);
    }

    if (rc == LOYALTY_DECLINED) {
        rc = loyalty_provider_time(fallback_time, a, &ev->occurred);
    }

    data = unwrap_data ? loyalty_json_object(body, "data") : NULL;
    if (data == NULL) {
        data = body;
    }

    if (rc != LOYALTY_OK
        || loyalty_json_dump(data, a, &ev->data) != LOYALTY_OK
        || loyalty_provider_identity(conf, data, a, ev) != LOYALTY_OK)
    {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}


/*
 * An RFC 3339 time with an offset, to UTC, or a unix time in seconds;
 * LOYALTY_DECLINED for anything else (no offset: never guessed).
 */

static int
loyalty_provider_json_time(const loyalty_json_t *obj, const char *key,
    const loyalty_alloc_t *a, loyalty_str_t *out)
{
    char                   buf[LOYALTY_TIME_MAX];
    size_t                 len;
    int64_t                t;
    const u_char          *p;
    const loyalty_json_t  *v;

    v = loyalty_json_get(obj, key);
    if (v == NULL) {
        return LOYALTY_DECLINED;
    }

    if (v->type == LOYALTY_JSON_NUMBER) {
        if (loyalty_json_int64(v, &t) != LOYALTY_OK
            || t <= 0 || t > 32503680000)
        {
            return LOYALTY_DECLINED;
        }
        return loyalty_provider_time((time_t) t, a, out);
    }

    if (v->type != LOYALTY_JSON_STRING) {
        return LOYALTY_DECLINED;
    }

    len = loyalty_time_utc(&v->text, buf);
    if (len == 0) {
        return LOYALTY_DECLINED;
    }

    p = loyalty_alloc_copy(a, buf, len);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    out->data = p;
    out->len = len;

    return LOYALTY_OK;
}
