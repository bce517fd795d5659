/*
 * Copyright (C) loyalty-edge authors
 */


#include <stdio.h>
#include <string.h>
#include <inttypes.h>

#include "loyalty_envelope.h"


static const char  *loyalty_canonical_types[] = {
    "customer.created", "customer.updated", "customer.deleted",
    "order.created", "order.paid", "order.refunded", "order.cancelled",
    "points.earned", "points.redeemed", "points.adjusted",
    "tier.changed",
    "referral.created", "referral.completed",
    "reward.issued", "reward.redeemed",
    "consent.changed",
    "receipt.created",
    NULL
};


#define loyalty_envelope_put(name, field)                                   \
    if (ev->field.len) {                                                    \
        out[n].data = (const u_char *) name;                                \
        out[n++].len = sizeof(name) - 1;                                    \
        out[n++] = ev->field;                                               \
    }


size_t
loyalty_envelope_encode(loyalty_event_t *ev, loyalty_str_t *out)
{
    int     len;
    size_t  n;

    n = 0;

    out[n].data = (const u_char *) "v";
    out[n++].len = 1;
    out[n].data = (const u_char *) LOYALTY_ENVELOPE_VERSION;
    out[n++].len = sizeof(LOYALTY_ENVELOPE_VERSION) - 1;

    loyalty_envelope_put("id", id);
    loyalty_envelope_put("src", src);
    loyalty_envelope_put("store", store);
    loyalty_envelope_put("type", type);
    loyalty_envelope_put("topic", topic);
    loyalty_envelope_put("occurred", occurred);

    len = snprintf(ev->received_text, sizeof(ev->received_text),
                   "%" PRId64, ev->received);
    out[n].data = (const u_char *) "received";
    out[n++].len = sizeof("received") - 1;
    out[n].data = (const u_char *) ev->received_text;
    out[n++].len = (size_t) len;

    loyalty_envelope_put("corr", corr);
    loyalty_envelope_put("email", email);
    loyalty_envelope_put("ext_id", ext_id);
    loyalty_envelope_put("store_cid", store_cid);
    loyalty_envelope_put("phone", phone);
    loyalty_envelope_put("data", data);
    loyalty_envelope_put("raw", raw);

    return n;
}


int
loyalty_envelope_decode(const loyalty_str_t *fv, size_t n,
    loyalty_event_t *ev, loyalty_err_t *err)
{
    size_t                i, k;
    const loyalty_str_t  *f, *v;
    loyalty_str_t         version;

    memset(ev, 0, sizeof(loyalty_event_t));
    version.len = 0;

    if (n % 2) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "odd number of fields");
        return LOYALTY_DECLINED;
    }

    for (i = 0; i < n; i += 2) {
        f = &fv[i];
        v = &fv[i + 1];

        if (loyalty_str_eq(f, "v")) {
            version = *v;
        } else if (loyalty_str_eq(f, "id")) {
            ev->id = *v;
        } else if (loyalty_str_eq(f, "src")) {
            ev->src = *v;
        } else if (loyalty_str_eq(f, "store")) {
            ev->store = *v;
        } else if (loyalty_str_eq(f, "type")) {
            ev->type = *v;
        } else if (loyalty_str_eq(f, "topic")) {
            ev->topic = *v;
        } else if (loyalty_str_eq(f, "occurred")) {
            ev->occurred = *v;
        } else if (loyalty_str_eq(f, "received")) {
            ev->received = 0;
            if (v->len == 0 || v->len > 19) {
                goto bad_received;
            }
            for (k = 0; k < v->len; k++) {
                if (v->data[k] < '0' || v->data[k] > '9') {
                    goto bad_received;
                }
                if (ev->received > (INT64_MAX - (v->data[k] - '0')) / 10) {
                    goto bad_received;
                }
                ev->received = ev->received * 10 + (v->data[k] - '0');
            }
        } else if (loyalty_str_eq(f, "corr")) {
            ev->corr = *v;
        } else if (loyalty_str_eq(f, "email")) {
            ev->email = *v;
        } else if (loyalty_str_eq(f, "ext_id")) {
            ev->ext_id = *v;
        } else if (loyalty_str_eq(f, "store_cid")) {
            ev->store_cid = *v;
        } else if (loyalty_str_eq(f, "phone")) {
            ev->phone = *v;
        } else if (loyalty_str_eq(f, "data")) {
            ev->data = *v;
        } else if (loyalty_str_eq(f, "raw")) {
            ev->raw = *v;
        }
        /* unknown fields are ignored: v1 readers accept v1 additions */
    }

    if (!loyalty_str_eq(&version, LOYALTY_ENVELOPE_VERSION)) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "unsupported envelope version \"%.*s\"",
                        (int) (version.len > 16 ? 16 : version.len),
                        version.len ? (const char *) version.data : "");
        return LOYALTY_DECLINED;
    }

    if (ev->id.len == 0 || ev->src.len == 0 || ev->store.len == 0
        || ev->type.len == 0 || ev->data.len == 0)
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "envelope lacks id, src, store, type or data");
        return LOYALTY_DECLINED;
    }

    return LOYALTY_OK;

bad_received:

    loyalty_err_set(err, LOYALTY_ERR_INPUT, "malformed received time");
    return LOYALTY_DECLINED;
}


const char *
loyalty_canonical_type(const loyalty_str_t *topic)
{
    const char  **t;

    for (t = loyalty_canonical_types; *t != NULL; t++) {
        if (loyalty_str_eq(topic, *t)) {
            return *t;
        }
    }

    return "unknown";
}


int
loyalty_store_valid(const u_char *p, size_t len)
{
    size_t  i;
    u_char  ch;

    if (len == 0 || len > LOYALTY_STORE_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        ch = p[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_'
            || ch == '-')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


/* ids become part of a Redis key: printable ASCII, no space, bounded */

int
loyalty_event_id_valid(const u_char *p, size_t len)
{
    size_t  i;

    if (len == 0 || len > LOYALTY_EVENT_ID_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (p[i] <= 0x20 || p[i] >= 0x7f) {
            return 0;
        }
    }

    return 1;
}


int
loyalty_corr_valid(const u_char *p, size_t len)
{
    size_t  i;
    u_char  ch;

    if (len == 0 || len > LOYALTY_CORR_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        ch = p[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9') || ch == '.' || ch == '_'
            || ch == '-' || ch == ':' || ch == '/' || ch == '+'
            || ch == '=')
        {
            continue;
        }

        return 0;
    }

    return 1;
}


size_t
loyalty_rfc3339(time_t t, char *buf)
{
    struct tm  tm;

    if (gmtime_r(&t, &tm) == NULL) {
        buf[0] = '\0';
        return 0;
    }

    return strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm);
}
