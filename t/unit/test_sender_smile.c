/*
 * Copyright (C) loyalty-edge authors
 *
 * smile: HMAC-SHA256 of the raw body in X-Smile-Hmac-Sha256, base64 by
 * default (apis.md section 4, UNCONFIRMED, so loyalty_signature_header
 * and loyalty_signature_encoding override both), every secret tried;
 * ping is acknowledged with no event; the event id is the
 * loyalty_id_header value or the body's SHA-256.  Smile signs no
 * timestamp, so there are no stale/future cases.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


/* apis.md section 10, vector 4 (the Shopify-style scheme Smile is said
 * to follow) */
#define V4_SECRET   "hush"
#define V4_BODY     "{\"id\":820982911946154508,\"email\":\"jon@example.com\"}"
#define V4_B64      "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
#define V4_HEX                                                               \
    "0f450c5e6863c01462e32eba4e6849ac3961400043ef32367e6de9ebf40b328f"
#define V4_RESERIALISED                                                      \
    "{\"id\": 820982911946154508, \"email\": \"jon@example.com\"}"

#define SIG_HEADER  "X-Smile-Hmac-Sha256"
#define NOW         1735700405

#define CUSTOMER_BODY                                                        \
    "{\"account_id\":123,\"topic\":\"customer/updated\",\"data\":"         \
    "{\"customer\":{\"id\":304169228,\"email\":\"Ada@Example.com\","        \
    "\"state\":\"member\",\"date_of_birth\":\"1004-03-02\","                \
    "\"points_balance\":\"1250\",\"vip_status\":{\"vip_tier_id\":5},"       \
    "\"updated_at\":\"2024-11-24T10:58:30+01:00\"}}}"


static void hdr_add(lt_headers_t *h, const char *name, const char *value);
static void sign(const char *key, const char *body, char *out);
static void conf_make(loyalty_provider_conf_t *conf, ...);
static int run_verify(loyalty_provider_conf_t *conf, const char *header,
    const char *sig, const char *body, loyalty_err_t *err);
static int run_normalize(loyalty_provider_conf_t *conf, lt_headers_t *h,
    const char *body, loyalty_batch_t *batch, loyalty_err_t *err);
static void sha256_hex(const char *body, char *out);
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


/* the smile sender with the secrets given, NULL-terminated */

static void
conf_make(loyalty_provider_conf_t *conf, ...)
{
    va_list  args;

    va_start(args, conf);
    lt_conf_va(conf, "smile", args);
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
sha256_hex(const char *body, char *out)
{
    size_t  i;
    u_char  md[SHA256_DIGEST_LENGTH];

    SHA256((const u_char *) body, strlen(body), md);

    for (i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        sprintf(out + 2 * i, "%02x", md[i]);
    }
}


static void
test_verify(void)
{
    int                       rc;
    char                      sig[128];
    loyalty_err_t             err;
    loyalty_provider_conf_t   conf, rot, hexconf;

    conf_make(&conf, V4_SECRET, NULL);

    is_str(conf.signature_header, SIG_HEADER,
           "default header X-Smile-Hmac-Sha256");
    is_int(conf.encoding, LOYALTY_ENC_BASE64, "default encoding base64");

    rc = run_verify(&conf, SIG_HEADER, V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "vector 4 verifies");

    rc = run_verify(&conf, "x-smile-hmac-SHA256", V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "mixed-case header name");

    rc = run_verify(&conf, NULL, NULL, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "missing header: declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "... as a signature error");
    ok(strstr(err.msg, SIG_HEADER) != NULL, "... naming the header (%s)",
       err.msg);

    rc = run_verify(&conf, SIG_HEADER, V4_HEX, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "hex where base64 is expected: declined");

    rc = run_verify(&conf, SIG_HEADER, V4_B64, V4_RESERIALISED, &err);
    is_int(rc, LOYALTY_DECLINED, "re-serialised JSON: declined");

    sign("not-hush", V4_BODY, sig);
    rc = run_verify(&conf, SIG_HEADER, sig, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "wrong key: declined");

    rc = run_verify(&conf, SIG_HEADER, "", V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "empty header: declined");

    /* the header and encoding directives */
    conf_make(&hexconf, V4_SECRET, NULL);
    hexconf.signature_header = "X-Signature";
    hexconf.encoding = LOYALTY_ENC_HEX;

    rc = run_verify(&hexconf, "X-Signature", V4_HEX, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "configured header and hex: verifies");

    rc = run_verify(&hexconf, "X-Signature", V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "base64 where hex is configured: declined");

    rc = run_verify(&hexconf, SIG_HEADER, V4_HEX, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED,
           "the default header when another is configured: declined");

    /* rotation */
    conf_make(&rot, "old-app-secret", V4_SECRET, NULL);
    rc = run_verify(&rot, SIG_HEADER, V4_B64, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "rotation: second secret valid");

    sign("old-app-secret", V4_BODY, sig);
    rc = run_verify(&rot, SIG_HEADER, sig, V4_BODY, &err);
    is_int(rc, LOYALTY_OK, "rotation: first secret valid");

    loyalty_provider_conf_free(&conf);
    loyalty_provider_conf_free(&hexconf);
    loyalty_provider_conf_free(&rot);
}


static void
test_normalize(void)
{
    int                       rc;
    char                      digest[65];
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_batch_t           batch;
    loyalty_event_t          *ev;
    loyalty_provider_conf_t   conf;

    conf_make(&conf, V4_SECRET, NULL);
    memset(&h, 0, sizeof(lt_headers_t));

    rc = run_normalize(&conf, &h,
                       "{\"account_id\":123,\"topic\":\"ping\",\"data\":{}}",
                       &batch, &err);
    is_int(rc, LOYALTY_OK, "ping normalises");
    is_int(batch.nevents, 0, "... to no event");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h, CUSTOMER_BODY, &batch, &err);
    is_int(rc, LOYALTY_OK, "customer/updated normalises");
    is_int(batch.nevents, 1, "... one event");
    ev = &batch.events[0];
    sha256_hex(CUSTOMER_BODY, digest);
    lt_str_is(&ev->id, digest, "... id: SHA-256 of the body");
    lt_str_is(&ev->type, "customer.updated", "... customer.updated");
    lt_str_is(&ev->occurred, "2024-11-24T09:58:30Z",
              "... occurred: the customer's updated_at in UTC");
    lt_str_is(&ev->email, "ada@example.com", "... email lower-cased");
    lt_str_is(&ev->ext_id, "304169228", "... ext_id: Smile's id");
    is_int(ev->store_cid.len, 0, "... no store_cid");
    ok(strstr((const char *) ev->data.data, "birthday") == NULL,
       "... birth year 1004: no birthday");
    ok(strstr((const char *) ev->data.data,
              "\"points_balance\":1250,\"tier\":{\"id\":\"5\"}") != NULL,
       "... balance from a string, tier id from vip_status");
    lt_arena_free(&arena);

    /* loyalty_id_header */
    conf.id_header = "X-Smile-Event-Id";

    memset(&h, 0, sizeof(lt_headers_t));
    hdr_add(&h, "x-smile-event-id", "evt_42");
    rc = run_normalize(&conf, &h, CUSTOMER_BODY, &batch, &err);
    is_int(rc, LOYALTY_OK, "with an id header");
    lt_str_is(&batch.events[0].id, "evt_42", "... id from the header");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    rc = run_normalize(&conf, &h, CUSTOMER_BODY, &batch, &err);
    is_int(rc, LOYALTY_DECLINED, "configured id header missing: declined");
    is_int(err.code, LOYALTY_ERR_INPUT, "... as bad input");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr_add(&h, "X-Smile-Event-Id", "two words");
    rc = run_normalize(&conf, &h, CUSTOMER_BODY, &batch, &err);
    is_int(rc, LOYALTY_DECLINED, "invalid id header: declined");
    lt_arena_free(&arena);

    /* a ping needs no id */
    memset(&h, 0, sizeof(lt_headers_t));
    rc = run_normalize(&conf, &h, "{\"topic\":\"ping\"}", &batch, &err);
    is_int(rc, LOYALTY_OK, "ping without the id header");
    is_int(batch.nevents, 0, "... no event");
    lt_arena_free(&arena);

    conf.id_header = NULL;

    rc = run_normalize(&conf, &h, "{\"topic\":\"ping\"", &batch, &err);
    is_int(rc, LOYALTY_DECLINED, "truncated ping: declined");
    is_int(err.code, LOYALTY_ERR_JSON, "... as bad JSON");
    lt_arena_free(&arena);

    rc = run_normalize(&conf, &h, "{\"topic\":\"PING\"}", &batch, &err);
    is_int(rc, LOYALTY_OK, "PING is not ping");
    is_int(batch.nevents, 1, "... and is queued");
    lt_str_is(&batch.events[0].type, "unknown", "... as unknown");
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

    conf_make(&conf, V4_SECRET, NULL);
    memset(&h, 0, sizeof(lt_headers_t));

    rc = run_normalize(&conf, &h, CUSTOMER_BODY, &batch, &err);
    total = arena.calls;
    is_int(rc, LOYALTY_OK, "customer event normalises");
    ok(total > 3, "... with %zu allocations to fail in turn", total);
    lt_arena_free(&arena);

    bad = 0;

    for (n = 1; n <= total; n++) {
        arena.fail_at = n;
        rc = run_normalize(&conf, &h, CUSTOMER_BODY, &batch, &err);

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
