/*
 * Copyright (C) loyalty-edge authors
 *
 * stripe: "Stripe-Signature: t=...,v1=<hex>" over "t.body", keyed with
 * the whole "whsec_..." string (apis.md section 7.1, vector 5 of section
 * 10), the negative cases of section 10 (only too-old timestamps are
 * refused, as Stripe's SDKs do), and normalize after verify.  Expected
 * signatures are computed here with OpenSSL.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


/* apis.md section 10, vector 5 */
#define V5_SECRET  "whsec_test_secret"
#define V5_T       "1700000000"
#define V5_NOW     1700000000
#define V5_BODY    "{\"id\":820982911946154508,\"email\":\"jon@example.com\"}"
#define V5_HEX                                                               \
    "d2ef6f609cf69ce282bef3673dc8b4a61c6ff6e1a1a47d315ac5c3c953de84ac"
#define V5_HEADER  "t=" V5_T ",v1=" V5_HEX

#define OTHER_SECRET  "whsec_other_secret"

#define N_BODY                                                               \
    "{\"id\":\"evt_1N\",\"object\":\"event\",\"created\":1700000000,"        \
    "\"type\":\"charge.refunded\",\"livemode\":true,\"data\":{\"object\":"    \
    "{\"id\":\"ch_1\",\"object\":\"charge\",\"amount\":5000,"                 \
    "\"amount_refunded\":5000,\"refunded\":true,\"currency\":\"gbp\","        \
    "\"customer\":\"cus_9\",\"payment_intent\":\"pi_1\"}}}"


static const u_char *copy(const char *s);
static void sign(const char *key, const char *t, const char *body,
    int base64, char *out);
static int verify(const char *secret1, const char *secret2,
    const char *name, const char *header, const char *body, time_t now,
    time_t tolerance, loyalty_err_t *err);
static int one(const char *header, const char *body, time_t now,
    loyalty_err_t *err);
static void test_vector(void);
static void test_negative(void);
static void test_window(void);
static void test_lists(void);
static void test_normalize(void);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static const u_char *
copy(const char *s)
{
    return lt_arena_dup(&arena, s, strlen(s));
}


/* lower-case hex (or base64) HMAC of "t.body" keyed with key as is */

static void
sign(const char *key, const char *t, const char *body, int base64,
    char *out)
{
    char          *msg;
    size_t         i, mlen;
    u_char         mac[EVP_MAX_MD_SIZE];
    unsigned int   len;

    mlen = strlen(t) + strlen(body) + 1;
    msg = malloc(mlen + 1);
    if (msg == NULL) {
        exit(2);
    }

    snprintf(msg, mlen + 1, "%s.%s", t, body);

    HMAC(EVP_sha256(), key, (int) strlen(key), (u_char *) msg, mlen, mac,
         &len);
    free(msg);

    if (base64) {
        EVP_EncodeBlock((u_char *) out, mac, (int) len);
        return;
    }

    for (i = 0; i < len; i++) {
        sprintf(out + 2 * i, "%02x", mac[i]);
    }
}


/* name NULL: the header is not sent; conf keeps the default name */

static int
verify(const char *secret1, const char *secret2, const char *name,
    const char *header, const char *body, time_t now, time_t tolerance,
    loyalty_err_t *err)
{
    int                       rc;
    lt_headers_t              h;
    loyalty_str_t             s;
    loyalty_request_t         req;
    loyalty_provider_conf_t   conf;

    loyalty_provider_conf_init(&conf);
    loyalty_provider_conf_set(&conf, loyalty_provider_find(
                                  (const u_char *) "stripe", 6));
    conf.tolerance = tolerance;

    s = lt_str(secret1);
    if (loyalty_provider_add_secret(&conf, &s, err) != LOYALTY_OK) {
        loyalty_provider_conf_free(&conf);
        return LOYALTY_ERROR;
    }

    if (secret2 != NULL) {
        s = lt_str(secret2);
        if (loyalty_provider_add_secret(&conf, &s, err) != LOYALTY_OK) {
            loyalty_provider_conf_free(&conf);
            return LOYALTY_ERROR;
        }
    }

    memset(&h, 0, sizeof(lt_headers_t));

    if (name != NULL) {
        lt_header_set(&h, name, copy(header), strlen(header));
    }

    lt_request(&req, &h, copy(body), strlen(body), now,
               (int64_t) now * 1000);

    err->code = 0;
    err->msg[0] = '\0';

    rc = conf.provider->verify(&conf, &req, err);

    loyalty_provider_conf_free(&conf);

    return rc;
}


static int
one(const char *header, const char *body, time_t now, loyalty_err_t *err)
{
    return verify(V5_SECRET, NULL, "Stripe-Signature", header, body, now,
                  300, err);
}


static void
test_vector(void)
{
    char           hex[80];
    loyalty_err_t  err;

    is_int(one(V5_HEADER, V5_BODY, V5_NOW, &err), LOYALTY_OK,
           "vector 5 verifies with the whole whsec_ string as key");

    sign(V5_SECRET, V5_T, V5_BODY, 0, hex);
    is_str(hex, V5_HEX, "our own signer agrees with vector 5");

    is_int(verify("test_secret", NULL, "Stripe-Signature", V5_HEADER,
                  V5_BODY, V5_NOW, 300, &err),
           LOYALTY_DECLINED, "the secret without whsec_: 401");
    is_int(verify(OTHER_SECRET, V5_SECRET, "Stripe-Signature", V5_HEADER,
                  V5_BODY, V5_NOW, 300, &err),
           LOYALTY_OK, "rotation: the second configured secret verifies");
    is_int(verify(OTHER_SECRET, NULL, "Stripe-Signature", V5_HEADER,
                  V5_BODY, V5_NOW, 300, &err),
           LOYALTY_DECLINED, "another secret: 401");
    is_str(err.msg, "no matching signature", "... no matching signature");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "... a signature error");

    is_int(verify(V5_SECRET, NULL, "stripe-signature", V5_HEADER, V5_BODY,
                  V5_NOW, 300, &err),
           LOYALTY_OK, "header name in lower case");
    is_int(verify(V5_SECRET, NULL, "STRIPE-SIGNATURE", V5_HEADER, V5_BODY,
                  V5_NOW, 300, &err),
           LOYALTY_OK, "header name in upper case");
}


static void
test_negative(void)
{
    char           b64[80], header[256];
    loyalty_err_t  err;

    is_int(verify(V5_SECRET, NULL, NULL, "", V5_BODY, V5_NOW, 300, &err),
           LOYALTY_DECLINED, "missing Stripe-Signature");
    is_str(err.msg, "missing Stripe-Signature header", "... says so");

    is_int(one("", V5_BODY, V5_NOW, &err), LOYALTY_DECLINED,
           "empty Stripe-Signature");

    is_int(one("v1=" V5_HEX, V5_BODY, V5_NOW, &err), LOYALTY_DECLINED,
           "no t=");
    is_str(err.msg, "missing timestamp", "... missing timestamp");

    is_int(one("t=" V5_T, V5_BODY, V5_NOW, &err), LOYALTY_DECLINED,
           "no v1=");

    is_int(one("t=yesterday,v1=" V5_HEX, V5_BODY, V5_NOW, &err),
           LOYALTY_DECLINED, "t not a number");

    sign(V5_SECRET, V5_T, V5_BODY, 1, b64);
    snprintf(header, sizeof(header), "t=%s,v1=%s", V5_T, b64);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_DECLINED,
           "the right MAC in base64 instead of hex");

    is_int(one(V5_HEADER, "{\"id\": 820982911946154508, "
                          "\"email\": \"jon@example.com\"}", V5_NOW, &err),
           LOYALTY_DECLINED, "signature over re-serialised JSON");

    is_int(one("t=1700000001,v1=" V5_HEX, V5_BODY, V5_NOW, &err),
           LOYALTY_DECLINED, "signature made for another t");

    is_int(one(V5_HEADER, "", V5_NOW, &err), LOYALTY_DECLINED,
           "empty body under the vector's signature");

    /* what Stripe's SDK would take for the whole secret: it is verbatim */
    is_int(verify("whsec_dGVzdF9zZWNyZXQ=", NULL, "Stripe-Signature",
                  V5_HEADER, V5_BODY, V5_NOW, 300, &err),
           LOYALTY_DECLINED, "a base64 form of the secret does not verify");
}


static void
test_window(void)
{
    char           hex[80], t[32], header[256];
    loyalty_err_t  err;

    snprintf(t, sizeof(t), "%ld", (long) V5_NOW - 301);
    sign(V5_SECRET, t, V5_BODY, 0, hex);
    snprintf(header, sizeof(header), "t=%s,v1=%s", t, hex);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_DECLINED,
           "t 301 s old: 401");
    is_str(err.msg, "timestamp too old", "... too old");

    is_int(verify(V5_SECRET, NULL, "Stripe-Signature", header, V5_BODY,
                  V5_NOW, 600, &err),
           LOYALTY_OK, "tolerance 600 s: 301 s old accepted");

    snprintf(t, sizeof(t), "%ld", (long) V5_NOW - 300);
    sign(V5_SECRET, t, V5_BODY, 0, hex);
    snprintf(header, sizeof(header), "t=%s,v1=%s", t, hex);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_OK,
           "t 300 s old: inside");

    /* Stripe's SDKs accept clock skew ahead: so do we */
    snprintf(t, sizeof(t), "%ld", (long) V5_NOW + 301);
    sign(V5_SECRET, t, V5_BODY, 0, hex);
    snprintf(header, sizeof(header), "t=%s,v1=%s", t, hex);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_OK,
           "t 301 s in the future: accepted, as the SDK does");

    snprintf(t, sizeof(t), "%ld", (long) V5_NOW - 11);
    sign(V5_SECRET, t, V5_BODY, 0, hex);
    snprintf(header, sizeof(header), "t=%s,v1=%s", t, hex);
    is_int(verify(V5_SECRET, NULL, "Stripe-Signature", header, V5_BODY,
                  V5_NOW, 10, &err),
           LOYALTY_DECLINED, "tolerance 10 s: 11 s old refused");
}


static void
test_lists(void)
{
    char           good[80], bad[80], header[512];
    loyalty_err_t  err;

    sign(V5_SECRET, V5_T, V5_BODY, 0, good);
    sign(OTHER_SECRET, V5_T, V5_BODY, 0, bad);

    snprintf(header, sizeof(header), "t=%s,v1=%s,v1=00ff,v1=%s", V5_T, bad,
             good);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_OK,
           "several v1, only the last valid (a secret roll)");

    snprintf(header, sizeof(header), "t=%s,v0=%s", V5_T, good);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_DECLINED,
           "the valid MAC as v0 only is ignored");

    snprintf(header, sizeof(header), "t=%s,v2=%s,v0=%s", V5_T, good, good);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_DECLINED,
           "v2 and v0 entries are ignored");

    snprintf(header, sizeof(header), "v0=%s,v1=%s,t=%s", bad, good, V5_T);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_OK,
           "items in any order; v0 before a valid v1 skipped");

    snprintf(header, sizeof(header), "t=%s, v1=%s", V5_T, good);
    is_int(one(header, V5_BODY, V5_NOW, &err), LOYALTY_OK,
           "a space after the comma");

    /* the header is Stripe's own whatever the generic default says */
    {
        int                       rc;
        lt_headers_t              h;
        loyalty_str_t             s;
        loyalty_request_t         req;
        loyalty_provider_conf_t   conf;

        loyalty_provider_conf_init(&conf);
        loyalty_provider_conf_set(&conf, loyalty_provider_find(
                                      (const u_char *) "stripe", 6));
        conf.signature_header = "X-Signature";

        s = lt_str(V5_SECRET);
        (void) loyalty_provider_add_secret(&conf, &s, &err);

        memset(&h, 0, sizeof(lt_headers_t));
        lt_header_set(&h, "X-Signature", copy(V5_HEADER), strlen(V5_HEADER));
        lt_request(&req, &h, copy(V5_BODY), strlen(V5_BODY), V5_NOW, 0);

        rc = conf.provider->verify(&conf, &req, &err);
        is_int(rc, LOYALTY_DECLINED, "X-Signature is not Stripe-Signature");

        lt_header_set(&h, "Stripe-Signature", copy(V5_HEADER),
                      strlen(V5_HEADER));
        rc = conf.provider->verify(&conf, &req, &err);
        is_int(rc, LOYALTY_OK, "Stripe-Signature whatever conf says");

        loyalty_provider_conf_free(&conf);
    }
}


static void
test_normalize(void)
{
    int                       rc;
    char                      hex[80], header[256];
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_str_t             s;
    loyalty_batch_t           batch;
    loyalty_request_t         req;
    loyalty_provider_conf_t   conf;

    loyalty_provider_conf_init(&conf);
    loyalty_provider_conf_set(&conf, loyalty_provider_find(
                                  (const u_char *) "stripe", 6));
    s = lt_str(V5_SECRET);
    ok(loyalty_provider_add_secret(&conf, &s, &err) == LOYALTY_OK,
       "conf with the vector secret");

    sign(V5_SECRET, V5_T, N_BODY, 0, hex);
    snprintf(header, sizeof(header), "t=%s,v1=%s", V5_T, hex);

    memset(&h, 0, sizeof(lt_headers_t));
    lt_header_set(&h, "Stripe-Signature", copy(header), strlen(header));
    lt_request(&req, &h, copy(N_BODY), strlen(N_BODY), V5_NOW + 5,
               (int64_t) (V5_NOW + 5) * 1000);

    is_int(conf.provider->verify(&conf, &req, &err), LOYALTY_OK,
           "charge.refunded verifies");

    memset(&batch, 0, sizeof(loyalty_batch_t));
    rc = conf.provider->normalize(&conf, &req, &alloc, &batch, &err);
    is_int(rc, LOYALTY_OK, "... and normalizes");

    if (rc == LOYALTY_OK && batch.nevents == 1) {
        lt_str_is(&batch.events[0].id, "evt_1N", "... id = body id");
        lt_str_is(&batch.events[0].type, "order.refunded", "... type");
        lt_str_is(&batch.events[0].topic, "charge.refunded", "... topic");
        lt_str_is(&batch.events[0].occurred, "2023-11-14T22:13:20Z",
                  "... occurred = created");
        lt_str_is(&batch.events[0].ext_id, "cus_9", "... ext_id = cus_");
        lt_str_is(&batch.events[0].data,
                  "{\"refund\":{\"order_id\":\"ch_1\",\"refunded_total\":5000,"
                  "\"full\":true,\"currency\":\"GBP\","
                  "\"payment_intent\":\"pi_1\"},"
                  "\"customer\":{\"ext_id\":\"cus_9\"},"
                  "\"ref\":{\"type\":\"charge\",\"id\":\"ch_1\"},"
                  "\"livemode\":true}",
                  "... data");
    }

    /* vector 5's body verifies but is no Stripe event (numeric id) */
    lt_request(&req, &h, copy(V5_BODY), strlen(V5_BODY), V5_NOW, 0);
    memset(&batch, 0, sizeof(loyalty_batch_t));
    is_int(conf.provider->normalize(&conf, &req, &alloc, &batch, &err),
           LOYALTY_DECLINED, "a body without an evt id: declined");
    is_int(err.code, LOYALTY_ERR_INPUT, "... bad input (400)");

    {
        size_t  i, errors;

        errors = 0;

        for (i = 1; i < 40; i++) {
            lt_request(&req, &h, copy(N_BODY), strlen(N_BODY), V5_NOW, 0);
            memset(&batch, 0, sizeof(loyalty_batch_t));
            arena.calls = 0;
            arena.fail_at = i;
            rc = conf.provider->normalize(&conf, &req, &alloc, &batch, &err);
            arena.fail_at = 0;

            if (rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM) {
                errors++;

            } else if (rc != LOYALTY_OK) {
                errors = 1000;
            }
        }

        ok(errors > 0 && errors < 1000,
           "allocation failures give LOYALTY_ERROR/NOMEM (%zu)", errors);
    }

    loyalty_provider_conf_free(&conf);
}


int
main(void)
{
    test_vector();
    test_negative();
    test_window();
    test_lists();
    test_normalize();

    lt_arena_free(&arena);

    return done_testing();
}
