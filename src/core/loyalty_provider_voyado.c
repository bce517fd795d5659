/*
 * Copyright (C) loyalty-edge authors
 *
 * voyado: Voyado Engage webhooks, delivered by Svix (apis.md section 6):
 * svix-id, svix-timestamp, svix-signature ("v1,<b64>" list) over
 * "id.timestamp.body", keyed with the base64-decoded part of a
 * "whsec_..." secret.  Svix can rename the headers to webhook-*: both
 * sets are accepted, svix-* first.  Envelopes are {"eventType", "id" or
 * "eventId", "isEncrypted", "tenant", "payload"}, with camelCase or
 * PascalCase payload keys ("contactId" / "ContactId"): both are looked
 * up.
 */


#include <string.h>

#include "loyalty_canon.h"
#include "loyalty_money.h"


typedef struct {
    const char   *id;
    const char   *timestamp;
    const char   *signature;
} loyalty_voyado_headers_t;


static int loyalty_voyado_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_voyado_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);
static const loyalty_voyado_headers_t *loyalty_voyado_headers(
    const loyalty_request_t *req);
static const loyalty_json_t *loyalty_voyado_get(const loyalty_json_t *obj,
    const char *camel, const char *pascal);
static const char *loyalty_voyado_name(const loyalty_json_t *obj,
    const char *camel, const char *pascal);
static int loyalty_voyado_occurred(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const loyalty_json_t *body,
    const loyalty_voyado_headers_t *hs, loyalty_event_t *ev);
static void loyalty_voyado_customer(loyalty_jw_t *w,
    const loyalty_event_t *ev, const loyalty_json_t *p, int full);
static void loyalty_voyado_reward(loyalty_jw_t *w, const loyalty_json_t *p,
    int voucher);


const loyalty_provider_t  loyalty_provider_voyado = {
    .name = "voyado",
    .key = loyalty_provider_key_whsec,
    .verify = loyalty_voyado_verify,
    .normalize = loyalty_voyado_normalize
};


static const loyalty_voyado_headers_t  loyalty_voyado_svix = {
    "svix-id", "svix-timestamp", "svix-signature"
};

static const loyalty_voyado_headers_t  loyalty_voyado_webhook = {
    "webhook-id", "webhook-timestamp", "webhook-signature"
};


static const loyalty_topic_map_t  loyalty_voyado_topics[] = {
    { "contact.created", "customer.created" },
    { "contact.updated", "customer.updated" },
    { "contact.deleted", "customer.deleted" },
    { "contact.acceptsEmail.changed", "consent.changed" },
    { "contact.acceptsSms.changed", "consent.changed" },
    { "contact.acceptsPostal.changed", "consent.changed" },
    { "contact.consent.changed", "consent.changed" },
    { "loyalty.addPoints", "points.earned" },
    /* a new balance, no delta, no cause: the flow sets it, not adds */
    { "point.balance.updated", "points.adjusted" },
    { "reward.voucher.created", "reward.issued" },
    /* an offer the contact can redeem, as a voucher is */
    { "promotion.multichannel.assigned", "reward.issued" },
    { NULL, NULL }
};


/* svix-* when the delivery has any of them, else webhook-* */

static const loyalty_voyado_headers_t *
loyalty_voyado_headers(const loyalty_request_t *req)
{
    loyalty_str_t  v;

    if (req->header(req, "svix-id", &v) == LOYALTY_OK
        || req->header(req, "svix-timestamp", &v) == LOYALTY_OK
        || req->header(req, "svix-signature", &v) == LOYALTY_OK)
    {
        return &loyalty_voyado_svix;
    }

    return &loyalty_voyado_webhook;
}


static int
loyalty_voyado_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    const char                      *headers[3];
    const loyalty_voyado_headers_t  *hs;

    hs = loyalty_voyado_headers(req);

    headers[0] = hs->id;
    headers[1] = hs->timestamp;
    headers[2] = hs->signature;

    return loyalty_provider_standard_verify(conf, req, headers, err);
}


static int
loyalty_voyado_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int                              rc, encrypted;
    int64_t                          delta;
    const char                      *channel, *member;
    loyalty_jw_t                     w;
    loyalty_str_t                    s;
    loyalty_json_t                  *body;
    loyalty_event_t                 *ev;
    loyalty_canon_keys_t             keys;
    const loyalty_json_t            *p, *v;
    const loyalty_voyado_headers_t  *hs;

    hs = loyalty_voyado_headers(req);

    rc = loyalty_json_parse(&req->body, a, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (body->type != LOYALTY_JSON_OBJECT) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        return LOYALTY_DECLINED;
    }

    v = loyalty_voyado_get(body, "eventType", "EventType");

    if (v == NULL || v->type != LOYALTY_JSON_STRING || v->text.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "missing eventType");
        return LOYALTY_DECLINED;
    }

    ev = loyalty_provider_event(req, a, "voyado", out);
    if (ev == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    /* the message id is the same on every Svix retry */
    if (req->header(req, hs->id, &ev->id) != LOYALTY_OK
        || !loyalty_event_id_valid(ev->id.data, ev->id.len))
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "invalid %s", hs->id);
        return LOYALTY_DECLINED;
    }

    ev->topic = v->text;
    loyalty_canon_set_type(ev, loyalty_voyado_topics);

    if (loyalty_voyado_occurred(req, a, body, hs, ev) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    v = loyalty_voyado_get(body, "isEncrypted", "IsEncrypted");
    encrypted = (v != NULL && v->type == LOYALTY_JSON_TRUE);

    p = loyalty_voyado_get(body, "payload", "Payload");

    loyalty_jw_init(&w, a, 384);
    loyalty_jw_object(&w, NULL);

    if (encrypted) {

        /*
         * Only the holder of the decryption key can read it: queued
         * untouched, as "unknown" so that no flow acts on an event whose
         * data is not there; the topic says what it is.
         */

        ev->type.data = (const u_char *) "unknown";
        ev->type.len = sizeof("unknown") - 1;

        loyalty_jw_bool(&w, "encrypted", 1);

        if (p != NULL && p->type == LOYALTY_JSON_STRING) {
            loyalty_jw_str(&w, "payload", &p->text);

        } else if (p != NULL) {
            if (loyalty_json_dump(p, a, &s) != LOYALTY_OK) {
                loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
                return LOYALTY_ERROR;
            }

            loyalty_jw_raw(&w, "payload", &s);
        }

        goto done;
    }

    if (p != NULL && p->type != LOYALTY_JSON_OBJECT) {
        p = NULL;
    }

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));

    /* a GUID as Voyado sends it; a number only when whole (no 1.5) */
    v = loyalty_voyado_get(p, "contactId", "ContactId");

    if (loyalty_canon_scalar(v, &keys.ext_id) == LOYALTY_OK
        && v->type == LOYALTY_JSON_NUMBER
        && (memchr(keys.ext_id.data, '.', keys.ext_id.len) != NULL
            || memchr(keys.ext_id.data, 'e', keys.ext_id.len) != NULL
            || memchr(keys.ext_id.data, 'E', keys.ext_id.len) != NULL))
    {
        keys.ext_id.len = 0;
    }
    (void) loyalty_canon_scalar(loyalty_voyado_get(p, "email", "Email"),
                                &keys.email);

    if (loyalty_canon_scalar(loyalty_voyado_get(p, "mobilePhone",
                                                "MobilePhone"),
                             &keys.phone)
        != LOYALTY_OK)
    {
        (void) loyalty_canon_scalar(loyalty_voyado_get(p, "phone", "Phone"),
                                    &keys.phone);
    }

    if (loyalty_canon_identity(conf, a, ev, &keys) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    if (p == NULL) {
        /* nothing to build from: never guessed */

    } else if (loyalty_str_eq(&ev->type, "consent.changed")) {

        if (loyalty_str_eq(&ev->topic, "contact.acceptsEmail.changed")) {
            channel = "email";
            member = loyalty_voyado_name(p, "acceptsEmail", "AcceptsEmail");

        } else if (loyalty_str_eq(&ev->topic, "contact.acceptsSms.changed")) {
            channel = "sms";
            member = loyalty_voyado_name(p, "acceptsSms", "AcceptsSms");

        } else if (loyalty_str_eq(&ev->topic,
                                  "contact.acceptsPostal.changed"))
        {
            channel = "postal";
            member = loyalty_voyado_name(p, "acceptsPostal",
                                         "AcceptsPostal");

        } else {
            /* a consent field of the tenant's own, not a channel */
            channel = NULL;
            member = NULL;
        }

        loyalty_jw_object(&w, "consent");

        if (channel != NULL) {
            loyalty_jw_cstr(&w, "channel", channel);
        }

        (void) loyalty_canon_id(&w, "id", p,
                                loyalty_voyado_name(p, "consentId",
                                                    "ConsentId"));

        if (member == NULL
            || !loyalty_canon_bool(&w, "granted", p, member))
        {
            (void) loyalty_canon_bool(&w, "granted", p,
                                      loyalty_voyado_name(p, "value",
                                                          "Value"));
        }

        loyalty_jw_end(&w);

        loyalty_voyado_customer(&w, ev, p, 0);

    } else if (loyalty_str_eq(&ev->topic, "loyalty.addPoints")) {

        /* "points added" with a negative amount is a deduction */
        v = loyalty_voyado_get(p, "amount", "Amount");
        if (loyalty_canon_scalar(v, &s) == LOYALTY_OK
            && loyalty_decimal_int(&s, &delta) == LOYALTY_OK
            && delta < 0)
        {
            ev->type.data = (const u_char *) "points.adjusted";
            ev->type.len = sizeof("points.adjusted") - 1;
        }

        loyalty_jw_object(&w, "points");
        (void) loyalty_canon_int(&w, "delta", p,
                                 loyalty_voyado_name(p, "amount", "Amount"));

        if (!loyalty_canon_text(&w, "reason", p,
                                loyalty_voyado_name(p, "reason", "Reason")))
        {
            (void) loyalty_canon_text(&w, "reason", p,
                                      loyalty_voyado_name(p, "description",
                                                          "Description"));
        }

        (void) loyalty_canon_id(&w, "source_id", p,
                                loyalty_voyado_name(p, "sourceId",
                                                    "SourceId"));
        (void) loyalty_canon_text(&w, "source", p,
                                  loyalty_voyado_name(p, "source",
                                                      "Source"));
        (void) loyalty_canon_id(&w, "definition_id", p,
                                loyalty_voyado_name(p, "pointDefinitionId",
                                                    "PointDefinitionId"));
        loyalty_jw_end(&w);

        loyalty_voyado_customer(&w, ev, p, 0);

    } else if (loyalty_str_eq(&ev->topic, "point.balance.updated")) {

        loyalty_jw_object(&w, "points");
        (void) loyalty_canon_int(&w, "balance_after", p,
                                 loyalty_voyado_name(p, "balance",
                                                     "Balance"));
        (void) loyalty_canon_time(&w, "expires_at", p,
                                  loyalty_voyado_name(p, "balanceExpires",
                                                      "BalanceExpires"));
        (void) loyalty_canon_id(&w, "account_id", p,
                                loyalty_voyado_name(p, "accountId",
                                                    "AccountId"));
        (void) loyalty_canon_id(&w, "definition_id", p,
                                loyalty_voyado_name(p, "definitionId",
                                                    "DefinitionId"));
        loyalty_jw_end(&w);

        loyalty_jw_object(&w, "customer");
        loyalty_canon_write_keys(&w, ev);
        (void) loyalty_canon_int(&w, "points_balance", p,
                                 loyalty_voyado_name(p, "balance",
                                                     "Balance"));
        loyalty_jw_end(&w);

    } else if (loyalty_str_eq(&ev->type, "reward.issued")) {

        loyalty_voyado_reward(&w, p,
                              loyalty_str_eq(&ev->topic,
                                             "reward.voucher.created"));
        loyalty_voyado_customer(&w, ev, p, 0);

    } else {
        /* contact.* and topics not known yet */
        loyalty_voyado_customer(&w, ev, p,
                                ev->type.len > sizeof("customer.") - 1
                                && memcmp(ev->type.data, "customer.",
                                          sizeof("customer.") - 1) == 0);
    }

done:

    (void) loyalty_canon_text(&w, "tenant", body,
                              loyalty_voyado_name(body, "tenant", "Tenant"));

    if (!loyalty_canon_id(&w, "event_id", body,
                          loyalty_voyado_name(body, "id", "Id")))
    {
        (void) loyalty_canon_id(&w, "event_id", body,
                                loyalty_voyado_name(body, "eventId",
                                                    "EventId"));
    }

    loyalty_jw_end(&w);

    return loyalty_canon_finish(&w, ev, err);
}


/* camelCase first, PascalCase when camelCase is absent or null */

static const loyalty_json_t *
loyalty_voyado_get(const loyalty_json_t *obj, const char *camel,
    const char *pascal)
{
    const loyalty_json_t  *v;

    if (obj == NULL || obj->type != LOYALTY_JSON_OBJECT) {
        return NULL;
    }

    v = loyalty_json_get(obj, camel);

    if (v == NULL || v->type == LOYALTY_JSON_NULL) {
        return loyalty_json_get(obj, pascal);
    }

    return v;
}


/* the member name to hand to the loyalty_canon_*() helpers */

static const char *
loyalty_voyado_name(const loyalty_json_t *obj, const char *camel,
    const char *pascal)
{
    const loyalty_json_t  *v;

    if (obj == NULL || obj->type != LOYALTY_JSON_OBJECT) {
        return camel;
    }

    v = loyalty_json_get(obj, camel);

    if ((v == NULL || v->type == LOYALTY_JSON_NULL)
        && loyalty_json_get(obj, pascal) != NULL)
    {
        return pascal;
    }

    return camel;
}


/*
 * The envelope's "timestamp" if it has one (UNCONFIRMED: the documented
 * envelopes have none), else the signed timestamp of the delivery (that
 * of the first accepted attempt, as retries are duplicates), else now.
 */

static int
loyalty_voyado_occurred(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const loyalty_json_t *body,
    const loyalty_voyado_headers_t *hs, loyalty_event_t *ev)
{
    int            rc;
    size_t         i;
    int64_t        t;
    loyalty_str_t  stamp;

    rc = loyalty_canon_occurred(ev, a,
                                loyalty_voyado_get(body, "timestamp",
                                                   "Timestamp"));
    if (rc != LOYALTY_DECLINED) {
        return rc;
    }

    t = (int64_t) req->now;

    if (req->header(req, hs->timestamp, &stamp) == LOYALTY_OK
        && stamp.len > 0 && stamp.len <= 12)
    {
        t = 0;

        for (i = 0; i < stamp.len; i++) {
            if (stamp.data[i] < '0' || stamp.data[i] > '9') {
                t = (int64_t) req->now;
                break;
            }

            t = t * 10 + (stamp.data[i] - '0');
        }
    }

    rc = loyalty_canon_occurred_unix(ev, a, t);
    if (rc == LOYALTY_DECLINED) {
        rc = loyalty_canon_occurred_unix(ev, a, (int64_t) req->now);
    }

    return (rc == LOYALTY_OK) ? LOYALTY_OK : LOYALTY_ERROR;
}


/*
 * customer {keys}; for contact events also the names and the three
 * channel preferences (contact payload fields are UNCONFIRMED: written
 * only when present under Voyado's contact API names).
 */

static void
loyalty_voyado_customer(loyalty_jw_t *w, const loyalty_event_t *ev,
    const loyalty_json_t *p, int full)
{
    /* a customer without any key cannot be matched to anyone */
    if (ev->email.len == 0 && ev->phone.len == 0 && ev->ext_id.len == 0) {
        return;
    }

    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ev);

    if (full) {
        (void) loyalty_canon_text(w, "first_name", p,
                                  loyalty_voyado_name(p, "firstName",
                                                      "FirstName"));
        (void) loyalty_canon_text(w, "last_name", p,
                                  loyalty_voyado_name(p, "lastName",
                                                      "LastName"));
        (void) loyalty_canon_bool(w, "opt_in_email", p,
                                  loyalty_voyado_name(p, "acceptsEmail",
                                                      "AcceptsEmail"));
        (void) loyalty_canon_bool(w, "opt_in_sms", p,
                                  loyalty_voyado_name(p, "acceptsSms",
                                                      "AcceptsSms"));
    }

    loyalty_jw_end(w);
}


/*
 * reward {id, code, value, currency, valid_from, valid_to, kind}: a
 * voucher's Amount is money in its Currency (minor units; left out when
 * there is no currency to scale it by); a promotion names its
 * promotionId.
 */

static void
loyalty_voyado_reward(loyalty_jw_t *w, const loyalty_json_t *p, int voucher)
{
    int                    exp;
    char                   code[4];
    const loyalty_json_t  *v;

    loyalty_jw_object(w, "reward");
    (void) loyalty_canon_id(w, "id", p, loyalty_voyado_name(p, "id", "Id"));

    if (!loyalty_canon_text(w, "code", p,
                            loyalty_voyado_name(p, "uniqueCode",
                                                "UniqueCode")))
    {
        (void) loyalty_canon_text(w, "code", p,
                                  loyalty_voyado_name(p, "code", "Code"));
    }

    /* the exponent first: value is written before currency */
    exp = -1;
    v = loyalty_voyado_get(p, "currency", "Currency");

    if (v != NULL && v->type == LOYALTY_JSON_STRING
        && loyalty_currency_code(&v->text, code) == LOYALTY_OK)
    {
        exp = loyalty_currency_exponent(code);
    }

    (void) loyalty_canon_money(w, "value", p,
                               loyalty_voyado_name(p, "amount", "Amount"),
                               exp);
    (void) loyalty_canon_currency(w, "currency", p,
                                  loyalty_voyado_name(p, "currency",
                                                      "Currency"),
                                  &exp);

    if (!voucher) {
        (void) loyalty_canon_id(w, "promotion_id", p,
                                loyalty_voyado_name(p, "promotionId",
                                                    "PromotionId"));
    }

    (void) loyalty_canon_time(w, "valid_from", p,
                              loyalty_voyado_name(p, "validFrom",
                                                  "ValidFrom"));
    (void) loyalty_canon_time(w, "valid_to", p,
                              loyalty_voyado_name(p, "validTo", "ValidTo"));
    loyalty_jw_cstr(w, "kind", voucher ? "voucher" : "promotion");
    loyalty_jw_end(w);
}
