/*
 * Copyright (C) loyalty-edge authors
 *
 * shopify: "X-Shopify-Hmac-Sha256" is the base64 HMAC-SHA256 of the raw
 * body keyed with the app's client secret (its UTF-8 bytes as
 * configured); no timestamp is signed, so there is no replay window and
 * dedupe carries that job.  Both header sets are read: the webhook's
 * "X-Shopify-*" and the newer Events' "shopify-*" (X- preferred when both
 * are sent).  Payloads are the REST resources of apis.md section 1.5 and
 * the 2025-01 split topics; see /tmp/senders-shopify.md for the table.
 */


#include <string.h>
#include <strings.h>

#include "loyalty_provider.h"
#include "loyalty_canon.h"
#include "loyalty_money.h"


/* what a topic's payload is, and so how it is normalised */
typedef enum {
    LOYALTY_SHOPIFY_OTHER = 0,
    LOYALTY_SHOPIFY_CUSTOMER,
    LOYALTY_SHOPIFY_EMAIL_CONSENT,
    LOYALTY_SHOPIFY_SMS_CONSENT,
    LOYALTY_SHOPIFY_TAGS_ADDED,
    LOYALTY_SHOPIFY_TAGS_REMOVED,
    LOYALTY_SHOPIFY_PURCHASING,
    LOYALTY_SHOPIFY_ORDER,
    LOYALTY_SHOPIFY_ORDER_EDIT,
    LOYALTY_SHOPIFY_REFUND,
    LOYALTY_SHOPIFY_COMPLIANCE,
    LOYALTY_SHOPIFY_SHOP
} loyalty_shopify_kind_e;


typedef struct {
    const char               *topic;
    const char               *type;
    loyalty_shopify_kind_e    kind;
} loyalty_shopify_topic_t;


typedef struct {
    const loyalty_provider_conf_t  *conf;
    const loyalty_request_t        *req;
    const loyalty_alloc_t          *a;
    loyalty_event_t                *ev;
    const loyalty_json_t           *body;
    loyalty_jw_t                    w;
    loyalty_str_t                   shop_domain;
    loyalty_str_t                   api_version;
} loyalty_shopify_ctx_t;


static int loyalty_shopify_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_shopify_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);

static int loyalty_shopify_header(const loyalty_request_t *req,
    const char *x_name, const char *name, loyalty_str_t *value);
static int loyalty_shopify_ids(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_event_t *ev);
static int loyalty_shopify_occurred(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_event_t *ev,
    const loyalty_json_t *body);
static const loyalty_shopify_topic_t *loyalty_shopify_topic(
    const loyalty_str_t *topic);

static int loyalty_shopify_id(const loyalty_json_t *v, loyalty_str_t *out);
static int loyalty_shopify_member_id(const loyalty_json_t *obj,
    const char *member, loyalty_str_t *out);
static int loyalty_shopify_consent(const loyalty_json_t *consent);
static int loyalty_shopify_exponent(const loyalty_json_t *obj,
    const char *member, char code[4]);
static int loyalty_shopify_amount(const loyalty_json_t *v, int exponent,
    int64_t *out);
static const loyalty_json_t *loyalty_shopify_shop_money(
    const loyalty_json_t *obj, const char *member);
static int loyalty_shopify_identity(loyalty_shopify_ctx_t *ctx,
    const loyalty_json_t *obj, const char *email_member,
    const loyalty_json_t *fallback, const loyalty_str_t *cid);
static void loyalty_shopify_keys_object(loyalty_shopify_ctx_t *ctx,
    const char *key);
static void loyalty_shopify_id_array(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *arr);
static void loyalty_shopify_shop(loyalty_shopify_ctx_t *ctx,
    const loyalty_json_t *id_obj, const char *id_member,
    const char *domain_member);

static int loyalty_shopify_customer(loyalty_shopify_ctx_t *ctx);
static int loyalty_shopify_consent_event(loyalty_shopify_ctx_t *ctx,
    int sms);
static int loyalty_shopify_tags(loyalty_shopify_ctx_t *ctx, int added);
static int loyalty_shopify_purchasing(loyalty_shopify_ctx_t *ctx);
static int loyalty_shopify_order(loyalty_shopify_ctx_t *ctx);
static void loyalty_shopify_items(loyalty_jw_t *w, const loyalty_json_t *arr,
    int exponent);
static int loyalty_shopify_order_edit(loyalty_shopify_ctx_t *ctx);
static int loyalty_shopify_refund(loyalty_shopify_ctx_t *ctx);
static int loyalty_shopify_compliance(loyalty_shopify_ctx_t *ctx);
static int loyalty_shopify_other(loyalty_shopify_ctx_t *ctx, int shop);


const loyalty_provider_t  loyalty_provider_shopify = {
    .name = "shopify",
    /* documentation only: header and encoding are confirmed, not set */
    .signature_header = "X-Shopify-Hmac-Sha256",
    .encoding = LOYALTY_ENC_BASE64,
    /* the app secret's bytes as configured (UTF-8), never decoded */
    .key = loyalty_provider_key_raw,
    .verify = loyalty_shopify_verify,
    .normalize = loyalty_shopify_normalize
};


/*
 * Topic -> canonical type.  Shopify has no order.updated/fulfilled type
 * in the canonical list: those keep "unknown" but still get the full
 * normalised order, so flows can use them once the types exist.  The
 * 2025-01 tag and purchasing-summary topics are facts about the
 * customer and so customer.updated, with the change in an extra member.
 */
static const loyalty_shopify_topic_t  loyalty_shopify_topics[] = {
    { "customers/create", "customer.created", LOYALTY_SHOPIFY_CUSTOMER },
    { "customers/update", "customer.updated", LOYALTY_SHOPIFY_CUSTOMER },
    { "customers/delete", "customer.deleted", LOYALTY_SHOPIFY_CUSTOMER },
    { "customers/enable", "customer.updated", LOYALTY_SHOPIFY_CUSTOMER },
    { "customers/disable", "customer.updated", LOYALTY_SHOPIFY_CUSTOMER },
    { "customers/email_marketing_consent_update", "consent.changed",
      LOYALTY_SHOPIFY_EMAIL_CONSENT },
    { "customers/marketing_consent_update", "consent.changed",
      LOYALTY_SHOPIFY_SMS_CONSENT },
    { "customer.tags_added", "customer.updated",
      LOYALTY_SHOPIFY_TAGS_ADDED },
    { "customer.tags_removed", "customer.updated",
      LOYALTY_SHOPIFY_TAGS_REMOVED },
    { "customers/purchasing_summary", "customer.updated",
      LOYALTY_SHOPIFY_PURCHASING },
    { "orders/create", "order.created", LOYALTY_SHOPIFY_ORDER },
    { "orders/paid", "order.paid", LOYALTY_SHOPIFY_ORDER },
    { "orders/cancelled", "order.cancelled", LOYALTY_SHOPIFY_ORDER },
    { "orders/updated", "unknown", LOYALTY_SHOPIFY_ORDER },
    { "orders/fulfilled", "unknown", LOYALTY_SHOPIFY_ORDER },
    { "orders/partially_fulfilled", "unknown", LOYALTY_SHOPIFY_ORDER },
    { "orders/edited", "unknown", LOYALTY_SHOPIFY_ORDER_EDIT },
    { "refunds/create", "order.refunded", LOYALTY_SHOPIFY_REFUND },
    { "customers/data_request", "unknown", LOYALTY_SHOPIFY_COMPLIANCE },
    { "customers/redact", "unknown", LOYALTY_SHOPIFY_COMPLIANCE },
    { "shop/redact", "unknown", LOYALTY_SHOPIFY_COMPLIANCE },
    { "app/uninstalled", "unknown", LOYALTY_SHOPIFY_SHOP },
    { NULL, "unknown", LOYALTY_SHOPIFY_OTHER }
};


/*
 * Header and encoding are confirmed [C] and so fixed: the location's
 * loyalty_signature_header/_encoding are not read.  Every key is tried
 * (Shopify signs with the oldest unrevoked secret during a rotation).
 */

static int
loyalty_shopify_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    loyalty_str_t  sig;

    if (loyalty_shopify_header(req, "X-Shopify-Hmac-Sha256",
                               "shopify-hmac-sha256", &sig)
        != LOYALTY_OK)
    {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        "missing X-Shopify-Hmac-Sha256 header");
        return LOYALTY_DECLINED;
    }

    /* as the SDK (MissingBody): an empty body is never a webhook */
    if (req->body.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "empty body");
        return LOYALTY_DECLINED;
    }

    return loyalty_sig_body_verify(
               (loyalty_hmac_key_t *const *) conf->keys, conf->nkeys,
               LOYALTY_ENC_BASE64, &sig, &req->body, err);
}


/* the X-Shopify-* header, else its Events twin; empty counts as absent */

static int
loyalty_shopify_header(const loyalty_request_t *req, const char *x_name,
    const char *name, loyalty_str_t *value)
{
    if (req->header(req, x_name, value) == LOYALTY_OK && value->len) {
        return LOYALTY_OK;
    }

    if (req->header(req, name, value) == LOYALTY_OK && value->len) {
        return LOYALTY_OK;
    }

    value->len = 0;
    value->data = NULL;

    return LOYALTY_DECLINED;
}


static int
loyalty_shopify_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int                             rc;
    loyalty_str_t                   topic;
    loyalty_json_t                 *body;
    loyalty_event_t                *ev;
    loyalty_shopify_ctx_t           ctx;
    const loyalty_shopify_topic_t  *t;

    if (loyalty_shopify_header(req, "X-Shopify-Topic", "shopify-topic",
                               &topic)
        != LOYALTY_OK
        || !loyalty_event_id_valid(topic.data, topic.len))
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "missing or invalid X-Shopify-Topic");
        return LOYALTY_DECLINED;
    }

    ev = loyalty_provider_event(req, a, "shopify", out);
    if (ev == NULL) {
        goto nomem;
    }

    ev->topic = topic;

    /* ids first: the module logs a verified id even for a bad payload */
    if (loyalty_shopify_ids(req, a, ev) != LOYALTY_OK) {
        goto nomem;
    }

    rc = loyalty_json_parse(&req->body, a, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (body->type != LOYALTY_JSON_OBJECT) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        return LOYALTY_DECLINED;
    }

    t = loyalty_shopify_topic(&topic);

    ev->type.data = (const u_char *) t->type;
    ev->type.len = strlen(t->type);

    if (loyalty_shopify_occurred(req, a, ev, body) != LOYALTY_OK) {
        goto nomem;
    }

    memset(&ctx, 0, sizeof(loyalty_shopify_ctx_t));

    ctx.conf = conf;
    ctx.req = req;
    ctx.a = a;
    ctx.ev = ev;
    ctx.body = body;

    (void) loyalty_shopify_header(req, "X-Shopify-Shop-Domain",
                                  "shopify-shop-domain", &ctx.shop_domain);
    (void) loyalty_shopify_header(req, "X-Shopify-API-Version",
                                  "shopify-api-version", &ctx.api_version);

    loyalty_jw_init(&ctx.w, a, req->body.len / 2 + 256);
    loyalty_jw_object(&ctx.w, NULL);

    switch (t->kind) {

    case LOYALTY_SHOPIFY_CUSTOMER:
        rc = loyalty_shopify_customer(&ctx);
        break;

    case LOYALTY_SHOPIFY_EMAIL_CONSENT:
        rc = loyalty_shopify_consent_event(&ctx, 0);
        break;

    case LOYALTY_SHOPIFY_SMS_CONSENT:
        rc = loyalty_shopify_consent_event(&ctx, 1);
        break;

    case LOYALTY_SHOPIFY_TAGS_ADDED:
        rc = loyalty_shopify_tags(&ctx, 1);
        break;

    case LOYALTY_SHOPIFY_TAGS_REMOVED:
        rc = loyalty_shopify_tags(&ctx, 0);
        break;

    case LOYALTY_SHOPIFY_PURCHASING:
        rc = loyalty_shopify_purchasing(&ctx);
        break;

    case LOYALTY_SHOPIFY_ORDER:
        rc = loyalty_shopify_order(&ctx);
        break;

    case LOYALTY_SHOPIFY_ORDER_EDIT:
        rc = loyalty_shopify_order_edit(&ctx);
        break;

    case LOYALTY_SHOPIFY_REFUND:
        rc = loyalty_shopify_refund(&ctx);
        break;

    case LOYALTY_SHOPIFY_COMPLIANCE:
        rc = loyalty_shopify_compliance(&ctx);
        break;

    case LOYALTY_SHOPIFY_SHOP:
        rc = loyalty_shopify_other(&ctx, 1);
        break;

    default:
        rc = loyalty_shopify_other(&ctx, 0);
        break;
    }

    if (rc != LOYALTY_OK) {
        goto nomem;
    }

    loyalty_jw_end(&ctx.w);

    return loyalty_canon_finish(&ctx.w, ev, err);

nomem:

    loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
    return LOYALTY_ERROR;
}


/*
 * Dedupe keys.  id = X-Shopify-Webhook-Id (unique per delivery and
 * subscription).  Whether a retry keeps it is UNCONFIRMED, so alt_id is a
 * second key that a retry surely repeats:
 *
 *   - "shopify:evt:<X-Shopify-Event-Id>:<topic>".  The event id is the
 *     same for every delivery one merchant action causes, but one action
 *     fires several topics (orders/create, orders/paid...), which are
 *     different events: the topic is part of the key.  Two subscriptions
 *     of one shop to one topic deliver the same event twice, which this
 *     key rightly collapses.
 *   - without an event id: "shopify:body:<sha256(topic NUL body)>".
 *     apis.md suggests (topic, resource id, updated_at), but updated_at
 *     has one-second resolution and two real updates of one order within
 *     a second would then share a key and the later state would be
 *     dropped.  Retries carry the original payload byte for byte, so the
 *     body digest catches every retry and never merges two states.
 *
 * Events (shopify-*) may come without a webhook id: then the second key
 * is the id and alt_id stays empty.
 */

static int
loyalty_shopify_ids(const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_event_t *ev)
{
    size_t         len, plen;
    u_char        *p;
    const char    *prefix;
    loyalty_str_t  webhook_id, event_id, alt, parts[3];

    static const u_char  nul = '\0';

    if (loyalty_shopify_header(req, "X-Shopify-Webhook-Id",
                               "shopify-webhook-id", &webhook_id)
        != LOYALTY_OK
        || !loyalty_event_id_valid(webhook_id.data, webhook_id.len))
    {
        webhook_id.len = 0;
    }

    if (loyalty_shopify_header(req, "X-Shopify-Event-Id",
                               "shopify-event-id", &event_id)
        != LOYALTY_OK
        || !loyalty_event_id_valid(event_id.data, event_id.len))
    {
        event_id.len = 0;
    }

    parts[1].data = &nul;
    parts[1].len = 1;

    if (event_id.len) {
        prefix = "shopify:evt:";
        parts[0] = event_id;
        parts[2] = ev->topic;

    } else {
        prefix = "shopify:body:";
        parts[0] = ev->topic;
        parts[2] = req->body;
    }

    plen = strlen(prefix);
    len = plen + event_id.len + 1 + ev->topic.len;

    if (event_id.len && len <= LOYALTY_EVENT_ID_MAX) {
        /* readable: "shopify:evt:<event id>:<topic>" */
        p = a->alloc(a->ctx, len);
        if (p == NULL) {
            return LOYALTY_ERROR;
        }

        alt.data = p;
        alt.len = len;

        memcpy(p, prefix, plen);
        p += plen;
        memcpy(p, event_id.data, event_id.len);
        p += event_id.len;
        *p++ = ':';
        memcpy(p, ev->topic.data, ev->topic.len);

    } else {
        /* too long for a key, or the body: a digest of the parts */
        if (loyalty_provider_digest(parts, 3, a, &alt) != LOYALTY_OK) {
            return LOYALTY_ERROR;
        }

        p = a->alloc(a->ctx, plen + alt.len);
        if (p == NULL) {
            return LOYALTY_ERROR;
        }

        memcpy(p, prefix, plen);
        memcpy(p + plen, alt.data, alt.len);

        alt.data = p;
        alt.len += plen;
    }

    if (webhook_id.len) {
        ev->id = webhook_id;
        ev->alt_id = alt;

    } else {
        ev->id = alt;
    }

    return LOYALTY_OK;
}


/*
 * X-Shopify-Triggered-At (when the event fired; unsigned, but only the
 * time it claims), else the payload's updated_at, created_at or the new
 * topics' occurredAt, else the time of receipt.  All in UTC.
 */

static int
loyalty_shopify_occurred(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_event_t *ev,
    const loyalty_json_t *body)
{
    int             rc;
    const char    **k;
    loyalty_str_t   at;

    static const char  *keys[] = {
        "updated_at", "created_at", "occurredAt", "occurred_at", NULL
    };

    if (loyalty_shopify_header(req, "X-Shopify-Triggered-At",
                               "shopify-triggered-at", &at)
        == LOYALTY_OK)
    {
        rc = loyalty_canon_occurred_text(ev, a, &at);
        if (rc != LOYALTY_DECLINED) {
            return rc;
        }
    }

    for (k = keys; *k != NULL; k++) {
        /* unix numbers are no Shopify time: only texts */
        if (loyalty_json_get(body, *k) == NULL
            || loyalty_json_get(body, *k)->type != LOYALTY_JSON_STRING)
        {
            continue;
        }

        rc = loyalty_canon_occurred(ev, a, loyalty_json_get(body, *k));
        if (rc != LOYALTY_DECLINED) {
            return rc;
        }
    }

    rc = loyalty_canon_occurred_unix(ev, a, (int64_t) req->now);

    return (rc == LOYALTY_OK) ? LOYALTY_OK : LOYALTY_ERROR;
}


static const loyalty_shopify_topic_t *
loyalty_shopify_topic(const loyalty_str_t *topic)
{
    const loyalty_shopify_topic_t  *t;

    for (t = loyalty_shopify_topics; t->topic != NULL; t++) {
        if (strlen(t->topic) == topic->len
            && memcmp(t->topic, topic->data, topic->len) == 0)
        {
            return t;
        }
    }

    return t;
}


/*
 * An id as a string: a 64-bit number keeps its text, a string is kept,
 * and a GraphQL GID ("gid://shopify/Customer/706405506930370084") gives
 * its last segment, the REST id, so all topics agree on store_cid.
 */

static int
loyalty_shopify_id(const loyalty_json_t *v, loyalty_str_t *out)
{
    size_t         i;
    loyalty_str_t  s;

    static const char  gid[] = "gid://shopify/";

    if (loyalty_canon_scalar(v, &s) != LOYALTY_OK) {
        return LOYALTY_DECLINED;
    }

    if (v->type == LOYALTY_JSON_NUMBER) {
        for (i = 0; i < s.len; i++) {
            if (s.data[i] < '0' || s.data[i] > '9') {
                return LOYALTY_DECLINED;
            }
        }

    } else if (s.len > sizeof(gid) - 1
               && memcmp(s.data, gid, sizeof(gid) - 1) == 0)
    {
        /* drop a query ("?...") and keep the last path segment */
        for (i = sizeof(gid) - 1; i < s.len && s.data[i] != '?'; i++) {
            /* void */
        }

        s.len = i;

        for (i = s.len; i > 0 && s.data[i - 1] != '/'; i--) {
            /* void */
        }

        s.data += i;
        s.len -= i;
    }

    if (!loyalty_event_id_valid(s.data, s.len)) {
        return LOYALTY_DECLINED;
    }

    *out = s;

    return LOYALTY_OK;
}


static int
loyalty_shopify_member_id(const loyalty_json_t *obj, const char *member,
    loyalty_str_t *out)
{
    out->len = 0;

    if (obj == NULL) {
        return LOYALTY_DECLINED;
    }

    return loyalty_shopify_id(loyalty_json_get(obj, member), out);
}


/*
 * A marketing consent object's state: 1 subscribed, 0 any state that is
 * no consent (pending is not given yet), -1 absent or unknown (left out).
 * Lower case in REST payloads, upper case in GraphQL ones.
 */

static int
loyalty_shopify_consent(const loyalty_json_t *consent)
{
    size_t                 i;
    const loyalty_json_t  *v;

    static const char  *no[] = {
        "not_subscribed", "unsubscribed", "pending", "redacted", "invalid",
        NULL
    };

    v = loyalty_json_get(consent, "state");
    if (v == NULL || v->type != LOYALTY_JSON_STRING) {
        return -1;
    }

    if (v->text.len == sizeof("subscribed") - 1
        && strncasecmp((const char *) v->text.data, "subscribed",
                       v->text.len) == 0)
    {
        return 1;
    }

    for (i = 0; no[i] != NULL; i++) {
        if (v->text.len == strlen(no[i])
            && strncasecmp((const char *) v->text.data, no[i],
                           v->text.len) == 0)
        {
            return 0;
        }
    }

    return -1;
}


/* the currency code of a member and its exponent; -1 when invalid */

static int
loyalty_shopify_exponent(const loyalty_json_t *obj, const char *member,
    char code[4])
{
    const loyalty_json_t  *v;

    code[0] = '\0';

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (v == NULL || v->type != LOYALTY_JSON_STRING
        || loyalty_currency_code(&v->text, code) != LOYALTY_OK)
    {
        code[0] = '\0';
        return -1;
    }

    return loyalty_currency_exponent(code);
}


static int
loyalty_shopify_amount(const loyalty_json_t *v, int exponent, int64_t *out)
{
    loyalty_str_t  s;

    if (exponent < 0 || loyalty_canon_scalar(v, &s) != LOYALTY_OK) {
        return LOYALTY_DECLINED;
    }

    return loyalty_decimal_scaled(&s, exponent, out);
}


/* obj.member.shop_money: the shop-currency half of a *_set price */

static const loyalty_json_t *
loyalty_shopify_shop_money(const loyalty_json_t *obj, const char *member)
{
    return loyalty_json_object(loyalty_json_object(obj, member),
                               "shop_money");
}


/*
 * The envelope's identity keys: cid is the store's (Shopify's) customer
 * id, email from email_member and phone of obj; a missing one is taken
 * from fallback first (an order's own email and phone).
 */

static int
loyalty_shopify_identity(loyalty_shopify_ctx_t *ctx,
    const loyalty_json_t *obj, const char *email_member,
    const loyalty_json_t *fallback, const loyalty_str_t *cid)
{
    loyalty_canon_keys_t  keys;

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));

    keys.store_cid = *cid;

    if (fallback != NULL) {
        (void) loyalty_canon_scalar(loyalty_json_get(fallback, "email"),
                                    &keys.email);
        (void) loyalty_canon_scalar(loyalty_json_get(fallback, "phone"),
                                    &keys.phone);
    }

    if (obj != NULL) {
        if (keys.email.len == 0) {
            (void) loyalty_canon_scalar(
                       loyalty_json_get(obj, email_member), &keys.email);
        }

        if (keys.phone.len == 0) {
            (void) loyalty_canon_scalar(loyalty_json_get(obj, "phone"),
                                        &keys.phone);
        }
    }

    return loyalty_canon_identity(ctx->conf, ctx->a, ctx->ev, &keys);
}


/* customer {keys}: the identity object of order.*, tags... */

static void
loyalty_shopify_keys_object(loyalty_shopify_ctx_t *ctx, const char *key)
{
    loyalty_jw_object(&ctx->w, key);
    loyalty_canon_write_keys(&ctx->w, ctx->ev);
    loyalty_jw_end(&ctx->w);
}


static void
loyalty_shopify_id_array(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *arr)
{
    loyalty_str_t          s;
    const loyalty_json_t  *v;

    if (arr == NULL || arr->type != LOYALTY_JSON_ARRAY) {
        return;
    }

    loyalty_jw_array(w, key);

    for (v = arr->child; v != NULL; v = v->next) {
        if (loyalty_shopify_id(v, &s) == LOYALTY_OK) {
            loyalty_jw_str(w, NULL, &s);
        }
    }

    loyalty_jw_end(w);
}


/*
 * "shop": {id, domain, api_version}: which shop sent it (one store may
 * take several shops' webhooks) and the payload's API version, so the
 * worker knows which shape and where to fetch more.  Extra member.
 */

static void
loyalty_shopify_shop(loyalty_shopify_ctx_t *ctx, const loyalty_json_t *id_obj,
    const char *id_member, const char *domain_member)
{
    loyalty_str_t          id, domain;
    const loyalty_json_t  *v;

    if (loyalty_shopify_member_id(id_obj, id_member, &id) != LOYALTY_OK) {
        id.len = 0;
    }

    domain = ctx->shop_domain;

    if (domain.len == 0 && domain_member != NULL) {
        v = loyalty_json_get(ctx->body, domain_member);
        if (v != NULL && v->type == LOYALTY_JSON_STRING) {
            domain = v->text;
        }
    }

    if (id.len == 0 && domain.len == 0 && ctx->api_version.len == 0) {
        return;
    }

    loyalty_jw_object(&ctx->w, "shop");

    if (id.len) {
        loyalty_jw_str(&ctx->w, "id", &id);
    }

    if (domain.len) {
        loyalty_jw_str(&ctx->w, "domain", &domain);
    }

    if (ctx->api_version.len) {
        loyalty_jw_str(&ctx->w, "api_version", &ctx->api_version);
    }

    loyalty_jw_end(&ctx->w);
}


/* customers/create|update|delete|enable|disable: the Customer resource */

static int
loyalty_shopify_customer(loyalty_shopify_ctx_t *ctx)
{
    int                    state;
    loyalty_jw_t          *w;
    loyalty_str_t          cid;
    const loyalty_json_t  *c;

    w = &ctx->w;
    c = ctx->body;

    (void) loyalty_shopify_member_id(c, "id", &cid);

    if (loyalty_shopify_identity(ctx, c, "email", NULL, &cid)
        != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ctx->ev);
    loyalty_canon_text(w, "first_name", c, "first_name");
    loyalty_canon_text(w, "last_name", c, "last_name");

    /* before 2025-01 the consents are part of the customer */
    state = loyalty_shopify_consent(
                loyalty_json_object(c, "email_marketing_consent"));
    if (state >= 0) {
        loyalty_jw_bool(w, "opt_in_email", state);
    }

    state = loyalty_shopify_consent(
                loyalty_json_object(c, "sms_marketing_consent"));
    if (state >= 0) {
        loyalty_jw_bool(w, "opt_in_sms", state);
    }

    loyalty_canon_time(w, "updated_at", c, "updated_at");

    /* extra: enabled|disabled|invited|declined (enable/disable topics) */
    loyalty_canon_text(w, "account_state", c, "state");

    loyalty_jw_end(w);

    loyalty_shopify_shop(ctx, NULL, NULL, NULL);

    return LOYALTY_OK;
}


/*
 * customers/email_marketing_consent_update:
 *   {"customer_id", "email_address", "email_marketing_consent": {...}}
 * customers/marketing_consent_update (SMS):
 *   {"id" or "customer_id", "phone", "sms_marketing_consent": {...}}
 * Each consent object has state, opt_in_level, consent_updated_at.
 */

static int
loyalty_shopify_consent_event(loyalty_shopify_ctx_t *ctx, int sms)
{
    int                    state;
    loyalty_jw_t          *w;
    loyalty_str_t          cid;
    const loyalty_json_t  *b, *consent;

    w = &ctx->w;
    b = ctx->body;

    if (loyalty_shopify_member_id(b, "customer_id", &cid)
        != LOYALTY_OK)
    {
        (void) loyalty_shopify_member_id(b, "id", &cid);
    }

    if (loyalty_shopify_identity(ctx, b,
            loyalty_json_get(b, "email_address") ? "email_address" : "email",
            NULL, &cid)
        != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    consent = loyalty_json_object(b, sms ? "sms_marketing_consent"
                                         : "email_marketing_consent");
    state = loyalty_shopify_consent(consent);

    loyalty_jw_object(w, "consent");
    loyalty_jw_cstr(w, "channel", sms ? "sms" : "email");

    if (state >= 0) {
        loyalty_jw_bool(w, "granted", state);
    }

    loyalty_canon_time(w, "at", consent, "consent_updated_at");

    /* extras: Shopify's own words, for flows that need pending etc. */
    loyalty_canon_text(w, "state", consent, "state");
    loyalty_canon_text(w, "opt_in_level", consent, "opt_in_level");

    loyalty_jw_end(w);

    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ctx->ev);

    if (state >= 0) {
        loyalty_jw_bool(w, sms ? "opt_in_sms" : "opt_in_email", state);
    }

    loyalty_jw_end(w);

    loyalty_shopify_shop(ctx, NULL, NULL, NULL);

    return LOYALTY_OK;
}


/*
 * customer.tags_added / customer.tags_removed (2025-01):
 *   {"customerId": "gid://shopify/Customer/…", "tags": [...],
 *    "occurredAt": "…"}
 * customer.updated with the change in the extra member "tags" {added}
 * or {removed}: tags are how shops drive VIP/segment rules.
 */

static int
loyalty_shopify_tags(loyalty_shopify_ctx_t *ctx, int added)
{
    loyalty_jw_t          *w;
    loyalty_str_t          cid;
    const loyalty_json_t  *b, *tags, *v;

    w = &ctx->w;
    b = ctx->body;

    if (loyalty_shopify_member_id(b, "customerId", &cid)
        != LOYALTY_OK
        && loyalty_shopify_member_id(b, "customer_id", &cid)
           != LOYALTY_OK)
    {
        (void) loyalty_shopify_member_id(b, "id", &cid);
    }

    if (loyalty_shopify_identity(ctx, b, "email", NULL, &cid)
        != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    loyalty_shopify_keys_object(ctx, "customer");

    tags = loyalty_json_get(b, "tags");

    if (tags != NULL && tags->type == LOYALTY_JSON_ARRAY) {
        loyalty_jw_object(w, "tags");
        loyalty_jw_array(w, added ? "added" : "removed");

        for (v = tags->child; v != NULL; v = v->next) {
            if (v->type == LOYALTY_JSON_STRING && v->text.len) {
                loyalty_jw_str(w, NULL, &v->text);
            }
        }

        loyalty_jw_end(w);
        loyalty_jw_end(w);
    }

    loyalty_shopify_shop(ctx, NULL, NULL, NULL);

    return LOYALTY_OK;
}


/*
 * customers/purchasing_summary (2025-01): the spend totals that left
 * the customer payload.  Both spellings are read (camelCase as the new
 * topics use, snake_case as REST):
 *   customerId|customer_id, numberOfOrders|number_of_orders,
 *   amountSpent|amount_spent {amount, currencyCode|currency_code},
 *   lastOrderId|last_order_id.
 * customer.updated with the extra member "purchasing" {orders_count,
 * amount_spent (minor units), currency, last_order_id}.
 */

static int
loyalty_shopify_purchasing(loyalty_shopify_ctx_t *ctx)
{
    int                    exp;
    char                   code[4];
    int64_t                n;
    loyalty_jw_t          *w;
    loyalty_str_t          s, cid;
    const loyalty_json_t  *b, *spent, *v;

    w = &ctx->w;
    b = ctx->body;

    if (loyalty_shopify_member_id(b, "customerId", &cid)
        != LOYALTY_OK)
    {
        (void) loyalty_shopify_member_id(b, "customer_id",
                                         &cid);
    }

    if (loyalty_shopify_identity(ctx, b, "email", NULL, &cid)
        != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    loyalty_shopify_keys_object(ctx, "customer");

    loyalty_jw_object(w, "purchasing");

    if (!loyalty_canon_int(w, "orders_count", b, "numberOfOrders")) {
        loyalty_canon_int(w, "orders_count", b, "number_of_orders");
    }

    spent = loyalty_json_object(b, "amountSpent");
    if (spent == NULL) {
        spent = loyalty_json_object(b, "amount_spent");
    }

    exp = loyalty_shopify_exponent(spent, "currencyCode", code);
    if (exp < 0) {
        exp = loyalty_shopify_exponent(spent, "currency_code", code);
    }

    v = loyalty_json_get(spent, "amount");

    if (exp >= 0 && loyalty_shopify_amount(v, exp, &n) == LOYALTY_OK) {
        loyalty_jw_int(w, "amount_spent", n);
        loyalty_jw_cstr(w, "currency", code);
    }

    if (loyalty_shopify_member_id(b, "lastOrderId", &s) == LOYALTY_OK
        || loyalty_shopify_member_id(b, "last_order_id", &s) == LOYALTY_OK)
    {
        loyalty_jw_str(w, "last_order_id", &s);
    }

    loyalty_jw_end(w);

    loyalty_shopify_shop(ctx, NULL, NULL, NULL);

    return LOYALTY_OK;
}


/*
 * orders/...: the Order resource.  Money is in the shop currency
 * (`currency`; total_price etc. are strings in it), in minor units.
 * status: "cancelled" once cancelled_at is set, else financial_status.
 */

static int
loyalty_shopify_order(loyalty_shopify_ctx_t *ctx)
{
    int                    exp, have;
    char                   code[4];
    int64_t                n, sum;
    loyalty_jw_t          *w;
    loyalty_str_t          cid;
    const loyalty_json_t  *o, *c, *v, *lines;

    w = &ctx->w;
    o = ctx->body;
    c = loyalty_json_object(o, "customer");

    (void) loyalty_shopify_member_id(c, "id", &cid);

    /* the order's own email/phone first: they are what was used */
    if (loyalty_shopify_identity(ctx, c, "email", o, &cid) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    exp = loyalty_shopify_exponent(o, "currency", code);

    loyalty_jw_object(w, "order");

    loyalty_canon_id(w, "id", o, "id");

    if (!loyalty_canon_id(w, "number", o, "order_number")) {
        loyalty_canon_text(w, "number", o, "name");
    }

    v = loyalty_json_get(o, "cancelled_at");

    if (v != NULL && v->type == LOYALTY_JSON_STRING && v->text.len) {
        loyalty_jw_cstr(w, "status", "cancelled");

    } else {
        loyalty_canon_text(w, "status", o, "financial_status");
    }

    loyalty_canon_money(w, "total", o, "total_price", exp);
    loyalty_canon_money(w, "subtotal", o, "subtotal_price", exp);
    loyalty_canon_money(w, "tax", o, "total_tax", exp);

    /* shipping: the order's total, else the sum of its shipping lines */
    v = loyalty_shopify_shop_money(o, "total_shipping_price_set");

    if (!loyalty_canon_money(w, "shipping", v, "amount", exp)) {
        lines = loyalty_json_get(o, "shipping_lines");
        have = 0;
        sum = 0;

        if (lines != NULL && lines->type == LOYALTY_JSON_ARRAY) {
            have = 1;

            for (v = lines->child; v != NULL; v = v->next) {
                if (loyalty_shopify_amount(loyalty_json_get(v, "price"),
                                           exp, &n)
                    != LOYALTY_OK
                    || __builtin_add_overflow(sum, n, &sum))
                {
                    have = 0;
                    break;
                }
            }
        }

        if (have && lines->n) {
            loyalty_jw_int(w, "shipping", sum);
        }
    }

    loyalty_canon_money(w, "discount", o, "total_discounts", exp);

    if (exp >= 0) {
        loyalty_jw_cstr(w, "currency", code);
    }

    loyalty_shopify_items(w, loyalty_json_get(o, "line_items"), exp);

    loyalty_shopify_keys_object(ctx, "customer");

    loyalty_canon_time(w, "created_at", o, "created_at");

    /* extras: loyalty rules skip test orders, award on fulfilment... */
    loyalty_canon_text(w, "fulfillment_status", o, "fulfillment_status");
    loyalty_canon_time(w, "cancelled_at", o, "cancelled_at");

    v = loyalty_json_get(o, "test");
    if (v != NULL && v->type == LOYALTY_JSON_TRUE) {
        loyalty_jw_bool(w, "test", 1);
    }

    loyalty_jw_end(w);

    /* data.customer as in every type that concerns a customer */
    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ctx->ev);
    loyalty_canon_text(w, "first_name", c, "first_name");
    loyalty_canon_text(w, "last_name", c, "last_name");
    loyalty_jw_end(w);

    loyalty_shopify_shop(ctx, NULL, NULL, NULL);

    return LOYALTY_OK;
}


static void
loyalty_shopify_items(loyalty_jw_t *w, const loyalty_json_t *arr,
    int exponent)
{
    const loyalty_json_t  *li, *gift;

    if (arr == NULL || arr->type != LOYALTY_JSON_ARRAY) {
        return;
    }

    loyalty_jw_array(w, "items");

    for (li = arr->child; li != NULL; li = li->next) {
        if (li->type != LOYALTY_JSON_OBJECT) {
            continue;
        }

        loyalty_jw_object(w, NULL);
        loyalty_canon_id(w, "id", li, "id");
        loyalty_canon_text(w, "sku", li, "sku");
        loyalty_canon_int(w, "qty", li, "quantity");
        /* unit price, as Shopify gives it */
        loyalty_canon_money(w, "price", li, "price", exponent);

        gift = loyalty_json_get(li, "gift_card");
        loyalty_jw_cstr(w, "kind",
                        (gift != NULL && gift->type == LOYALTY_JSON_TRUE)
                        ? "gift_card" : "product");

        loyalty_canon_id(w, "product_id", li, "product_id");
        loyalty_canon_id(w, "variant_id", li, "variant_id");
        loyalty_jw_end(w);
    }

    loyalty_jw_end(w);
}


/*
 * orders/edited carries an OrderEdit ({"order_edit": {id, order_id,
 * created_at, line_items: {additions, removals}...}}), not the order:
 * "unknown" with a reference for the worker to fetch the edited order.
 */

static int
loyalty_shopify_order_edit(loyalty_shopify_ctx_t *ctx)
{
    loyalty_jw_t          *w;
    loyalty_str_t          s;
    const loyalty_json_t  *e;

    w = &ctx->w;
    e = loyalty_json_object(ctx->body, "order_edit");

    if (loyalty_shopify_member_id(e, "order_id", &s) == LOYALTY_OK) {
        loyalty_jw_object(w, "ref");
        loyalty_jw_cstr(w, "type", "order");
        loyalty_jw_str(w, "id", &s);
        loyalty_jw_end(w);
        loyalty_jw_bool(w, "needs_fetch", 1);
    }

    if (e != NULL) {
        loyalty_jw_object(w, "order_edit");
        loyalty_canon_id(w, "id", e, "id");
        loyalty_canon_id(w, "order_id", e, "order_id");
        loyalty_canon_time(w, "created_at", e, "created_at");
        loyalty_jw_end(w);
    }

    loyalty_shopify_shop(ctx, NULL, NULL, NULL);

    return LOYALTY_OK;
}


/*
 * refunds/create: amount = the sum of the transactions of kind "refund"
 * and status "success" (what actually went back), exact integers in the
 * transactions' currency; left out when they disagree on the currency or
 * one amount is not a number (never a partial sum).  items from
 * refund_line_items: line_id, sku (of the nested line_item), qty, amount
 * (subtotal, tax apart in "tax").
 */

static int
loyalty_shopify_refund(loyalty_shopify_ctx_t *ctx)
{
    int                    exp, e, ok, any;
    char                   code[4], c2[4];
    int64_t                n, sum;
    loyalty_jw_t          *w;
    const loyalty_json_t  *r, *arr, *t, *v, *li, *money;

    w = &ctx->w;
    r = ctx->body;

    exp = -1;
    code[0] = '\0';
    sum = 0;
    ok = 1;
    any = 0;

    arr = loyalty_json_get(r, "transactions");

    for (t = (arr && arr->type == LOYALTY_JSON_ARRAY) ? arr->child : NULL;
         t != NULL && ok;
         t = t->next)
    {
        v = loyalty_json_get(t, "kind");
        if (v == NULL || v->type != LOYALTY_JSON_STRING
            || !loyalty_str_eq(&v->text, "refund"))
        {
            continue;
        }

        v = loyalty_json_get(t, "status");
        if (v == NULL || v->type != LOYALTY_JSON_STRING
            || !loyalty_str_eq(&v->text, "success"))
        {
            continue;
        }

        e = loyalty_shopify_exponent(t, "currency", c2);

        if (e < 0 || (any && strcmp(c2, code) != 0)) {
            ok = 0;
            break;
        }

        if (!any) {
            memcpy(code, c2, 4);
            exp = e;
            any = 1;
        }

        if (loyalty_shopify_amount(loyalty_json_get(t, "amount"), exp, &n)
            != LOYALTY_OK
            || __builtin_add_overflow(sum, n, &sum))
        {
            ok = 0;
        }
    }

    arr = loyalty_json_get(r, "refund_line_items");

    /* no refund transaction: the line items' own shop currency */
    if (!any && arr != NULL && arr->type == LOYALTY_JSON_ARRAY
        && arr->child != NULL)
    {
        money = loyalty_shopify_shop_money(arr->child, "subtotal_set");
        exp = loyalty_shopify_exponent(money, "currency_code", code);
    }

    if (!ok) {
        exp = -1;
    }

    loyalty_jw_object(w, "refund");
    loyalty_canon_id(w, "id", r, "id");
    loyalty_canon_id(w, "order_id", r, "order_id");

    if (ok && any) {
        loyalty_jw_int(w, "amount", sum);
    }

    if (exp >= 0) {
        loyalty_jw_cstr(w, "currency", code);
    }

    if (arr != NULL && arr->type == LOYALTY_JSON_ARRAY) {
        loyalty_jw_array(w, "items");

        for (li = arr->child; li != NULL; li = li->next) {
            if (li->type != LOYALTY_JSON_OBJECT) {
                continue;
            }

            loyalty_jw_object(w, NULL);
            loyalty_canon_id(w, "line_id", li, "line_item_id");
            loyalty_canon_text(w, "sku",
                               loyalty_json_object(li, "line_item"), "sku");
            loyalty_canon_int(w, "qty", li, "quantity");

            money = loyalty_shopify_shop_money(li, "subtotal_set");
            if (!loyalty_canon_money(w, "amount", money, "amount", exp)) {
                loyalty_canon_money(w, "amount", li, "subtotal", exp);
            }

            money = loyalty_shopify_shop_money(li, "total_tax_set");
            if (!loyalty_canon_money(w, "tax", money, "amount", exp)) {
                loyalty_canon_money(w, "tax", li, "total_tax", exp);
            }

            loyalty_jw_end(w);
        }

        loyalty_jw_end(w);
    }

    loyalty_canon_time(w, "created_at", r, "created_at");
    loyalty_jw_end(w);

    loyalty_shopify_shop(ctx, NULL, NULL, NULL);

    return LOYALTY_OK;
}


/*
 * Compliance topics (answer 200 and act within 30 days): "unknown",
 * queued with what the worker needs to act: the customer's keys, the
 * order ids to report or redact, the data request id and the shop.
 *   customers/data_request: {shop_id, shop_domain, orders_requested,
 *                            customer {id, email, phone}, data_request}
 *   customers/redact:       {shop_id, shop_domain, customer,
 *                            orders_to_redact}
 *   shop/redact:            {shop_id, shop_domain}
 */

static int
loyalty_shopify_compliance(loyalty_shopify_ctx_t *ctx)
{
    loyalty_jw_t          *w;
    loyalty_str_t          cid;
    const loyalty_json_t  *b, *c;

    w = &ctx->w;
    b = ctx->body;
    c = loyalty_json_object(b, "customer");

    if (c != NULL) {
        (void) loyalty_shopify_member_id(c, "id", &cid);

        if (loyalty_shopify_identity(ctx, c, "email", NULL, &cid)
            != LOYALTY_OK)
        {
            return LOYALTY_ERROR;
        }

        loyalty_shopify_keys_object(ctx, "customer");
    }

    /* shop/redact has none of these: no empty object */
    if (loyalty_json_object(b, "data_request") != NULL
        || loyalty_json_get(b, "orders_requested") != NULL
        || loyalty_json_get(b, "orders_to_redact") != NULL)
    {
        loyalty_jw_object(w, "compliance");
        loyalty_canon_id(w, "data_request_id",
                         loyalty_json_object(b, "data_request"), "id");
        loyalty_shopify_id_array(w, "orders_requested",
                                 loyalty_json_get(b, "orders_requested"));
        loyalty_shopify_id_array(w, "orders_to_redact",
                                 loyalty_json_get(b, "orders_to_redact"));
        loyalty_jw_end(w);
    }

    loyalty_shopify_shop(ctx, b, "shop_id", "shop_domain");

    return LOYALTY_OK;
}


/*
 * app/uninstalled (shop != 0): the Shop resource, whose id and
 * myshopify_domain are kept.  Any other topic: "unknown" with the whole
 * payload in "payload" (nothing is lost) and the shop.
 */

static int
loyalty_shopify_other(loyalty_shopify_ctx_t *ctx, int shop)
{
    loyalty_str_t  dump;

    if (shop) {
        loyalty_shopify_shop(ctx, ctx->body, "id", "myshopify_domain");
        return LOYALTY_OK;
    }

    if (loyalty_json_dump(ctx->body, ctx->a, &dump) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    loyalty_jw_raw(&ctx->w, "payload", &dump);

    loyalty_shopify_shop(ctx, NULL, NULL, NULL);

    return LOYALTY_OK;
}
