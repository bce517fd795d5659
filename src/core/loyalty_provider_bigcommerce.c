/*
 * Copyright (C) loyalty-edge authors
 *
 * bigcommerce: v3 webhooks (apis.md section 2).  Standard Webhooks
 * headers (webhook-id, webhook-timestamp, webhook-signature "v1,<b64>")
 * over "id.timestamp.body", but keyed with the app's RAW client secret:
 * BigCommerce tells receivers to hand base64(client_secret) to a Standard
 * Webhooks library, which decodes it again.  Payloads are thin (scope,
 * data.type, data.id, hash, producer): events carry a reference for the
 * worker to fetch instead of the resource.
 */


#include <string.h>

#include "loyalty_canon.h"


static int loyalty_bigcommerce_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_bigcommerce_normalize(
    const loyalty_provider_conf_t *conf, const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_batch_t *out, loyalty_err_t *err);
static int loyalty_bigcommerce_id(const loyalty_json_t *obj,
    const char *member, loyalty_str_t *out);
static int loyalty_bigcommerce_status(const loyalty_json_t *status,
    const char *member, int64_t *out);
static const char *loyalty_bigcommerce_status_type(int64_t from,
    int64_t to);
static int loyalty_bigcommerce_occurred(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const loyalty_json_t *body,
    loyalty_event_t *ev);


const loyalty_provider_t  loyalty_provider_bigcommerce = {
    .name = "bigcommerce",
    /* the client secret's own bytes: no "whsec_", no base64 */
    .key = loyalty_provider_key_raw,
    .verify = loyalty_bigcommerce_verify,
    .normalize = loyalty_bigcommerce_normalize
};


/*
 * store/order/updated and statusUpdated are resolved in normalize; the
 * rest (archived, message/created, transaction/created, app/uninstalled,
 * payment instruments, carts, products...) are queued as "unknown".
 */

static const loyalty_topic_map_t  loyalty_bigcommerce_topics[] = {
    { "store/customer/created", "customer.created" },
    { "store/customer/updated", "customer.updated" },
    { "store/customer/deleted", "customer.deleted" },
    { "store/customer/address/created", "customer.updated" },
    { "store/customer/address/updated", "customer.updated" },
    { "store/customer/address/deleted", "customer.updated" },
    { "store/order/created", "order.created" },
    { "store/order/refund/created", "order.refunded" },
    { NULL, NULL }
};


static int
loyalty_bigcommerce_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    static const char *const  headers[] = {
        "webhook-id", "webhook-timestamp", "webhook-signature"
    };

    return loyalty_provider_standard_verify(conf, req, headers, err);
}


static int
loyalty_bigcommerce_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int                    rc, customer, address, status, fetch;
    int64_t                from, to;
    const char            *type;
    loyalty_jw_t           w;
    loyalty_str_t          id, hash, ref_id, addr_id, s;
    loyalty_json_t        *body;
    loyalty_event_t       *ev;
    loyalty_canon_keys_t   keys;
    const loyalty_json_t  *data, *obj;

    if (req->header(req, "webhook-id", &id) != LOYALTY_OK
        || !loyalty_event_id_valid(id.data, id.len))
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "invalid webhook-id");
        return LOYALTY_DECLINED;
    }

    rc = loyalty_json_parse(&req->body, a, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (body->type != LOYALTY_JSON_OBJECT) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        return LOYALTY_DECLINED;
    }

    obj = loyalty_json_get(body, "scope");

    if (obj == NULL || obj->type != LOYALTY_JSON_STRING
        || obj->text.len == 0)
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "missing scope");
        return LOYALTY_DECLINED;
    }

    ev = loyalty_provider_event(req, a, "bigcommerce", out);
    if (ev == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    ev->id = id;
    ev->topic = obj->text;
    loyalty_canon_set_type(ev, loyalty_bigcommerce_topics);

    /* the payload hash is the same when a hook fires twice: second key */
    if (loyalty_json_scalar(body, "hash", &hash) == LOYALTY_OK
        && loyalty_event_id_valid(hash.data, hash.len))
    {
        ev->alt_id = hash;
    }

    rc = loyalty_bigcommerce_occurred(req, a, body, ev);
    if (rc != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    data = loyalty_json_object(body, "data");

    customer = (ev->topic.len > sizeof("store/customer/") - 1
                && memcmp(ev->topic.data, "store/customer/",
                          sizeof("store/customer/") - 1) == 0);
    address = loyalty_str_eq(&ev->topic, "store/customer/address/created")
              || loyalty_str_eq(&ev->topic, "store/customer/address/updated")
              || loyalty_str_eq(&ev->topic, "store/customer/address/deleted");
    status = loyalty_str_eq(&ev->topic, "store/order/statusUpdated");

    /*
     * The resource the worker fetches: data.id, except for addresses,
     * whose data.id is the address and whose customer is in
     * data.address.customer_id.
     */

    ref_id.len = 0;
    addr_id.len = 0;

    if (address) {
        (void) loyalty_bigcommerce_id(data, "id", &addr_id);
        (void) loyalty_bigcommerce_id(loyalty_json_object(data, "address"),
                                      "customer_id", &ref_id);

    } else {
        (void) loyalty_bigcommerce_id(data, "id", &ref_id);
    }

    /* a thin order payload cannot say "paid": the status change can */
    from = -1;
    to = -1;

    if (status) {
        obj = loyalty_json_object(data, "status");
        (void) loyalty_bigcommerce_status(obj, "previous_status_id", &from);
        (void) loyalty_bigcommerce_status(obj, "new_status_id", &to);

        type = loyalty_bigcommerce_status_type(from, to);
        ev->type.data = (const u_char *) type;
        ev->type.len = strlen(type);
    }

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));

    if (customer) {
        keys.store_cid = ref_id;
    }

    if (loyalty_canon_identity(conf, a, ev, &keys) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    /* a deleted customer, an uninstalled app: nothing left to fetch */
    fetch = (ref_id.len != 0
             && !loyalty_str_eq(&ev->topic, "store/customer/deleted")
             && !loyalty_str_eq(&ev->topic, "store/app/uninstalled"));

    loyalty_jw_init(&w, a, 256);
    loyalty_jw_object(&w, NULL);

    if (ref_id.len) {
        loyalty_jw_object(&w, "ref");
        (void) loyalty_canon_text(&w, "type", data, "type");
        loyalty_jw_str(&w, "id", &ref_id);
        loyalty_jw_end(&w);
    }

    loyalty_jw_bool(&w, "needs_fetch", fetch);

    if (customer && ev->store_cid.len) {
        loyalty_jw_object(&w, "customer");
        loyalty_canon_write_keys(&w, ev);
        loyalty_jw_end(&w);
    }

    if (addr_id.len) {
        loyalty_jw_object(&w, "address");
        loyalty_jw_str(&w, "id", &addr_id);
        loyalty_jw_end(&w);
    }

    if (from >= 0 || to >= 0) {
        loyalty_jw_object(&w, "status");
        obj = loyalty_json_object(data, "status");
        (void) loyalty_canon_id(&w, "from", obj, "previous_status_id");
        (void) loyalty_canon_id(&w, "to", obj, "new_status_id");
        loyalty_jw_end(&w);
    }

    obj = loyalty_json_object(data, "refund");

    if (obj != NULL) {
        loyalty_jw_object(&w, "refund");
        (void) loyalty_canon_id(&w, "id", obj, "refund_id");
        if (ref_id.len) {
            loyalty_jw_str(&w, "order_id", &ref_id);
        }
        loyalty_jw_end(&w);
    }

    (void) loyalty_canon_id(&w, "store_id", body, "store_id");

    /* "stores/{store_hash}": the hash the worker's API calls need */
    if (loyalty_json_scalar(body, "producer", &s) == LOYALTY_OK
        && s.len > sizeof("stores/") - 1
        && memcmp(s.data, "stores/", sizeof("stores/") - 1) == 0)
    {
        s.data += sizeof("stores/") - 1;
        s.len -= sizeof("stores/") - 1;
        loyalty_jw_str(&w, "store_hash", &s);
    }

    loyalty_jw_end(&w);

    return loyalty_canon_finish(&w, ev, err);
}


/* an id: a string, or an integer number as its text */

static int
loyalty_bigcommerce_id(const loyalty_json_t *obj, const char *member,
    loyalty_str_t *out)
{
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (v == NULL || loyalty_canon_scalar(v, out) != LOYALTY_OK) {
        out->len = 0;
        return LOYALTY_DECLINED;
    }

    /* 12.5 is no id; 64-bit and larger integers are kept as text */
    if ((v->type == LOYALTY_JSON_NUMBER
         && (memchr(out->data, '.', out->len) != NULL
             || memchr(out->data, 'e', out->len) != NULL
             || memchr(out->data, 'E', out->len) != NULL))
        || !loyalty_event_id_valid(out->data, out->len))
    {
        out->len = 0;
        return LOYALTY_DECLINED;
    }

    return LOYALTY_OK;
}


static int
loyalty_bigcommerce_status(const loyalty_json_t *status, const char *member,
    int64_t *out)
{
    const loyalty_json_t  *v;

    v = status ? loyalty_json_get(status, member) : NULL;

    if (v == NULL || v->type != LOYALTY_JSON_NUMBER) {
        return LOYALTY_DECLINED;
    }

    return loyalty_json_int64(v, out);
}


/*
 * BigCommerce order status ids: 0 Incomplete, 1 Pending, 2 Shipped,
 * 3 Partially Shipped, 4 Refunded, 5 Cancelled, 6 Declined, 7 Awaiting
 * Payment, 8 Awaiting Pickup, 9 Awaiting Shipment, 10 Completed,
 * 11 Awaiting Fulfillment, 12 Manual Verification Required, 13 Disputed,
 * 14 Partially Refunded.
 *
 * Checkout moves an order from an unpaid status to 11 (physical goods)
 * or 10 (digital): that transition is the payment.  Later moves between
 * fulfilment statuses (11 -> 9 -> 2 -> 10) are not payments and stay
 * "unknown", so an order is not paid twice.  Refunds come with their own
 * scope (store/order/refund/created, carrying the refund id): a move to
 * 4 or 14 stays "unknown" rather than double the refund.
 */

static const char *
loyalty_bigcommerce_status_type(int64_t from, int64_t to)
{
    if (to == 5 && from != 5) {
        return "order.cancelled";
    }

    if ((to == 10 || to == 11)
        && (from == 0 || from == 1 || from == 7 || from == 12))
    {
        return "order.paid";
    }

    return "unknown";
}


/* created_at (unix seconds), else the signed timestamp, else now */

static int
loyalty_bigcommerce_occurred(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const loyalty_json_t *body,
    loyalty_event_t *ev)
{
    int            rc;
    size_t         i;
    int64_t        t;
    loyalty_str_t  stamp;

    rc = loyalty_canon_occurred(ev, a, loyalty_json_get(body, "created_at"));
    if (rc != LOYALTY_DECLINED) {
        return rc;
    }

    t = (int64_t) req->now;

    /* verified already: 1 to 18 digits */
    if (req->header(req, "webhook-timestamp", &stamp) == LOYALTY_OK
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
