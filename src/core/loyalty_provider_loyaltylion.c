/*
 * Copyright (C) loyalty-edge authors
 *
 * LoyaltyLion (apis.md section 3): x-loyaltylion-hmac-sha256 is the
 * base64 HMAC-SHA256 of the raw body, keyed with the site secret or the
 * OAuth app's client secret; every configured secret is tried.  The body
 * is {"id","topic","created_at",...} with the customer either at the top
 * level (customers/update) or in payload.properties (program events);
 * rewards/store_fulfilment has its own flat body and no id.
 */


#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_canon.h"
#include "loyalty_identity.h"


#define LOYALTY_LL_SIGNATURE  "x-loyaltylion-hmac-sha256"
#define LOYALTY_LL_TOPIC      "x-loyaltylion-topic"


typedef enum {
    LOYALTY_LL_CUSTOMER = 0,
    LOYALTY_LL_ENROLLED,
    LOYALTY_LL_SEGMENT,
    LOYALTY_LL_NOTIFY,
    LOYALTY_LL_TIER,
    LOYALTY_LL_POINTS,
    LOYALTY_LL_CLAIMED,
    LOYALTY_LL_REFERRAL,
    LOYALTY_LL_CONSENT,
    LOYALTY_LL_FULFIL,
    LOYALTY_LL_UNKNOWN
} loyalty_ll_kind_e;


typedef struct {
    const char         *topic;
    const char         *type;
    loyalty_ll_kind_e   kind;
    const char         *note;      /* segment or notification name */
} loyalty_ll_topic_t;


static int loyalty_loyaltylion_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_loyaltylion_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);
static const loyalty_ll_topic_t *loyalty_ll_topic(const loyalty_str_t *topic);
static int loyalty_ll_has_tier(const loyalty_json_t *t);
static void loyalty_ll_tier(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *t);
static const loyalty_json_t *loyalty_ll_member_tier(const loyalty_json_t *c);
static void loyalty_ll_customer(loyalty_jw_t *w, const loyalty_event_t *ev,
    const loyalty_json_t *c);
static const loyalty_json_t *loyalty_ll_first(const loyalty_json_t *obj,
    const char *const *names);


const loyalty_provider_t  loyalty_provider_loyaltylion = {
    .name = "loyaltylion",
    /* the secret's bytes: LoyaltyLion secrets are not encoded */
    .key = loyalty_provider_key_raw,
    .verify = loyalty_loyaltylion_verify,
    .normalize = loyalty_loyaltylion_normalize
};


/*
 * Every documented topic (POST /v2/webhooks).  Notifications and
 * reminders change nothing in the program: they become customer.updated
 * (the payload is a fresh customer snapshot) with a "notification"
 * member naming them, so flows can send the message; no type is made up.
 */

static const loyalty_ll_topic_t  loyalty_ll_topics[] = {
    { "customers/update", "customer.updated", LOYALTY_LL_CUSTOMER, NULL },
    { "loyalty_emails/unsubscribe", "consent.changed",
      LOYALTY_LL_CONSENT, NULL },
    { "rewards/store_fulfilment", "reward.issued", LOYALTY_LL_FULFIL, NULL },

    /*
     * Enrolment is joining the program, not the customer's creation:
     * LoyaltyLion knows customers (guests, non-members) before they
     * enrol, so customer.updated with enrolled true and "enrollment".
     */
    { "program_events/customer.enrolled", "customer.updated",
      LOYALTY_LL_ENROLLED, NULL },
    { "program_events/customer.tier_upgraded", "tier.changed",
      LOYALTY_LL_TIER, NULL },
    { "program_events/customer.tier_downgraded", "tier.changed",
      LOYALTY_LL_TIER, NULL },
    { "program_events/customer.points_earned", "points.earned",
      LOYALTY_LL_POINTS, NULL },
    /* an earning rule (sign-up, review, ...) was completed: points */
    { "program_events/customer.rule_completed", "points.earned",
      LOYALTY_LL_POINTS, NULL },
    /*
     * The customer spent points on a reward and LoyaltyLion issued it
     * (a discount code, a product...): reward.issued, with points_cost.
     * reward.redeemed would be the code being used at checkout, which
     * LoyaltyLion does not report.
     */
    { "program_events/customer.claimed_reward", "reward.issued",
      LOYALTY_LL_CLAIMED, NULL },
    { "program_events/customer.referral_complete", "referral.completed",
      LOYALTY_LL_REFERRAL, NULL },
    { "program_events/customer.moved_to_at_risk_segment",
      "customer.updated", LOYALTY_LL_SEGMENT, "at_risk" },
    { "program_events/customer.moved_to_defected_segment",
      "customer.updated", LOYALTY_LL_SEGMENT, "defected" },
    { "program_events/customer.moved_to_loyal_segment",
      "customer.updated", LOYALTY_LL_SEGMENT, "loyal" },
    { "program_events/customer.reward_available_notification",
      "customer.updated", LOYALTY_LL_NOTIFY, "reward_available" },
    { "program_events/customer.recurring_reward_available_reminder",
      "customer.updated", LOYALTY_LL_NOTIFY, "reward_available_reminder" },
    { "program_events/customer.approaching_tier_upgrade",
      "customer.updated", LOYALTY_LL_NOTIFY, "approaching_tier_upgrade" },
    { "program_events/customer.approaching_points_expiration",
      "customer.updated", LOYALTY_LL_NOTIFY, "approaching_points_expiration"
    },
    { "program_events/customer.approaching_reward_expiration",
      "customer.updated", LOYALTY_LL_NOTIFY, "approaching_reward_expiration"
    },
    { NULL, "unknown", LOYALTY_LL_UNKNOWN, NULL }
};


static int
loyalty_loyaltylion_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    return loyalty_provider_body_verify(conf, req, LOYALTY_LL_SIGNATURE,
                                        LOYALTY_ENC_BASE64, err);
}


static const loyalty_ll_topic_t *
loyalty_ll_topic(const loyalty_str_t *topic)
{
    const loyalty_ll_topic_t  *t;

    for (t = loyalty_ll_topics; t->topic != NULL; t++) {
        if (strlen(t->topic) == topic->len
            && memcmp(t->topic, topic->data, topic->len) == 0)
        {
            return t;
        }
    }

    return t;
}


static const loyalty_json_t *
loyalty_ll_first(const loyalty_json_t *obj, const char *const *names)
{
    const loyalty_json_t  *v;

    if (obj == NULL) {
        return NULL;
    }

    for ( /* void */ ; *names != NULL; names++) {
        v = loyalty_json_object(obj, *names);
        if (v != NULL) {
            return v;
        }
    }

    return NULL;
}


static int
loyalty_ll_has_tier(const loyalty_json_t *t)
{
    loyalty_str_t  s;

    return t != NULL
           && (loyalty_json_scalar(t, "id", &s) == LOYALTY_OK
               || loyalty_json_scalar(t, "name", &s) == LOYALTY_OK);
}


/*
 * A LoyaltyLion tier as {id, name, rank}: rank is "number", documented
 * as the tier's sequential order starting at 1 for the default tier.
 * "position" is not used: the docs' own examples give the default tier
 * position 0 in one place and 1 in another.
 */

static void
loyalty_ll_tier(loyalty_jw_t *w, const char *key, const loyalty_json_t *t)
{
    loyalty_jw_object(w, key);
    loyalty_canon_id(w, "id", t, "id");
    loyalty_canon_text(w, "name", t, "name");
    loyalty_canon_int(w, "rank", t, "number");
    loyalty_jw_end(w);
}


static const loyalty_json_t *
loyalty_ll_member_tier(const loyalty_json_t *c)
{
    const loyalty_json_t  *m;

    m = c ? loyalty_json_object(c, "loyalty_tier_membership") : NULL;

    return m ? loyalty_json_object(m, "loyalty_tier") : NULL;
}


static void
loyalty_ll_customer(loyalty_jw_t *w, const loyalty_event_t *ev,
    const loyalty_json_t *c)
{
    const loyalty_json_t  *props, *m, *tier;

    if (c == NULL && ev->email.len == 0 && ev->ext_id.len == 0
        && ev->store_cid.len == 0)
    {
        return;
    }

    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ev);

    if (c != NULL) {
        props = loyalty_json_object(c, "properties");
        loyalty_canon_text(w, "first_name", props, "first_name");
        loyalty_canon_text(w, "last_name", props, "last_name");

        /* approved points are the spendable balance */
        loyalty_canon_int(w, "points_balance", c, "points_approved");
        loyalty_canon_int(w, "points_pending", c, "points_pending");
        loyalty_canon_int(w, "points_spent", c, "points_spent");

        m = loyalty_json_object(c, "loyalty_tier_membership");
        tier = loyalty_ll_member_tier(c);

        if (loyalty_ll_has_tier(tier)) {
            loyalty_ll_tier(w, "tier", tier);
        }

        loyalty_canon_time(w, "tier_expires_at", m, "expires_at");
        loyalty_canon_bool(w, "enrolled", c, "enrolled");
        loyalty_canon_text(w, "referral_url", c, "referral_url");
        loyalty_canon_time(w, "updated_at", c, "updated_at");
    }

    loyalty_jw_end(w);
}


static int
loyalty_loyaltylion_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int                        rc;
    loyalty_jw_t               w;
    loyalty_str_t              s;
    loyalty_json_t            *body;
    loyalty_event_t           *ev;
    const loyalty_json_t      *payload, *props, *c, *v, *from, *to, *cr;
    loyalty_canon_keys_t       keys;
    const loyalty_ll_topic_t  *t;

    static const char *const  from_names[] = {
        "previous_tier", "old_tier", "from_tier", NULL
    };
    static const char *const  to_names[] = {
        "new_tier", "to_tier", NULL
    };
    static const char *const  referee_names[] = {
        "referred_customer", "referee", NULL
    };
    static const char *const  claimed_names[] = {
        "claimed_reward", "reward", NULL
    };

    rc = loyalty_json_parse(&req->body, a, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (body->type != LOYALTY_JSON_OBJECT) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        return LOYALTY_DECLINED;
    }

    /*
     * The topic is in the signed body; the x-loyaltylion-topic header is
     * not signed, so it is used only when the body has none (the custom
     * reward fulfilment body).
     */
    s.len = 0;
    s.data = NULL;

    v = loyalty_json_get(body, "topic");

    if (v == NULL || v->type != LOYALTY_JSON_STRING || v->text.len == 0) {
        if (req->header(req, LOYALTY_LL_TOPIC, &s) != LOYALTY_OK) {
            s.len = 0;
        }

    } else {
        s = v->text;
    }

    t = loyalty_ll_topic(&s);

    /* a test delivery when a custom reward is saved: acknowledge only */
    if (t->kind == LOYALTY_LL_FULFIL) {
        v = loyalty_json_get(body, "test");
        if (v != NULL && v->type == LOYALTY_JSON_TRUE) {
            out->events = NULL;
            out->nevents = 0;
            return LOYALTY_OK;
        }
    }

    ev = loyalty_provider_event(req, a, "loyaltylion", out);
    if (ev == NULL) {
        goto nomem;
    }

    ev->topic = s;
    ev->type.data = (const u_char *) t->type;
    ev->type.len = strlen(t->type);

    /*
     * The body id is unique per webhook event and the same on retries.
     * The fulfilment body has none: its SHA-256 then, which is also the
     * same on retries.
     */
    if (loyalty_json_scalar(body, "id", &ev->id) != LOYALTY_OK
        || !loyalty_event_id_valid(ev->id.data, ev->id.len))
    {
        if (loyalty_provider_body_digest(req, a, &ev->id) != LOYALTY_OK) {
            goto nomem;
        }
    }

    /* created_at is when LoyaltyLion made the event */
    rc = loyalty_canon_occurred(ev, a, loyalty_json_get(body, "created_at"));

    if (rc == LOYALTY_DECLINED) {
        rc = loyalty_provider_time(req->now, a, &ev->occurred);
    }

    if (rc != LOYALTY_OK) {
        goto nomem;
    }

    /* both layouts: top-level customer, or payload.properties.customer */
    payload = loyalty_json_object(body, "payload");
    props = payload ? loyalty_json_object(payload, "properties") : NULL;

    if (props == NULL) {
        props = payload ? payload : body;
    }

    c = loyalty_json_object(body, "customer");

    if (c == NULL) {
        c = loyalty_json_object(props, "customer");
    }

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));

    if (t->kind == LOYALTY_LL_FULFIL) {
        (void) loyalty_json_scalar(body, "customer_email", &keys.email);
        (void) loyalty_json_scalar(body, "customer_id", &keys.ext_id);
        (void) loyalty_json_scalar(body, "customer_merchant_id",
                                   &keys.store_cid);

    } else if (c != NULL) {
        (void) loyalty_json_scalar(c, "email", &keys.email);
        (void) loyalty_json_scalar(c, "id", &keys.ext_id);
        (void) loyalty_json_scalar(c, "merchant_id", &keys.store_cid);

    } else if (loyalty_json_scalar(props, "email", &keys.email)
               != LOYALTY_OK)
    {
        (void) loyalty_json_scalar(body, "email", &keys.email);
    }

    if (loyalty_canon_identity(conf, a, ev, &keys) != LOYALTY_OK) {
        goto nomem;
    }

    loyalty_jw_init(&w, a, 512 + req->body.len / 2);
    loyalty_jw_object(&w, NULL);

    switch (t->kind) {

    case LOYALTY_LL_ENROLLED:
        v = loyalty_json_object(props, "enrollment");
        if (v != NULL) {
            loyalty_jw_object(&w, "enrollment");
            loyalty_canon_time(&w, "at", v, "date");
            loyalty_canon_text(&w, "trigger", v, "trigger");
            loyalty_jw_end(&w);
        }
        break;

    case LOYALTY_LL_SEGMENT:
        loyalty_jw_cstr(&w, "segment", t->note);
        break;

    case LOYALTY_LL_NOTIFY:
        loyalty_jw_object(&w, "notification");
        loyalty_jw_cstr(&w, "kind", t->note);

        v = loyalty_json_object(props, "current_tier");
        if (loyalty_ll_has_tier(v)) {
            loyalty_ll_tier(&w, "current_tier", v);
        }

        v = loyalty_json_object(props, "next_tier");
        if (loyalty_ll_has_tier(v)) {
            loyalty_ll_tier(&w, "next_tier", v);
        }

        loyalty_canon_int(&w, "points_required", props, "points_required");
        loyalty_jw_end(&w);
        break;

    case LOYALTY_LL_TIER:
        /* field names beyond the customer are UNCONFIRMED: try several */
        from = loyalty_ll_first(props, from_names);
        to = loyalty_ll_first(props, to_names);

        if (!loyalty_ll_has_tier(to)) {
            /* the customer's tier after the change */
            to = loyalty_ll_member_tier(c);
        }

        loyalty_jw_object(&w, "tier");

        if (loyalty_ll_has_tier(from)) {
            loyalty_ll_tier(&w, "from", from);
        }

        if (loyalty_ll_has_tier(to)) {
            loyalty_ll_tier(&w, "to", to);
        }

        loyalty_jw_end(&w);
        break;

    case LOYALTY_LL_POINTS:
        v = loyalty_json_object(props, "transaction");

        loyalty_jw_object(&w, "points");
        loyalty_canon_int(&w, "delta", v, "points");
        loyalty_canon_int(&w, "balance_after", c, "points_approved");

        cr = loyalty_json_object(props, "rule");
        if (cr == NULL && v != NULL) {
            cr = loyalty_json_object(v, "rule");
        }

        if (!loyalty_canon_text(&w, "reason", cr, "title")) {
            loyalty_canon_text(&w, "reason", cr, "name");
        }

        loyalty_canon_id(&w, "source_id", v, "id");
        loyalty_jw_end(&w);
        break;

    case LOYALTY_LL_CLAIMED:
        cr = loyalty_ll_first(props, claimed_names);
        v = cr ? loyalty_json_object(cr, "reward") : NULL;

        loyalty_jw_object(&w, "reward");
        loyalty_canon_id(&w, "id", cr, "id");

        if (!loyalty_canon_text(&w, "code", cr, "code")) {
            loyalty_canon_text(&w, "code",
                               cr ? loyalty_json_object(cr, "redeemable")
                                  : NULL,
                               "code");
        }

        if (!loyalty_canon_int(&w, "points_cost", cr, "point_cost")) {
            loyalty_canon_int(&w, "points_cost", v, "point_cost");
        }

        if (!loyalty_canon_text(&w, "name", v, "title")) {
            loyalty_canon_text(&w, "name", cr, "title");
        }

        loyalty_jw_end(&w);
        break;

    case LOYALTY_LL_REFERRAL:
        loyalty_jw_object(&w, "referral");

        /* the event's customer is the one whose referral completed */
        loyalty_jw_object(&w, "referrer");
        loyalty_canon_write_keys(&w, ev);
        loyalty_jw_end(&w);

        v = loyalty_ll_first(props, referee_names);
        if (v != NULL
            && loyalty_canon_person(&w, "referee", v, a, "id", "merchant_id")
               != LOYALTY_OK)
        {
            goto nomem;
        }

        loyalty_jw_end(&w);
        break;

    case LOYALTY_LL_CONSENT:
        loyalty_jw_object(&w, "consent");
        loyalty_jw_cstr(&w, "channel", "email");
        loyalty_jw_bool(&w, "granted", 0);
        loyalty_canon_time(&w, "at", body, "created_at");
        loyalty_jw_end(&w);
        break;

    case LOYALTY_LL_FULFIL:
        loyalty_jw_object(&w, "reward");
        loyalty_canon_id(&w, "id", body, "reward_id");
        /* the merchant's own identifier of the custom reward */
        loyalty_canon_text(&w, "identifier", body, "reward_identifier");
        loyalty_jw_end(&w);
        break;

    default:
        break;
    }

    loyalty_ll_customer(&w, ev, t->kind == LOYALTY_LL_FULFIL ? NULL : c);

    loyalty_jw_end(&w);

    return loyalty_canon_finish(&w, ev, err);

nomem:

    loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
    return LOYALTY_ERROR;
}
