/*
 * Copyright (C) loyalty-edge authors
 *
 * loyaltylion: x-loyaltylion-hmac-sha256 (base64 HMAC-SHA256 of the raw
 * body, apis.md section 10 vector 4), every secret tried, and the parts
 * of normalisation the golden cases cannot show (header topic, test
 * deliveries, allocation failure).  LoyaltyLion signs no timestamp, so
 * there are no stale/future cases.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


/* apis.md section 10, vector 4 */
#define V4_SECRET   "hush"
#define V4_BODY     "{\"id\":820982911946154508,\"email\":\"jon@example.com\"}"
#define V4_B64      "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
#define V4_HEX                                                               \
    "0f450c5e6863c01462e32eba4e6849ac3961400043ef32367e6de9ebf40b328f"
/* the same JSON as re-serialised by a parser with pretty spacing */
#define V4_RESERIALISED                                                      \
    "{\"id\": 820982911946154508, \"email\": \"jon@example.com\"}"

#define SIG_HEADER  "x-loyaltylion-hmac-sha256"
#define NOW         1735700405


static void hdr_add(lt_headers_t *h, const char *name, const char *value);
static void sign(const char *key, const char *body, char *out);
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


static void
sign(const char *key, const char *body, char *out)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  len;

    HMAC(EVP_sha256(), key, (int) strlen(key), (const u_char *) body,
         strlen(body), mac, &len);
    EVP_EncodeBlock((u_char *) out, mac, (int) len);
}


/* the loyaltylion sender with the secrets given, NULL-terminated */

static void
conf_make(loyalty_provider_conf_t *conf, ...)
{
    va_list  args;

    va_start(args, conf);
    lt_conf_va(conf, "loyaltylion", args);
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
    char                      sig[128], hush_empty[128];
    loyalty_err_t             err;
    loyalty_provider_conf_t   conf, rot, rot2;

    conf_make(&conf, V4_SECRET, NULL);

    rc = run_verify(&conf, SIG_HEADER, V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "vector 4 verifies");

    /* apis.md's vector is what OpenSSL computes here too */
    sign(V4_SECRET, V4_BODY, sig);
    is_str(sig, V4_B64, "vector 4 recomputed");

    rc = run_verify(&conf, "X-LoyaltyLion-Hmac-SHA256", V4_B64, V4_BODY,
                    &err);
    is_int(rc, LOYALTY_OK, "mixed-case header name");

    rc = run_verify(&conf, NULL, NULL, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "missing header: declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "... as a signature error");
    ok(strstr(err.msg, SIG_HEADER) != NULL, "... naming the header (%s)",
       err.msg);

    rc = run_verify(&conf, SIG_HEADER, "", V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "empty header: declined");

    rc = run_verify(&conf, "x-shopify-hmac-sha256", V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "signature in another sender's header");

    rc = run_verify(&conf, SIG_HEADER, V4_HEX, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "hex of the right MAC: declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "... as a signature error");

    rc = run_verify(&conf, SIG_HEADER, V4_B64, V4_RESERIALISED, &err);
    is_int(rc, LOYALTY_DECLINED, "re-serialised JSON: declined");

    rc = run_verify(&conf, SIG_HEADER, V4_B64,
                    "{\"id\":820982911946154509,\"email\":\"jon@example.com\"}",
                    &err);
    is_int(rc, LOYALTY_DECLINED, "one digit changed: declined");

    sign("not-hush", V4_BODY, sig);
    rc = run_verify(&conf, SIG_HEADER, sig, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "wrong key: declined");

    /* the URL-safe alphabet is another encoding, not Shopify-style */
    strcpy(sig, V4_B64);
    sig[strlen(sig) - 1] = '\0';
    rc = run_verify(&conf, SIG_HEADER, sig, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "base64 without padding is accepted");

    strcpy(sig, "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6_QLMo8=");
    rc = run_verify(&conf, SIG_HEADER, sig, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "URL-safe base64: declined");

    rc = run_verify(&conf, SIG_HEADER, V4_B64 " " V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "two signatures in one header: declined");

    /* an empty body is signed like any other */
    sign(V4_SECRET, "", hush_empty);
    rc = run_verify(&conf, SIG_HEADER, hush_empty, "", &err);
    is_int(rc, LOYALTY_OK, "empty body with its signature verifies");
    rc = run_verify(&conf, SIG_HEADER, V4_B64, "", &err);
    is_int(rc, LOYALTY_DECLINED, "empty body with another's: declined");

    /* rotation: every configured secret is tried, in either order */
    conf_make(&rot, "old-site-secret", V4_SECRET, NULL);
    rc = run_verify(&rot, SIG_HEADER, V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "rotation: second secret valid");

    sign("old-site-secret", V4_BODY, sig);
    rc = run_verify(&rot, SIG_HEADER, sig, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "rotation: first secret valid");

    conf_make(&rot2, "a", "b", "c", NULL);
    rc = run_verify(&rot2, SIG_HEADER, V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "three wrong secrets: declined");

    loyalty_provider_conf_free(&conf);
    loyalty_provider_conf_free(&rot);
    loyalty_provider_conf_free(&rot2);
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

    conf_make(&conf, V4_SECRET, NULL);

    /* vector 4's body: a numeric id beyond 2^53 stays exact */
    memset(&h, 0, sizeof(lt_headers_t));
    rc = run_normalize(&conf, &h, V4_BODY, &batch, &err);
    is_int(rc, LOYALTY_OK, "vector 4 body normalises");
    is_int(batch.nevents, 1, "... one event");
    ev = &batch.events[0];
    lt_str_is(&ev->id, "820982911946154508", "... id from the numeric id");
    lt_str_is(&ev->type, "unknown", "... no topic: unknown");
    is_int(ev->topic.len, 0, "... and no topic");
    lt_str_is(&ev->occurred, "2025-01-01T03:00:05Z",
              "... occurred: time of receipt");
    is_int(ev->received, (int64_t) NOW * 1000 + 7, "... received");
    lt_str_is(&ev->src, "loyaltylion", "... src");
    lt_str_is(&ev->email, "jon@example.com", "... top-level email");
    lt_str_is(&ev->data, "{\"customer\":{\"email\":\"jon@example.com\"}}",
              "... data: the identity keys");
    lt_arena_free(&arena);

    /* the unsigned header topic when the body has none */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr_add(&h, "X-LoyaltyLion-Topic", "customers/update");
    rc = run_normalize(&conf, &h, "{\"id\":\"e1\",\"customer\":{\"id\":7}}",
                       &batch, &err);
    is_int(rc, LOYALTY_OK, "header topic");
    lt_str_is(&batch.events[0].topic, "customers/update", "... used");
    lt_str_is(&batch.events[0].type, "customer.updated", "... mapped");
    lt_str_is(&batch.events[0].ext_id, "7", "... ext_id");
    lt_arena_free(&arena);

    /* the signed body wins over the unsigned header */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr_add(&h, "x-loyaltylion-topic", "loyalty_emails/unsubscribe");
    rc = run_normalize(&conf, &h,
                       "{\"id\":\"e2\",\"topic\":\"customers/update\"}",
                       &batch, &err);
    is_int(rc, LOYALTY_OK, "body and header topics differ");
    lt_str_is(&batch.events[0].topic, "customers/update",
              "... the body's is kept");
    lt_str_is(&batch.events[0].type, "customer.updated", "... and mapped");
    lt_arena_free(&arena);

    /* a custom reward's test delivery: acknowledged, nothing queued */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr_add(&h, "x-loyaltylion-topic", "rewards/store_fulfilment");
    rc = run_normalize(&conf, &h,
                       "{\"test\":true,\"reward_id\":1,\"customer_id\":2}",
                       &batch, &err);
    is_int(rc, LOYALTY_OK, "fulfilment test delivery");
    is_int(batch.nevents, 0, "... no event");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr_add(&h, "x-loyaltylion-topic", "rewards/store_fulfilment");
    rc = run_normalize(&conf, &h,
                       "{\"test\":false,\"reward_id\":1,\"customer_id\":2}",
                       &batch, &err);
    is_int(rc, LOYALTY_OK, "fulfilment");
    is_int(batch.nevents, 1, "... one event");
    lt_str_is(&batch.events[0].type, "reward.issued", "... reward.issued");
    is_int(batch.events[0].id.len, 64, "... id: the body's SHA-256");
    lt_arena_free(&arena);

    /* an id that is no valid event id: the body digest instead */
    memset(&h, 0, sizeof(lt_headers_t));
    rc = run_normalize(&conf, &h, "{\"id\":\"has space\"}", &batch, &err);
    is_int(rc, LOYALTY_OK, "invalid id");
    is_int(batch.events[0].id.len, 64, "... replaced by the body digest");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h, "", &batch, &err);
    is_int(rc, LOYALTY_DECLINED, "empty body: declined");
    is_int(err.code, LOYALTY_ERR_JSON, "... as bad JSON");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h, "{\"id\":\"x\",\"topic\":7}", &batch,
                       &err);
    is_int(rc, LOYALTY_OK, "numeric topic");
    lt_str_is(&batch.events[0].type, "unknown", "... is unknown");
    lt_arena_free(&arena);

    loyalty_provider_conf_free(&conf);
}


/* every allocation of a full program event fails once, in turn */

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
        "{\"id\":\"n1\","
        "\"topic\":\"program_events/customer.referral_complete\","
        "\"created_at\":\"2025-01-01T03:00:05Z\",\"payload\":{\"properties\":"
        "{\"customer\":{\"id\":1,\"merchant_id\":\"2\",\"email\":\"a@b.co\","
        "\"points_approved\":5,\"loyalty_tier_membership\":{\"loyalty_tier\":"
        "{\"id\":1,\"name\":\"B\",\"number\":1}}},"
        "\"referred_customer\":{\"id\":3,\"email\":\"c@d.co\"}}}}";

    conf_make(&conf, V4_SECRET, NULL);
    memset(&h, 0, sizeof(lt_headers_t));

    rc = run_normalize(&conf, &h, body, &batch, &err);
    total = arena.calls;
    is_int(rc, LOYALTY_OK, "referral event normalises");
    ok(total > 5, "... with %zu allocations to fail in turn", total);
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
