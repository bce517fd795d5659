/*
 * Copyright (C) loyalty-edge authors
 *
 * stripe: "Stripe-Signature: t=<unix>,v1=<hex>[,v1=...][,v0=...]" over
 * "t.body", keyed with the whole "whsec_..." string as it is (apis.md
 * section 7).  Only a timestamp older than the tolerance is refused, as
 * Stripe's SDKs do.  Events ({"id":"evt_...","type","created","data":
 * {"object":{...}}}) carry the full object: customers, checkout
 * sessions, payment intents, charges, invoices and refunds are mapped;
 * amounts are already integer minor units.
 */


#include <string.h>

#include "loyalty_canon.h"


static int loyalty_stripe_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_stripe_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);
static int loyalty_stripe_ref(const loyalty_json_t *obj, const char *member,
    loyalty_str_t *out);
static int loyalty_stripe_text(const loyalty_json_t *obj, const char *member,
    loyalty_str_t *out);
static void loyalty_stripe_keys(const loyalty_json_t *o,
    loyalty_canon_keys_t *keys, loyalty_str_t *name);
static void loyalty_stripe_order(loyalty_jw_t *w, const loyalty_json_t *o,
    const loyalty_event_t *ev, const loyalty_str_t *name);
static void loyalty_stripe_refund(loyalty_jw_t *w, const loyalty_json_t *o);
static void loyalty_stripe_customer(loyalty_jw_t *w,
    const loyalty_event_t *ev, const loyalty_str_t *name);


/*
 * The header is documented ([C], apis.md section 7.1): fixed, not the
 * loyalty_signature_header setting, which is for senders whose header
 * is UNCONFIRMED.
 */

const loyalty_provider_t  loyalty_provider_stripe = {
    .name = "stripe",
    /* "whsec_..." verbatim: Stripe does not base64-decode it */
    .key = loyalty_provider_key_raw,
    .verify = loyalty_stripe_verify,
    .normalize = loyalty_stripe_normalize
};


/*
 * Stripe sends several of these for one payment (checkout session,
 * payment intent, charge, invoice) and for one refund (refund.created,
 * charge.refunded): each carries the payment_intent id so the worker
 * can tell; subscribing the endpoint to one of each is simplest.
 */

static const loyalty_topic_map_t  loyalty_stripe_topics[] = {
    { "customer.created", "customer.created" },
    { "customer.updated", "customer.updated" },
    { "customer.deleted", "customer.deleted" },
    { "checkout.session.completed", "order.paid" },
    { "checkout.session.async_payment_succeeded", "order.paid" },
    { "payment_intent.succeeded", "order.paid" },
    { "charge.succeeded", "order.paid" },
    { "invoice.paid", "order.paid" },
    { "charge.refunded", "order.refunded" },
    { "refund.created", "order.refunded" },
    { "refund.updated", "order.refunded" },
    { "charge.refund.updated", "order.refunded" },
    { NULL, NULL }
};


static int
loyalty_stripe_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    loyalty_str_t  header;

    (void) conf;

    if (req->header(req, "Stripe-Signature", &header) != LOYALTY_OK) {
        header.len = 0;
        header.data = NULL;
    }

    return loyalty_sig_stripe_verify(
               (loyalty_hmac_key_t *const *) conf->keys, conf->nkeys,
               &header, &req->body, req->now, conf->tolerance, err);
}


static int
loyalty_stripe_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int                    rc;
    loyalty_jw_t           w;
    loyalty_str_t          s, name, kind;
    loyalty_json_t        *body;
    loyalty_event_t       *ev;
    loyalty_canon_keys_t   keys;
    const loyalty_json_t  *o, *related;

    rc = loyalty_json_parse(&req->body, a, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (body->type != LOYALTY_JSON_OBJECT) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        return LOYALTY_DECLINED;
    }

    ev = loyalty_provider_event(req, a, "stripe", out);
    if (ev == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    /* evt_...: the same on every retry of the event */
    if (loyalty_stripe_text(body, "id", &ev->id) != LOYALTY_OK
        || !loyalty_event_id_valid(ev->id.data, ev->id.len))
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "missing or invalid id");
        return LOYALTY_DECLINED;
    }

    if (loyalty_stripe_text(body, "type", &ev->topic) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "missing type");
        return LOYALTY_DECLINED;
    }

    loyalty_canon_set_type(ev, loyalty_stripe_topics);

    rc = loyalty_canon_occurred(ev, a, loyalty_json_get(body, "created"));
    if (rc == LOYALTY_DECLINED) {
        rc = loyalty_canon_occurred_unix(ev, a, (int64_t) req->now);
    }

    if (rc != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    o = loyalty_json_object(loyalty_json_object(body, "data"), "object");

    kind.len = 0;
    (void) loyalty_stripe_text(o, "object", &kind);

    /* an asynchronous payment method: the session is not paid yet */
    if (loyalty_str_eq(&ev->topic, "checkout.session.completed")
        && loyalty_stripe_text(o, "payment_status", &s) == LOYALTY_OK
        && loyalty_str_eq(&s, "unpaid"))
    {
        ev->type.data = (const u_char *) "order.created";
        ev->type.len = sizeof("order.created") - 1;
    }

    /* a refund that failed or was canceled refunds nothing */
    if (loyalty_str_eq(&kind, "refund")
        && loyalty_stripe_text(o, "status", &s) == LOYALTY_OK
        && (loyalty_str_eq(&s, "failed") || loyalty_str_eq(&s, "canceled")))
    {
        ev->type.data = (const u_char *) "unknown";
        ev->type.len = sizeof("unknown") - 1;
    }

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));
    name.len = 0;

    loyalty_stripe_keys(o, &keys, &name);

    if (loyalty_canon_identity(conf, a, ev, &keys) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    loyalty_jw_init(&w, a, 384);
    loyalty_jw_object(&w, NULL);

    if (loyalty_str_eq(&ev->type, "order.paid")
        || loyalty_str_eq(&ev->type, "order.created"))
    {
        loyalty_stripe_order(&w, o, ev, &name);

    } else if (loyalty_str_eq(&ev->type, "order.refunded")
               || loyalty_str_eq(&kind, "refund"))
    {
        loyalty_stripe_refund(&w, o);
        loyalty_stripe_customer(&w, ev, &name);

    } else {
        loyalty_stripe_customer(&w, ev, &name);
    }

    /* the Stripe object the event is about */
    if (o != NULL && loyalty_stripe_text(o, "id", &s) == LOYALTY_OK) {
        loyalty_jw_object(&w, "ref");
        if (kind.len) {
            loyalty_jw_str(&w, "type", &kind);
        }
        loyalty_jw_str(&w, "id", &s);
        loyalty_jw_end(&w);

    } else {
        /* thin (v2) events name the object for the worker to fetch */
        related = loyalty_json_object(body, "related_object");

        if (related != NULL
            && loyalty_stripe_text(related, "id", &s) == LOYALTY_OK)
        {
            loyalty_jw_object(&w, "ref");
            (void) loyalty_canon_text(&w, "type", related, "type");
            loyalty_jw_str(&w, "id", &s);
            loyalty_jw_end(&w);
            loyalty_jw_bool(&w, "needs_fetch", 1);
        }
    }

    (void) loyalty_canon_bool(&w, "livemode", body, "livemode");

    loyalty_jw_end(&w);

    return loyalty_canon_finish(&w, ev, err);
}


/* an id member, or the "id" of the member when Stripe expanded it */

static int
loyalty_stripe_ref(const loyalty_json_t *obj, const char *member,
    loyalty_str_t *out)
{
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (v != NULL && v->type == LOYALTY_JSON_OBJECT) {
        return loyalty_stripe_text(v, "id", out);
    }

    return loyalty_stripe_text(obj, member, out);
}


/* a non-empty string member */

static int
loyalty_stripe_text(const loyalty_json_t *obj, const char *member,
    loyalty_str_t *out)
{
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (v == NULL || v->type != LOYALTY_JSON_STRING || v->text.len == 0) {
        return LOYALTY_DECLINED;
    }

    *out = v->text;

    return LOYALTY_OK;
}


/*
 * The customer an object concerns: a customer is itself (cus_...);
 * sessions, intents, charges and invoices name theirs in "customer" and
 * give contact details in customer_details, customer_email/_phone/_name,
 * billing_details or receipt_email.  Stripe has one "name": it is not
 * split into first and last names.
 */

static void
loyalty_stripe_keys(const loyalty_json_t *o, loyalty_canon_keys_t *keys,
    loyalty_str_t *name)
{
    loyalty_str_t          kind;
    const loyalty_json_t  *details, *billing;

    if (o == NULL) {
        return;
    }

    if (loyalty_stripe_text(o, "object", &kind) == LOYALTY_OK
        && loyalty_str_eq(&kind, "customer"))
    {
        (void) loyalty_stripe_text(o, "id", &keys->ext_id);
        (void) loyalty_stripe_text(o, "email", &keys->email);
        (void) loyalty_stripe_text(o, "phone", &keys->phone);
        (void) loyalty_stripe_text(o, "name", name);
        return;
    }

    (void) loyalty_stripe_ref(o, "customer", &keys->ext_id);

    details = loyalty_json_object(o, "customer_details");
    billing = loyalty_json_object(o, "billing_details");

    if (loyalty_stripe_text(details, "email", &keys->email) != LOYALTY_OK
        && loyalty_stripe_text(o, "customer_email", &keys->email)
           != LOYALTY_OK
        && loyalty_stripe_text(o, "receipt_email", &keys->email)
           != LOYALTY_OK)
    {
        (void) loyalty_stripe_text(billing, "email", &keys->email);
    }

    if (loyalty_stripe_text(details, "phone", &keys->phone) != LOYALTY_OK
        && loyalty_stripe_text(o, "customer_phone", &keys->phone)
           != LOYALTY_OK)
    {
        (void) loyalty_stripe_text(billing, "phone", &keys->phone);
    }

    if (loyalty_stripe_text(details, "name", name) != LOYALTY_OK
        && loyalty_stripe_text(o, "customer_name", name) != LOYALTY_OK)
    {
        (void) loyalty_stripe_text(billing, "name", name);
    }
}


static void
loyalty_stripe_customer(loyalty_jw_t *w, const loyalty_event_t *ev,
    const loyalty_str_t *name)
{
    if (ev->email.len == 0 && ev->phone.len == 0 && ev->ext_id.len == 0
        && name->len == 0)
    {
        return;
    }

    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ev);

    if (name->len) {
        loyalty_jw_str(w, "name", name);
    }

    loyalty_jw_end(w);
}


/*
 * order {id, number, status, total, subtotal, tax, shipping, discount,
 * currency, created_at, customer, payment_intent}: the object's id is the
 * order id; which amount is the total depends on the object.
 */

static void
loyalty_stripe_order(loyalty_jw_t *w, const loyalty_json_t *o,
    const loyalty_event_t *ev, const loyalty_str_t *name)
{
    int                    exp;
    loyalty_str_t          kind, s;
    const loyalty_json_t  *totals;

    kind.len = 0;
    (void) loyalty_stripe_text(o, "object", &kind);

    loyalty_jw_object(w, "order");
    (void) loyalty_canon_text(w, "id", o, "id");

    if (loyalty_str_eq(&kind, "invoice")) {
        (void) loyalty_canon_text(w, "number", o, "number");
    }

    if (loyalty_str_eq(&kind, "checkout.session")) {
        (void) loyalty_canon_text(w, "status", o, "payment_status");
        (void) loyalty_canon_int(w, "total", o, "amount_total");
        (void) loyalty_canon_int(w, "subtotal", o, "amount_subtotal");

        totals = loyalty_json_object(o, "total_details");
        (void) loyalty_canon_int(w, "tax", totals, "amount_tax");
        (void) loyalty_canon_int(w, "shipping", totals, "amount_shipping");
        (void) loyalty_canon_int(w, "discount", totals, "amount_discount");

    } else if (loyalty_str_eq(&kind, "payment_intent")) {
        (void) loyalty_canon_text(w, "status", o, "status");

        if (!loyalty_canon_int(w, "total", o, "amount_received")) {
            (void) loyalty_canon_int(w, "total", o, "amount");
        }

    } else if (loyalty_str_eq(&kind, "charge")) {
        (void) loyalty_canon_text(w, "status", o, "status");
        (void) loyalty_canon_int(w, "total", o, "amount");
        (void) loyalty_canon_bool(w, "captured", o, "captured");

    } else if (loyalty_str_eq(&kind, "invoice")) {
        (void) loyalty_canon_text(w, "status", o, "status");
        (void) loyalty_canon_int(w, "total", o, "amount_paid");
        (void) loyalty_canon_int(w, "subtotal", o, "subtotal");
        (void) loyalty_canon_int(w, "tax", o, "tax");
    }

    (void) loyalty_canon_currency(w, "currency", o, "currency", &exp);
    (void) loyalty_canon_time(w, "created_at", o, "created");

    if (loyalty_str_eq(&kind, "checkout.session")) {
        (void) loyalty_canon_text(w, "client_reference_id", o,
                                  "client_reference_id");
    }

    if (loyalty_str_eq(&kind, "payment_intent")) {
        (void) loyalty_canon_text(w, "payment_intent", o, "id");

    } else if (loyalty_stripe_ref(o, "payment_intent", &s) == LOYALTY_OK) {
        loyalty_jw_str(w, "payment_intent", &s);
    }

    loyalty_stripe_customer(w, ev, name);

    loyalty_jw_end(w);
}


/*
 * refund {id, order_id, amount, currency, status, reason, payment_intent}
 * from a refund (re_...).  charge.refunded gives the charge instead:
 * its amount_refunded is the total refunded so far, not this refund's
 * amount, so it goes into "refunded_total" (with "full" when the charge
 * is refunded entirely) and "amount" is left out.
 */

static void
loyalty_stripe_refund(loyalty_jw_t *w, const loyalty_json_t *o)
{
    int            exp;
    loyalty_str_t  kind, s;

    kind.len = 0;
    (void) loyalty_stripe_text(o, "object", &kind);

    loyalty_jw_object(w, "refund");

    if (loyalty_str_eq(&kind, "charge")) {
        (void) loyalty_canon_text(w, "order_id", o, "id");
        (void) loyalty_canon_int(w, "refunded_total", o, "amount_refunded");
        (void) loyalty_canon_bool(w, "full", o, "refunded");

    } else {
        (void) loyalty_canon_text(w, "id", o, "id");

        if (loyalty_stripe_ref(o, "charge", &s) == LOYALTY_OK) {
            loyalty_jw_str(w, "order_id", &s);
        }

        (void) loyalty_canon_int(w, "amount", o, "amount");
        (void) loyalty_canon_text(w, "status", o, "status");
        (void) loyalty_canon_text(w, "reason", o, "reason");
    }

    (void) loyalty_canon_currency(w, "currency", o, "currency", &exp);

    if (loyalty_stripe_ref(o, "payment_intent", &s) == LOYALTY_OK) {
        loyalty_jw_str(w, "payment_intent", &s);
    }

    loyalty_jw_end(w);
}
