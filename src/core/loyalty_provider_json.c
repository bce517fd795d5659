/*
 * Copyright (C) loyalty-edge authors
 *
 * Normalisation shared by senders whose payload is a JSON object that
 * already follows, or wraps, the canonical shape (standard, generic).
 */


#include <string.h>

#include "loyalty_provider.h"


static int loyalty_provider_json_time(json_object *obj, const char *key,
    const loyalty_alloc_t *a, loyalty_str_t *out);


int
loyalty_provider_json_event(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_event_t *ev, const char **topic_keys,
    const char **time_keys, time_t fallback_time, int unwrap_data,
    loyalty_err_t *err)
{
    int             rc;
    json_object    *body, *data;
    const char    **k;
    loyalty_str_t   topic;

    rc = loyalty_json_parse(&req->body, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    rc = LOYALTY_ERROR;

    if (!json_object_is_type(body, json_type_object)) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        rc = LOYALTY_DECLINED;
        goto done;
    }

    topic.len = 0;

    for (k = topic_keys; *k != NULL; k++) {
        if (loyalty_json_scalar(body, *k, &topic) == LOYALTY_OK) {
            break;
        }
    }

    if (topic.len) {
        ev->topic.data = loyalty_alloc_copy(a, topic.data, topic.len);
        if (ev->topic.data == NULL) {
            goto done;
        }
        ev->topic.len = topic.len;
    }

    ev->type.data = (const u_char *) loyalty_canonical_type(&ev->topic);
    ev->type.len = strlen((const char *) ev->type.data);

    ev->occurred.len = 0;

    for (k = time_keys; *k != NULL; k++) {
        rc = loyalty_provider_json_time(body, *k, a, &ev->occurred);

        if (rc == LOYALTY_OK) {
            break;
        }

        if (rc == LOYALTY_ERROR) {
            goto done;
        }
    }

    rc = LOYALTY_ERROR;

    if (ev->occurred.len == 0
        && loyalty_provider_time(fallback_time, a, &ev->occurred)
           != LOYALTY_OK)
    {
        goto done;
    }

    data = unwrap_data ? loyalty_json_object(body, "data") : NULL;
    if (data == NULL) {
        data = body;
    }

    if (loyalty_json_dump(data, a, &ev->data) != LOYALTY_OK
        || loyalty_provider_identity(data, a, ev) != LOYALTY_OK)
    {
        goto done;
    }

    rc = LOYALTY_OK;

done:

    if (rc == LOYALTY_ERROR) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
    }

    json_object_put(body);

    return rc;
}


/* an RFC 3339 time as the sender wrote it, or a unix time in seconds */

static int
loyalty_provider_json_time(json_object *obj, const char *key,
    const loyalty_alloc_t *a, loyalty_str_t *out)
{
    size_t         i;
    time_t         t;
    json_object   *v;
    const u_char  *p;

    if (!json_object_object_get_ex(obj, key, &v)) {
        return LOYALTY_DECLINED;
    }

    if (json_object_is_type(v, json_type_int)) {
        t = (time_t) json_object_get_int64(v);
        if (t <= 0 || t > 32503680000) {
            return LOYALTY_DECLINED;
        }
        return loyalty_provider_time(t, a, out);
    }

    if (!json_object_is_type(v, json_type_string)) {
        return LOYALTY_DECLINED;
    }

    p = (const u_char *) json_object_get_string(v);
    i = json_object_get_string_len(v);

    /* YYYY-MM-DDTHH:MM:SS at least; the rest is the sender's */
    if (i < 19 || i > 40 || p[4] != '-' || p[7] != '-'
        || (p[10] != 'T' && p[10] != 't' && p[10] != ' ')
        || p[13] != ':' || p[16] != ':')
    {
        return LOYALTY_DECLINED;
    }

    for (i = 0; i < 19; i++) {
        if (i == 4 || i == 7 || i == 10 || i == 13 || i == 16) {
            continue;
        }
        if (p[i] < '0' || p[i] > '9') {
            return LOYALTY_DECLINED;
        }
    }

    i = json_object_get_string_len(v);

    p = loyalty_alloc_copy(a, p, i);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    out->data = p;
    out->len = i;

    return LOYALTY_OK;
}
