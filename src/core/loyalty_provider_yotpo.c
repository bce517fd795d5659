/*
 * Copyright (C) loyalty-edge authors
 *
 * Yotpo Loyalty & Referrals, formerly Swell (apis.md section 5).  No
 * signature: the "Webhook Authentication" token chosen in the Yotpo admin
 * comes back in a header.  Its name is UNCONFIRMED; the default is
 * X-Api-Key (the header Yotpo's own loyalty API authenticates with) and
 * loyalty_signature_header overrides it.  A "Bearer " prefix is allowed,
 * for senders configured to use Authorization.
 *
 * Flat bodies {"topic","name","email","customer":{...},"perk"|
 * "redemption"|"referral_code"|"new_tier"...}; swell/... topics and
 * their yotpo/... successors.  Dedupe: the eventid header of Yotpo
 * platform webhooks, else topic and perk, redemption or referral id
 * ("swell/points/earned:perk:1"), else the SHA-256 of the body.
 */


#include <string.h>
#include <strings.h>

#include <openssl/rand.h>

#include "loyalty_provider.h"
#include "loyalty_canon.h"
#include "loyalty_identity.h"


#define LOYALTY_YOTPO_RKEY_LEN  32


typedef enum {
    LOYALTY_YOTPO_CUSTOMER = 0,
    LOYALTY_YOTPO_NOTIFY,
    LOYALTY_YOTPO_POINTS,
    LOYALTY_YOTPO_REWARD,
    LOYALTY_YOTPO_REFERRAL,
    LOYALTY_YOTPO_TIER,
    LOYALTY_YOTPO_UNKNOWN
} loyalty_yotpo_kind_e;


typedef struct {
    const char            *name;      /* the topic without its prefix */
    const char            *type;
    loyalty_yotpo_kind_e   kind;
    const char            *note;      /* notification name */
} loyalty_yotpo_topic_t;


static int loyalty_yotpo_key(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_hmac_key_t **key,
    loyalty_err_t *err);
static int loyalty_yotpo_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_yotpo_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);
static const loyalty_yotpo_topic_t *loyalty_yotpo_topic(
    const loyalty_str_t *topic);
static int loyalty_yotpo_id(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const loyalty_json_t *body,
    loyalty_yotpo_kind_e kind, loyalty_event_t *ev);
static int loyalty_yotpo_has_text(const loyalty_json_t *obj,
    const char *key);
static void loyalty_yotpo_tier(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *t);
static void loyalty_yotpo_customer(loyalty_jw_t *w, const loyalty_event_t *ev,
    const loyalty_json_t *c);


const loyalty_provider_t  loyalty_provider_yotpo = {
    .name = "yotpo",
    .signature_header = "X-Api-Key",
    .key = loyalty_yotpo_key,
    .verify = loyalty_yotpo_verify,
    .normalize = loyalty_yotpo_normalize
};


static const loyalty_yotpo_topic_t  loyalty_yotpo_topics[] = {
    { "points/earned", "points.earned", LOYALTY_YOTPO_POINTS, NULL },

    /*
     * "Redemption" is the customer spending points on a coupon: what is
     * created is a reward given to the customer (reward.issued, with the
     * points it cost), the same as LoyaltyLion's claimed_reward.
     * reward.redeemed is the coupon used at checkout, which Yotpo does
     * not report here.
     */
    { "redemption/created", "reward.issued", LOYALTY_YOTPO_REWARD, NULL },
    { "referral/completed", "referral.completed", LOYALTY_YOTPO_REFERRAL,
      NULL },
    { "referral/share", "referral.created", LOYALTY_YOTPO_REFERRAL, NULL },
    { "referral/shared", "referral.created", LOYALTY_YOTPO_REFERRAL, NULL },
    { "tier/earned", "tier.changed", LOYALTY_YOTPO_TIER, NULL },
    { "tier/status/changed", "tier.changed", LOYALTY_YOTPO_TIER, NULL },
    { "account/created", "customer.created", LOYALTY_YOTPO_CUSTOMER, NULL },

    /*
     * Reminders and the birthday change nothing: customer.updated (the
     * body is a fresh customer snapshot) with a "notification" member,
     * so flows can send the message; no type is made up.
     */
    { "points/reminder", "customer.updated", LOYALTY_YOTPO_NOTIFY,
      "points_reminder" },
    { "redemption/reminder", "customer.updated", LOYALTY_YOTPO_NOTIFY,
      "redemption_reminder" },
    { "customer/birthday", "customer.updated", LOYALTY_YOTPO_NOTIFY,
      "birthday" },
    { NULL, "unknown", LOYALTY_YOTPO_UNKNOWN, NULL }
};


/*
 * Tokens are compared as HMACs under a key drawn once per process, so
 * the comparison takes the same time whatever the tokens' lengths and
 * contents.  Every configured token gets a key object holding it; the
 * configured token itself is read from conf->secrets.
 */

static u_char  loyalty_yotpo_rkey[LOYALTY_YOTPO_RKEY_LEN];
static int     loyalty_yotpo_rkey_ready;


static int
loyalty_yotpo_key(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_hmac_key_t **key,
    loyalty_err_t *err)
{
    (void) conf;

    if (secret->len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "empty yotpo token");
        return LOYALTY_ERROR;
    }

    if (!loyalty_yotpo_rkey_ready) {
        if (RAND_bytes(loyalty_yotpo_rkey, LOYALTY_YOTPO_RKEY_LEN) != 1) {
            loyalty_err_set(err, LOYALTY_ERR_CONFIG, "RAND_bytes() failed");
            return LOYALTY_ERROR;
        }

        loyalty_yotpo_rkey_ready = 1;
    }

    *key = loyalty_hmac_key_create(LOYALTY_MD_SHA256, loyalty_yotpo_rkey,
                                   LOYALTY_YOTPO_RKEY_LEN, err);

    return (*key != NULL) ? LOYALTY_OK : LOYALTY_ERROR;
}


static int
loyalty_yotpo_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    int            n, m;
    size_t         i;
    unsigned       match;
    u_char         got[LOYALTY_HMAC_MAX], want[LOYALTY_HMAC_MAX];
    loyalty_str_t  tok;

    if (conf->nkeys == 0 || conf->secrets == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "no tokens");
        return LOYALTY_ERROR;
    }

    if (req->header(req, conf->signature_header, &tok) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "missing %s header",
                        conf->signature_header);
        return LOYALTY_DECLINED;
    }

    if (tok.len > 7 && strncasecmp((const char *) tok.data, "Bearer ", 7)
                       == 0)
    {
        tok.data += 7;
        tok.len -= 7;
    }

    while (tok.len && (tok.data[0] == ' ' || tok.data[0] == '\t')) {
        tok.data++;
        tok.len--;
    }

    while (tok.len
           && (tok.data[tok.len - 1] == ' ' || tok.data[tok.len - 1] == '\t'))
    {
        tok.len--;
    }

    if (tok.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "empty %s header",
                        conf->signature_header);
        return LOYALTY_DECLINED;
    }

    n = loyalty_hmac(conf->keys[0], &tok, 1, got);
    if (n <= 0) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "HMAC failed");
        return LOYALTY_ERROR;
    }

    /* every token, no early exit */
    match = 0;

    for (i = 0; i < conf->nkeys; i++) {
        m = loyalty_hmac(conf->keys[i], &conf->secrets[i], 1, want);
        if (m != n) {
            loyalty_err_set(err, LOYALTY_ERR_NOMEM, "HMAC failed");
            return LOYALTY_ERROR;
        }

        match |= (unsigned) loyalty_sig_equal(got, want, (size_t) n);
    }

    if (!match) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "no matching token");
        return LOYALTY_DECLINED;
    }

    return LOYALTY_OK;
}


static const loyalty_yotpo_topic_t *
loyalty_yotpo_topic(const loyalty_str_t *topic)
{
    size_t                        len;
    const u_char                 *p;
    const loyalty_yotpo_topic_t  *t;

    p = topic->data;
    len = topic->len;

    if (len > 6
        && (memcmp(p, "swell/", 6) == 0 || memcmp(p, "yotpo/", 6) == 0))
    {
        p += 6;
        len -= 6;

        for (t = loyalty_yotpo_topics; t->name != NULL; t++) {
            if (strlen(t->name) == len && memcmp(t->name, p, len) == 0) {
                return t;
            }
        }
    }

    for (t = loyalty_yotpo_topics; t->name != NULL; t++) {
        /* void */
    }

    return t;
}


/*
 * The event id: eventid (Yotpo platform webhooks), else "topic:what:id"
 * from the object the event is about (the perk of points earned, the
 * redemption of a reward, the referral), else the body's SHA-256.
 * Reminders name a redemption too but are not it: they get the digest.
 * Retries repeat the body, so each choice is stable across them.
 */

static int
loyalty_yotpo_id(const loyalty_request_t *req, const loyalty_alloc_t *a,
    const loyalty_json_t *body, loyalty_yotpo_kind_e kind,
    loyalty_event_t *ev)
{
    size_t                 len, wlen;
    u_char                *p;
    const char            *what;
    loyalty_str_t          id;
    const loyalty_json_t  *obj;

    if (req->header(req, "eventid", &id) == LOYALTY_OK
        && loyalty_event_id_valid(id.data, id.len))
    {
        ev->id = id;
        return LOYALTY_OK;
    }

    switch (kind) {
    case LOYALTY_YOTPO_POINTS:
        what = "perk";
        break;
    case LOYALTY_YOTPO_REWARD:
        what = "redemption";
        break;
    case LOYALTY_YOTPO_REFERRAL:
        what = "referral";
        break;
    default:
        what = NULL;
    }

    obj = what ? loyalty_json_object(body, what) : NULL;

    if (obj != NULL && loyalty_json_scalar(obj, "id", &id) == LOYALTY_OK) {
        wlen = strlen(what);
        len = ev->topic.len + 1 + wlen + 1 + id.len;

        if (len <= LOYALTY_EVENT_ID_MAX) {
            p = a->alloc(a->ctx, len);
            if (p == NULL) {
                return LOYALTY_ERROR;
            }

            ev->id.data = p;
            ev->id.len = len;

            memcpy(p, ev->topic.data, ev->topic.len);
            p += ev->topic.len;
            *p++ = ':';
            memcpy(p, what, wlen);
            p += wlen;
            *p++ = ':';
            memcpy(p, id.data, id.len);

            if (loyalty_event_id_valid(ev->id.data, ev->id.len)) {
                return LOYALTY_OK;
            }
        }
    }

    return loyalty_provider_body_digest(req, a, &ev->id);
}


static int
loyalty_yotpo_has_text(const loyalty_json_t *obj, const char *key)
{
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, key) : NULL;

    return v != NULL && v->type == LOYALTY_JSON_STRING && v->text.len != 0;
}


static void
loyalty_yotpo_tier(loyalty_jw_t *w, const char *key, const loyalty_json_t *t)
{
    loyalty_jw_object(w, key);
    loyalty_canon_id(w, "id", t, "id");
    loyalty_canon_text(w, "name", t, "name");
    loyalty_canon_int(w, "rank", t, "rank");
    loyalty_jw_end(w);
}


static void
loyalty_yotpo_customer(loyalty_jw_t *w, const loyalty_event_t *ev,
    const loyalty_json_t *c)
{
    const loyalty_json_t  *rc;

    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ev);

    if (c != NULL) {
        loyalty_canon_text(w, "first_name", c, "first_name");
        loyalty_canon_text(w, "last_name", c, "last_name");
        loyalty_canon_int(w, "points_balance", c, "points_balance");

        /* only the VIP tier's name is in the customer */
        if (loyalty_yotpo_has_text(c, "vip_tier_name")) {
            loyalty_jw_object(w, "tier");
            loyalty_canon_text(w, "name", c, "vip_tier_name");
            loyalty_jw_end(w);
        }

        loyalty_canon_time(w, "tier_expires_at", c, "vip_tier_ends_at");

        rc = loyalty_json_object(c, "referral_code");
        loyalty_canon_text(w, "referral_code", rc, "code");
    }

    loyalty_jw_end(w);
}


static int
loyalty_yotpo_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int                           rc;
    loyalty_jw_t                  w;
    loyalty_json_t               *body;
    loyalty_event_t              *ev;
    const loyalty_json_t         *c, *v, *perk, *red, *opt, *from, *to;
    loyalty_canon_keys_t          keys;
    const loyalty_yotpo_topic_t  *t;

    rc = loyalty_json_parse(&req->body, a, &body, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (body->type != LOYALTY_JSON_OBJECT) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is not a JSON object");
        return LOYALTY_DECLINED;
    }

    ev = loyalty_provider_event(req, a, "yotpo", out);
    if (ev == NULL) {
        goto nomem;
    }

    v = loyalty_json_get(body, "topic");
    if (v != NULL && v->type == LOYALTY_JSON_STRING) {
        ev->topic = v->text;
    }

    t = loyalty_yotpo_topic(&ev->topic);

    ev->type.data = (const u_char *) t->type;
    ev->type.len = strlen(t->type);

    if (loyalty_yotpo_id(req, a, body, t->kind, ev) != LOYALTY_OK) {
        goto nomem;
    }

    c = loyalty_json_object(body, "customer");
    perk = loyalty_json_object(body, "perk");
    red = loyalty_json_object(body, "redemption");

    /*
     * No event time in the body: the time of the perk or redemption the
     * event is about, else the time of receipt.
     */
    rc = LOYALTY_DECLINED;

    if (t->kind == LOYALTY_YOTPO_POINTS && perk != NULL) {
        rc = loyalty_canon_occurred(ev, a, loyalty_json_get(perk,
                                                            "created_at"));
    }

    if (rc == LOYALTY_DECLINED && t->kind == LOYALTY_YOTPO_REWARD
        && red != NULL)
    {
        rc = loyalty_canon_occurred(ev, a,
                                    loyalty_json_get(red, "approved_at"));
        if (rc == LOYALTY_DECLINED) {
            rc = loyalty_canon_occurred(ev, a,
                                        loyalty_json_get(red, "created_at"));
        }
    }

    if (rc == LOYALTY_DECLINED) {
        rc = loyalty_provider_time(req->now, a, &ev->occurred);
    }

    if (rc != LOYALTY_OK) {
        goto nomem;
    }

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));

    if (c == NULL
        || loyalty_json_scalar(c, "email", &keys.email) != LOYALTY_OK)
    {
        (void) loyalty_json_scalar(body, "email", &keys.email);
    }

    /* Yotpo's own customer id; the perk names it when the customer not */
    if ((c == NULL || loyalty_json_scalar(c, "id", &keys.ext_id) != LOYALTY_OK)
        && perk != NULL)
    {
        (void) loyalty_json_scalar(perk, "customer_id", &keys.ext_id);
    }

    /* the store's customer id, in Yotpo's own spelling */
    if (c != NULL) {
        (void) loyalty_json_scalar(c, "thirty_party_id", &keys.store_cid);
    }

    if (loyalty_canon_identity(conf, a, ev, &keys) != LOYALTY_OK) {
        goto nomem;
    }

    loyalty_jw_init(&w, a, 512 + req->body.len / 2);
    loyalty_jw_object(&w, NULL);

    switch (t->kind) {

    case LOYALTY_YOTPO_NOTIFY:
        loyalty_jw_object(&w, "notification");
        loyalty_jw_cstr(&w, "kind", t->note);
        loyalty_jw_end(&w);
        break;

    case LOYALTY_YOTPO_POINTS:
        loyalty_jw_object(&w, "points");
        loyalty_canon_int(&w, "delta", perk, "reward_points");
        loyalty_canon_int(&w, "balance_after", c, "points_balance");
        loyalty_canon_text(&w, "reason", perk, "history_title");
        loyalty_canon_id(&w, "source_id", perk, "id");
        loyalty_jw_end(&w);
        break;

    case LOYALTY_YOTPO_REWARD:
        opt = loyalty_json_object(body, "redemption_option");

        loyalty_jw_object(&w, "reward");
        loyalty_canon_id(&w, "id", red, "id");
        loyalty_canon_text(&w, "code", red, "reward_text");
        loyalty_canon_int(&w, "points_cost", opt, "amount");
        loyalty_canon_text(&w, "name", opt, "name");
        loyalty_jw_end(&w);
        break;

    case LOYALTY_YOTPO_REFERRAL:
        loyalty_jw_object(&w, "referral");

        v = loyalty_json_object(body, "referral_code");
        if (v == NULL && c != NULL) {
            v = loyalty_json_object(c, "referral_code");
        }

        loyalty_canon_text(&w, "code", v, "code");

        /* the customer is the advocate whose link was shared or used */
        loyalty_jw_object(&w, "referrer");
        loyalty_canon_write_keys(&w, ev);
        loyalty_jw_end(&w);

        v = loyalty_json_object(body, "referred_customer");
        if (v != NULL
            && loyalty_canon_person(&w, "referee", v, a, "id",
                                    "thirty_party_id")
               != LOYALTY_OK)
        {
            goto nomem;
        }

        loyalty_jw_end(&w);
        break;

    case LOYALTY_YOTPO_TIER:
        to = loyalty_json_object(body, "new_tier");
        from = loyalty_json_object(body, "old_tier");
        if (from == NULL) {
            from = loyalty_json_object(body, "previous_tier");
        }

        loyalty_jw_object(&w, "tier");

        if (from != NULL) {
            loyalty_yotpo_tier(&w, "from", from);
        }

        if (to != NULL) {
            loyalty_yotpo_tier(&w, "to", to);

        } else if (loyalty_yotpo_has_text(c, "vip_tier_name")) {
            loyalty_jw_object(&w, "to");
            loyalty_canon_text(&w, "name", c, "vip_tier_name");
            loyalty_jw_end(&w);
        }

        loyalty_jw_end(&w);
        break;

    default:
        break;
    }

    loyalty_yotpo_customer(&w, ev, c);

    loyalty_jw_end(&w);

    return loyalty_canon_finish(&w, ev, err);

nomem:

    loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
    return LOYALTY_ERROR;
}
