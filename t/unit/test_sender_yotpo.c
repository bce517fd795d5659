/*
 * Copyright (C) loyalty-edge authors
 *
 * yotpo: the shared token in X-Api-Key (UNCONFIRMED header, so
 * loyalty_signature_header overrides it), compared with every configured
 * token; the event id from eventid, topic and object id, or the body.
 * Yotpo signs nothing and sends no timestamp, so there are no HMAC,
 * encoding or stale/future cases: the token cases take their place.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


#define TOKEN       "yotpo-webhook-token-7f3a"
#define SIG_HEADER  "X-Api-Key"
#define NOW         1735700405

#define POINTS_BODY                                                          \
    "{\"topic\":\"swell/points/earned\",\"email\":\"john@example.com\","      \
    "\"customer\":{\"email\":\"John@Example.com\",\"points_balance\":200,"   \
    "\"thirty_party_id\":\"4302977345\"},\"perk\":{\"id\":1,"                \
    "\"customer_id\":139,\"reward_points\":200,"                           \
    "\"created_at\":\"2016-10-15T15:29:27.828Z\"}}"


static void hdr_add(lt_headers_t *h, const char *name, const char *value);
static void conf_make(loyalty_provider_conf_t *conf, ...);
static int run_verify(loyalty_provider_conf_t *conf, const char *header,
    const char *sig, const char *body, loyalty_err_t *err);
static int run_normalize(loyalty_provider_conf_t *conf, lt_headers_t *h,
    const char *body, loyalty_batch_t *batch, loyalty_err_t *err);
static void test_verify(void);
static void test_normalize(void);
static void test_nomem(void);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static void
hdr_add(lt_headers_t *h, const char *name, const char *value)
{
    lt_header_add(h, &arena, name, value);
}


/* the yotpo sender with the secrets given, NULL-terminated */

static void
conf_make(loyalty_provider_conf_t *conf, ...)
{
    va_list  args;

    va_start(args, conf);
    lt_conf_va(conf, "yotpo", args);
    va_end(args);
}


static int
run_verify(loyalty_provider_conf_t *conf, const char *header,
    const char *sig, const char *body, loyalty_err_t *err)
{
    return lt_verify(conf, &arena, header, sig, body, NOW, err);
}


static int
run_normalize(loyalty_provider_conf_t *conf, lt_headers_t *h,
    const char *body, loyalty_batch_t *batch, loyalty_err_t *err)
{
    return lt_normalize(conf, &arena, &alloc, h, body, NOW, batch, err);
}


static void
test_verify(void)
{
    int                       rc;
    loyalty_err_t             err;
    loyalty_str_t             s;
    loyalty_provider_conf_t   conf, rot, auth;

    conf_make(&conf, TOKEN, NULL);

    is_str(conf.signature_header, SIG_HEADER, "default header X-Api-Key");

    rc = run_verify(&conf, SIG_HEADER, TOKEN, POINTS_BODY, &err);
    is_int(rc, LOYALTY_OK, "the token verifies");

    rc = run_verify(&conf, "x-api-KEY", TOKEN, POINTS_BODY, &err);
    is_int(rc, LOYALTY_OK, "mixed-case header name");

    rc = run_verify(&conf, SIG_HEADER, TOKEN, "", &err);
    is_int(rc, LOYALTY_OK, "the body plays no part");

    rc = run_verify(&conf, NULL, NULL, POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "missing header: declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "... as a signature error");
    ok(strstr(err.msg, SIG_HEADER) != NULL, "... naming the header (%s)",
       err.msg);

    rc = run_verify(&conf, SIG_HEADER, "", POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "empty header: declined");

    rc = run_verify(&conf, SIG_HEADER, "Bearer ", POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "\"Bearer \" alone: declined");

    rc = run_verify(&conf, SIG_HEADER, "yotpo-webhook-token-7f3b",
                    POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "last character wrong: declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "... as a signature error");

    rc = run_verify(&conf, SIG_HEADER, "yotpo-webhook-token-7f3", POINTS_BODY,
                    &err);
    is_int(rc, LOYALTY_DECLINED, "a prefix of the token: declined");

    rc = run_verify(&conf, SIG_HEADER, TOKEN "a", POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "the token and more: declined");

    rc = run_verify(&conf, SIG_HEADER, "YOTPO-WEBHOOK-TOKEN-7F3A",
                    POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "the token in upper case: declined");

    rc = run_verify(&conf, "Authorization", TOKEN, POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED,
           "the token in Authorization when X-Api-Key is configured");

    rc = run_verify(&conf, SIG_HEADER, "Bearer " TOKEN, POINTS_BODY, &err);
    is_int(rc, LOYALTY_OK, "a Bearer prefix is allowed");

    /* loyalty_signature_header Authorization */
    conf_make(&auth, TOKEN, NULL);
    auth.signature_header = "Authorization";

    rc = run_verify(&auth, "authorization", "bearer " TOKEN, POINTS_BODY,
                    &err);
    is_int(rc, LOYALTY_OK, "Authorization: bearer <token>");

    rc = run_verify(&auth, "Authorization", TOKEN, POINTS_BODY, &err);
    is_int(rc, LOYALTY_OK, "Authorization: <token>");

    rc = run_verify(&auth, SIG_HEADER, TOKEN, POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED,
           "X-Api-Key when Authorization is configured: declined");

    /* rotation: every token is compared */
    conf_make(&rot, "old-token", TOKEN, NULL);

    rc = run_verify(&rot, SIG_HEADER, TOKEN, POINTS_BODY, &err);
    is_int(rc, LOYALTY_OK, "rotation: second token valid");

    rc = run_verify(&rot, SIG_HEADER, "old-token", POINTS_BODY, &err);
    is_int(rc, LOYALTY_OK, "rotation: first token valid");

    rc = run_verify(&rot, SIG_HEADER, "new-token", POINTS_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "rotation: neither: declined");

    /* an empty token is refused at configuration */
    s = lt_str("");
    is_int(loyalty_provider_add_secret(&rot, &s, &err), LOYALTY_ERROR,
           "an empty token is refused");

    loyalty_provider_conf_free(&conf);
    loyalty_provider_conf_free(&auth);
    loyalty_provider_conf_free(&rot);
}


static void
test_normalize(void)
{
    int                       rc;
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_batch_t           batch;
    loyalty_event_t          *ev;
    loyalty_provider_conf_t   conf;

    conf_make(&conf, TOKEN, NULL);

    memset(&h, 0, sizeof(lt_headers_t));
    rc = run_normalize(&conf, &h, POINTS_BODY, &batch, &err);
    is_int(rc, LOYALTY_OK, "points earned normalises");
    ev = &batch.events[0];
    lt_str_is(&ev->id, "swell/points/earned:perk:1",
              "... id from topic and perk");
    lt_str_is(&ev->type, "points.earned", "... points.earned");
    lt_str_is(&ev->store_cid, "4302977345", "... store_cid: thirty_party_id");
    lt_str_is(&ev->ext_id, "139", "... ext_id: the perk's customer_id");
    lt_str_is(&ev->email, "john@example.com", "... email lower-cased");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr_add(&h, "EventId", "3f2b8c1e-0d4a-4e6b-9a7c-5d1e2f3a4b5c");
    rc = run_normalize(&conf, &h, POINTS_BODY, &batch, &err);
    is_int(rc, LOYALTY_OK, "with an eventid header");
    lt_str_is(&batch.events[0].id, "3f2b8c1e-0d4a-4e6b-9a7c-5d1e2f3a4b5c",
              "... id from eventid");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr_add(&h, "eventid", "not valid");
    rc = run_normalize(&conf, &h, POINTS_BODY, &batch, &err);
    is_int(rc, LOYALTY_OK, "with an invalid eventid header");
    lt_str_is(&batch.events[0].id, "swell/points/earned:perk:1",
              "... the derived key instead");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    rc = run_normalize(&conf, &h,
                       "{\"topic\":\"yotpo/redemption/created\","
                       "\"redemption\":{\"id\":\"551\"}}",
                       &batch, &err);
    is_int(rc, LOYALTY_OK, "redemption");
    lt_str_is(&batch.events[0].id, "yotpo/redemption/created:redemption:551",
              "... id from topic and redemption");
    lt_str_is(&batch.events[0].type, "reward.issued", "... reward.issued");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h,
                       "{\"topic\":\"swell/referral/completed\","
                       "\"referral\":{\"id\":8812}}",
                       &batch, &err);
    is_int(rc, LOYALTY_OK, "referral");
    lt_str_is(&batch.events[0].id, "swell/referral/completed:referral:8812",
              "... id from topic and referral");
    lt_arena_free(&arena);

    /* a topic with a space cannot be part of an id: the body digest */
    rc = run_normalize(&conf, &h,
                       "{\"topic\":\"swell/points/earned \","
                       "\"perk\":{\"id\":1}}",
                       &batch, &err);
    is_int(rc, LOYALTY_OK, "topic with a space");
    is_int(batch.events[0].id.len, 64, "... id: the body digest");
    lt_str_is(&batch.events[0].type, "unknown", "... unknown");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h, "{\"perk\":{\"id\":1}}", &batch, &err);
    is_int(rc, LOYALTY_OK, "no topic");
    is_int(batch.events[0].id.len, 64, "... id: the body digest");
    is_int(batch.events[0].topic.len, 0, "... no topic");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h, "{\"topic\":\"swell/\"}", &batch, &err);
    is_int(rc, LOYALTY_OK, "bare prefix");
    lt_str_is(&batch.events[0].type, "unknown", "... unknown");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h, "{\"topic\":\"points/earned\"}", &batch,
                       &err);
    is_int(rc, LOYALTY_OK, "no prefix");
    lt_str_is(&batch.events[0].type, "unknown", "... unknown");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h, "nope", &batch, &err);
    is_int(rc, LOYALTY_DECLINED, "not JSON: declined");
    is_int(err.code, LOYALTY_ERR_JSON, "... as bad JSON");
    lt_arena_free(&arena);

    loyalty_provider_conf_free(&conf);
}


static void
test_nomem(void)
{
    int                       rc, bad;
    size_t                    n, total;
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_batch_t           batch;
    loyalty_provider_conf_t   conf;

    static const char  body[] =
        "{\"topic\":\"swell/referral/completed\",\"email\":\"a@b.co\","
        "\"customer\":{\"email\":\"a@b.co\",\"thirty_party_id\":\"9\","
        "\"referral_code\":{\"code\":\"x1\"},\"vip_tier_name\":\"Gold\"},"
        "\"referral\":{\"id\":5},\"referred_customer\":{\"email\":\"c@d.co\"}}";

    conf_make(&conf, TOKEN, NULL);
    memset(&h, 0, sizeof(lt_headers_t));

    rc = run_normalize(&conf, &h, body, &batch, &err);
    total = arena.calls;
    is_int(rc, LOYALTY_OK, "referral event normalises");
    ok(total > 3, "... with %zu allocations to fail in turn", total);
    lt_arena_free(&arena);

    bad = 0;

    for (n = 1; n <= total; n++) {
        arena.fail_at = n;
        rc = run_normalize(&conf, &h, body, &batch, &err);

        if (!(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM)) {
            diag("allocation %zu: rc %d code %d (%s)", n, rc, err.code,
                 err.msg);
            bad++;
        }

        lt_arena_free(&arena);
    }

    is_int(bad, 0, "each failed allocation is reported as such");

    loyalty_provider_conf_free(&conf);
}


int
main(void)
{
    test_verify();
    test_normalize();
    test_nomem();

    return done_testing();
}
