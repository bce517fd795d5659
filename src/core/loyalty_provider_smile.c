/*
 * Copyright (C) loyalty-edge authors
 *
 * Smile.io (apis.md section 4): an HMAC-SHA256 of the raw body keyed
 * with the app secret.  The header name and encoding are UNCONFIRMED:
 * the defaults are the documented third-party reading, X-Smile-Hmac-Sha256
 * in base64 ("like Shopify"), and loyalty_signature_header and
 * loyalty_signature_encoding override them.  Every secret is tried.
 *
 * Body: {"account_id","topic","data":{"customer":{...}}}.  Topics: ping
 * (acknowledged, nothing queued) and customer/updated, which also fires
 * for new customers and carries the points balance and the VIP tier.
 * No delivery id is documented: the event id is the loyalty_id_header
 * value when one is configured, else the SHA-256 of the body.
 */


#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_canon.h"


static int loyalty_smile_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_smile_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);
static void loyalty_smile_customer(loyalty_jw_t *w,
    const loyalty_event_t *ev, const loyalty_json_t *c);
static int loyalty_smile_birthday(const loyalty_json_t *c, char *buf);


const loyalty_provider_t  loyalty_provider_smile = {
    .name = "smile",
    .signature_header = "X-Smile-Hmac-Sha256",
    .encoding = LOYALTY_ENC_BASE64,
    /* the app secret's bytes as configured */
    .key = loyalty_provider_key_raw,
    .verify = loyalty_smile_verify,
    .normalize = loyalty_smile_normalize
};


static const loyalty_topic_map_t  loyalty_smile_topics[] = {
    { "customer/updated", "customer.updated" },
    { NULL, NULL }
};


static int
loyalty_smile_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    /* header and encoding are UNCONFIRMED: the location's settings */
    return loyalty_provider_body_verify(conf, req, conf->signature_header,
                                        conf->encoding, err);
}


/*
 * "YYYY-MM-DD" into buf (11 bytes) when date_of_birth is a date with a
 * known year: Smile stores year 1004 for "year not given", which is no
 * birthday anyone has, so then nothing is written.
 */

static int
loyalty_smile_birthday(const loyalty_json_t *c, char *buf)
{
    size_t                 i;
    const u_char          *p;
    const loyalty_json_t  *v;

    v = loyalty_json_get(c, "date_of_birth");

    if (v == NULL || v->type != LOYALTY_JSON_STRING || v->text.len < 10) {
        return 0;
    }

    p = v->text.data;

    for (i = 0; i < 10; i++) {
        if (i == 4 || i == 7) {
            if (p[i] != '-') {
                return 0;
            }

        } else if (p[i] < '0' || p[i] > '9') {
            return 0;
        }
    }

    /* "1990-04-12" or "1990-04-12T00:00:00..." only */
    if (v->text.len > 10 && p[10] != 'T') {
        return 0;
    }

    if (memcmp(p, "1004", 4) == 0 || memcmp(p, "0000", 4) == 0
        || memcmp(p + 5, "00", 2) == 0 || memcmp(p + 5, "12", 2) > 0
        || memcmp(p + 8, "00", 2) == 0 || memcmp(p + 8, "31", 2) > 0)
    {
        return 0;
    }

    memcpy(buf, p, 10);
    buf[10] = '\0';

    return 1;
}


static void
loyalty_smile_customer(loyalty_jw_t *w, const loyalty_event_t *ev,
    const loyalty_json_t *c)
{
    char                   dob[11];
    const char            *member;
    loyalty_str_t          s;
    const loyalty_json_t  *vip, *tier, *state, *id;

    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ev);

    loyalty_canon_text(w, "first_name", c, "first_name");
    loyalty_canon_text(w, "last_name", c, "last_name");
    loyalty_canon_int(w, "points_balance", c, "points_balance");

    /*
     * vip_status {vip_tier_id, vip_tier {id, name, ...}, expires_at},
     * with the deprecated vip_tier_id of the customer as the fallback.
     */
    vip = loyalty_json_object(c, "vip_status");
    tier = vip ? loyalty_json_object(vip, "vip_tier") : NULL;

    if (loyalty_json_scalar(tier, "id", &s) == LOYALTY_OK) {
        id = tier;
        member = "id";

    } else if (loyalty_json_scalar(vip, "vip_tier_id", &s) == LOYALTY_OK) {
        id = vip;
        member = "vip_tier_id";

    } else {
        id = c;
        member = "vip_tier_id";
    }

    if (loyalty_json_scalar(id, member, &s) == LOYALTY_OK
        || loyalty_json_scalar(tier, "name", &s) == LOYALTY_OK)
    {
        loyalty_jw_object(w, "tier");
        loyalty_canon_id(w, "id", id, member);
        loyalty_canon_text(w, "name", tier, "name");
        loyalty_jw_end(w);
    }

    loyalty_canon_time(w, "tier_expires_at", vip, "expires_at");

    /* state: candidate (not in the program), member, or disabled */
    state = loyalty_json_get(c, "state");

    if (state != NULL && state->type == LOYALTY_JSON_STRING
        && state->text.len)
    {
        loyalty_jw_bool(w, "enrolled",
                        loyalty_str_eq(&state->text, "member"));
        loyalty_jw_str(w, "state", &state->text);
    }

    if (loyalty_smile_birthday(c, dob)) {
        loyalty_jw_cstr(w, "birthday", dob);
    }

    loyalty_canon_text(w, "referral_url", c, "referral_url");
    loyalty_canon_time(w, "updated_at", c, "updated_at");

    loyalty_jw_end(w);
}


static int
loyalty_smile_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int                    rc;
    loyalty_jw_t           w;
    loyalty_str_t          id, topic;
    loyalty_json_t        *body;
    loyalty_event_t       *ev;
    loyalty_canon_keys_t   keys;
    const loyalty_json_t  *data, *c, *v;

    rc = loyalty_json_parse(&req->body, a, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (body->type != LOYALTY_JSON_OBJECT) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        return LOYALTY_DECLINED;
    }

    topic.len = 0;
    topic.data = NULL;

    v = loyalty_json_get(body, "topic");
    if (v != NULL && v->type == LOYALTY_JSON_STRING) {
        topic = v->text;
    }

    /* sent once when the webhook is created; it must get a 2xx */
    if (loyalty_str_eq(&topic, "ping")) {
        out->events = NULL;
        out->nevents = 0;
        return LOYALTY_OK;
    }

    rc = loyalty_provider_delivery_id(conf, req, a, &id, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    ev = loyalty_provider_event(req, a, "smile", out);
    if (ev == NULL) {
        goto nomem;
    }

    ev->id = id;
    ev->topic = topic;
    loyalty_canon_set_type(ev, loyalty_smile_topics);

    data = loyalty_json_object(body, "data");
    c = data ? loyalty_json_object(data, "customer") : NULL;

    /* Smile sends no event time: the customer's updated_at is the change */
    rc = loyalty_canon_occurred(ev, a, c ? loyalty_json_get(c, "updated_at")
                                         : NULL);

    if (rc == LOYALTY_DECLINED) {
        rc = loyalty_provider_time(req->now, a, &ev->occurred);
    }

    if (rc != LOYALTY_OK) {
        goto nomem;
    }

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));

    if (c != NULL) {
        (void) loyalty_json_scalar(c, "email", &keys.email);
        (void) loyalty_json_scalar(c, "id", &keys.ext_id);
    }

    if (loyalty_canon_identity(conf, a, ev, &keys) != LOYALTY_OK) {
        goto nomem;
    }

    loyalty_jw_init(&w, a, 256 + req->body.len);
    loyalty_jw_object(&w, NULL);

    if (c != NULL) {
        loyalty_smile_customer(&w, ev, c);
    }

    /* the merchant's Smile account, to tell programs apart */
    loyalty_canon_id(&w, "account_id", body, "account_id");

    loyalty_jw_end(&w);

    return loyalty_canon_finish(&w, ev, err);

nomem:

    loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
    return LOYALTY_ERROR;
}
