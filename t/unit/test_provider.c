/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_provider: the registry, configuration (secrets, rotation), and
 * the "standard" (Standard Webhooks) and "generic" (HMAC of the body)
 * senders end to end through a fake transport: verify, then normalise
 * into envelope v1 events.  Expected signatures and digests are computed
 * here with OpenSSL directly, or are the vectors of
 * shared/reference/apis.md section 10.
 *
 * check_ok() tests pin fixes of core bugs found while writing them.
 */


#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


#define S(s)  ((loyalty_str_t) loyalty_string(s))


/* apis.md section 10, vector 1 (Standard Webhooks) */
#define V1_SECRET   "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define V1_KEY_B64  "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define V1_ID       "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define V1_TS       "1614265330"
#define V1_NOW      1614265330
#define V1_BODY     "{\"test\": 2432232314}"
#define V1_SIG      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define V1_TIME     "2021-02-25T15:02:10Z"

/* another valid secret: base64 of "wrongwrongwrongwrong" */
#define WRONG_SECRET  "whsec_d3Jvbmd3cm9uZ3dyb25nd3Jvbmc="

/* vector 4 (Shopify / LoyaltyLion style): HMAC of the raw body */
#define V4_SECRET   "hush"
#define V4_BODY     "{\"id\":820982911946154508,\"email\":\"jon@example.com\"}"
#define V4_B64      "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
#define V4_HEX                                                               \
    "0f450c5e6863c01462e32eba4e6849ac3961400043ef32367e6de9ebf40b328f"
/* computed with: printf %s "$V4_BODY" | openssl dgst -sha1 -hmac hush */
#define V4_SHA1_HEX "a14b110eb3eb15d651646878b8dee97eb197df36"
#define V4_SHA1_B64 "oUsRDrPrFdZRZGh4uN7pfrGX3zY="
/* printf %s "$V4_BODY" | sha256sum */
#define V4_SHA256                                                            \
    "8c1b8414bf50d14f7791bbc3ebd5692d0e72cd4bd6163f796c28fd8b873c2ab0"

/* the body of the normalisation brief */
#define N_BODY                                                               \
    "{\"type\":\"customer.updated\",\"timestamp\":\"2024-01-02T03:04:05Z\","  \
    "\"data\":{\"customer\":{\"email\":\" A@B.co \",\"ext_id\":\"x1\","      \
    "\"store_cid\":12345678901234567890,\"phone\":\"+4915112345678\"}}}"
#define N_DATA                                                               \
    "{\"customer\":{\"email\":\" A@B.co \",\"ext_id\":\"x1\","               \
    "\"store_cid\":12345678901234567890,\"phone\":\"+4915112345678\"}}"

/* 2024-02-29T12:00:00Z, the "now" of generic tests */
#define G_NOW       1709208000
#define G_TIME      "2024-02-29T12:00:00Z"


static const u_char *copy(const char *s, size_t len);
static void hdr_add(lt_headers_t *h, const char *name, const char *value);
static void request(loyalty_request_t *req, lt_headers_t *h,
    const char *body, time_t now);
static void hex(char *dst, const u_char *src, size_t len);
static void body_sig(const EVP_MD *md, const char *key, const char *body,
    int base64, char *out);
static void std_sig(const char *id, const char *ts, const char *body,
    char *out);
static void std_request(loyalty_request_t *req, lt_headers_t *h,
    const char *id, const char *ts, const char *body, time_t now);
static void conf_with(loyalty_provider_conf_t *conf, const char *provider,
    int md, int enc, ...);
static int verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_batch_t *batch,
    loyalty_err_t *err);
static void test_registry(void);
static void test_conf(void);
static void test_standard_verify(void);
static void test_standard_e2e(void);
static void test_standard_normalize(void);
static void test_standard_reject(void);
static void test_generic_verify(void);
static void test_generic_normalize(void);
static void test_generic_fields(void);
static int event_sane(const loyalty_event_t *ev);
static void nomem(const loyalty_provider_conf_t *conf, const char *name,
    const char *body, int standard);
static void test_nomem(void);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


/*
 * Bodies and header values live in exact-size heap blocks without a
 * terminating NUL, as nginx buffers do, so ASan reports any read past
 * their end.  They are test memory, not the provider's: the arena's
 * call counter is restored.
 */

static const u_char *
copy(const char *s, size_t len)
{
    u_char  *p;
    size_t   calls, fail_at;

    calls = arena.calls;
    fail_at = arena.fail_at;
    arena.fail_at = 0;

    p = lt_arena_alloc(&arena, len ? len : 1);

    arena.calls = calls;
    arena.fail_at = fail_at;

    if (p == NULL) {
        diag("out of memory");
        exit(2);
    }

    memcpy(p, s, len);

    return p;
}


static void
hdr_add(lt_headers_t *h, const char *name, const char *value)
{
    lt_header_set(h, name, copy(value, strlen(value)), strlen(value));
}


static void
request(loyalty_request_t *req, lt_headers_t *h, const char *body,
    time_t now)
{
    lt_request(req, h, copy(body, strlen(body)), strlen(body), now,
               (int64_t) now * 1000 + 123);
}


static void
hex(char *dst, const u_char *src, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        sprintf(dst + 2 * i, "%02x", src[i]);
    }

    dst[2 * len] = '\0';
}


/* HMAC of the body with OpenSSL, hex or base64 */

static void
body_sig(const EVP_MD *md, const char *key, const char *body, int base64,
    char *out)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  len;

    if (HMAC(md, key, (int) strlen(key), (const u_char *) body,
             strlen(body), mac, &len) == NULL)
    {
        diag("HMAC failed");
        exit(2);
    }

    if (base64) {
        EVP_EncodeBlock((u_char *) out, mac, (int) len);

    } else {
        hex(out, mac, len);
    }
}


/* "v1,<base64>" over "id.ts.body" with the vector 1 key */

static void
std_sig(const char *id, const char *ts, const char *body, char *out)
{
    int            klen;
    char          *msg;
    size_t         mlen;
    u_char         key[64], mac[EVP_MAX_MD_SIZE];
    unsigned int   len;

    klen = EVP_DecodeBlock(key, (const u_char *) V1_KEY_B64,
                           (int) strlen(V1_KEY_B64));
    if (klen != 24) {
        diag("key decode: %d", klen);
        exit(2);
    }

    mlen = strlen(id) + strlen(ts) + strlen(body) + 3;
    msg = malloc(mlen);
    if (msg == NULL) {
        exit(2);
    }

    mlen = (size_t) snprintf(msg, mlen, "%s.%s.%s", id, ts, body);

    if (HMAC(EVP_sha256(), key, klen, (u_char *) msg, mlen, mac, &len)
        == NULL)
    {
        exit(2);
    }

    free(msg);

    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((u_char *) out + 3, mac, (int) len);
}


static void
std_request(loyalty_request_t *req, lt_headers_t *h, const char *id,
    const char *ts, const char *body, time_t now)
{
    char  sig[128];

    memset(h, 0, sizeof(lt_headers_t));

    std_sig(id, ts, body, sig);

    hdr_add(h, "webhook-id", id);
    hdr_add(h, "webhook-timestamp", ts);
    hdr_add(h, "webhook-signature", sig);

    request(req, h, body, now);
}


/* md and enc (-1: default) are set before the secrets, as the module does */

static void
conf_with(loyalty_provider_conf_t *conf, const char *provider, int md,
    int enc, ...)
{
    va_list         args;
    const char     *secret;
    loyalty_err_t   err;
    loyalty_str_t   s;

    loyalty_provider_conf_init(conf);

    conf->provider = loyalty_provider_find((const u_char *) provider,
                                           strlen(provider));
    if (conf->provider == NULL) {
        diag("no provider %s", provider);
        exit(2);
    }

    if (md >= 0) {
        conf->md = (loyalty_md_e) md;
    }

    if (enc >= 0) {
        conf->encoding = (loyalty_enc_e) enc;
    }

    va_start(args, enc);

    while ((secret = va_arg(args, const char *)) != NULL) {
        s.data = (const u_char *) secret;
        s.len = strlen(secret);

        if (loyalty_provider_add_secret(conf, &s, &err) != LOYALTY_OK) {
            diag("add_secret %s: %s", secret, err.msg);
            exit(2);
        }
    }

    va_end(args);
}


static int
verify(const loyalty_provider_conf_t *conf, const loyalty_request_t *req,
    loyalty_err_t *err)
{
    memset(err, 0, sizeof(loyalty_err_t));

    return conf->provider->verify(conf, req, err);
}


static int
normalize(const loyalty_provider_conf_t *conf, const loyalty_request_t *req,
    loyalty_batch_t *batch, loyalty_err_t *err)
{
    memset(err, 0, sizeof(loyalty_err_t));
    memset(batch, 0, sizeof(loyalty_batch_t));

    return conf->provider->normalize(conf, req, &alloc, batch, err);
}


static void
test_registry(void)
{
    size_t                     i;
    const char                *names;
    const loyalty_provider_t  *p;

    static const char  *absent[] = {
        "Standard", "STANDARD", "Generic", "Shopify", "svix",
        "big-commerce", "", "standar", "standardx", "generic ", " generic",
        "salesforce_", NULL
    };

    p = loyalty_provider_find((const u_char *) "standard", 8);
    ok(p == &loyalty_provider_standard, "registry: standard");
    ok(p != NULL && strcmp(p->name, "standard") == 0
       && p->key != NULL && p->verify != NULL && p->normalize != NULL,
       "registry: standard is complete");

    p = loyalty_provider_find((const u_char *) "generic", 7);
    ok(p == &loyalty_provider_generic, "registry: generic");
    ok(p != NULL && strcmp(p->name, "generic") == 0
       && p->key != NULL && p->verify != NULL && p->normalize != NULL,
       "registry: generic is complete");

    for (i = 0; absent[i] != NULL; i++) {
        p = loyalty_provider_find((const u_char *) absent[i],
                                  strlen(absent[i]));
        if (!ok(p == NULL, "registry: unknown name not found")) {
            diag("  name \"%s\"", absent[i]);
        }
    }

    /* the length bounds the name */
    p = loyalty_provider_find((const u_char *) "standard", 5);
    ok(p == NULL, "registry: a prefix is not a name");
    p = loyalty_provider_find((const u_char *) "genericXYZ", 7);
    ok(p == &loyalty_provider_generic, "registry: length-bounded name");

#define NAMES  "standard, generic, shopify, bigcommerce, loyaltylion, "      \
               "smile, yotpo, voyado, stripe, salesforce"

    names = loyalty_provider_names();
    is_str(names, NAMES, "registry: names");
    ok(loyalty_provider_names() == names
       && strcmp(loyalty_provider_names(), NAMES) == 0,
       "registry: names stable across calls");

    /* every sender is complete and found by its own name */
    for (i = 0; i < 10; i++) {
        static const char  *all[] = {
            "standard", "generic", "shopify", "bigcommerce", "loyaltylion",
            "smile", "yotpo", "voyado", "stripe", "salesforce"
        };

        p = loyalty_provider_find((const u_char *) all[i], strlen(all[i]));
        ok(p != NULL && strcmp(p->name, all[i]) == 0 && p->key != NULL
           && p->verify != NULL && p->normalize != NULL,
           "registry: %s is complete", all[i]);
    }
}


static void
test_conf(void)
{
    int                      rc;
    size_t                   i;
    loyalty_err_t            err;
    loyalty_str_t            s;
    loyalty_provider_conf_t  conf;

    memset(&conf, 0x5a, sizeof(conf));
    loyalty_provider_conf_init(&conf);

    ok(conf.provider == NULL && conf.keys == NULL && conf.nkeys == 0
       && conf.nalloc == 0 && conf.id_header == NULL,
       "conf_init: empty");
    is_int(conf.tolerance, 300, "conf_init: tolerance 300 s");
    is_int(conf.md, LOYALTY_MD_SHA256, "conf_init: SHA-256");
    is_int(conf.encoding, LOYALTY_ENC_HEX, "conf_init: hex");
    is_str(conf.signature_header, "X-Signature",
           "conf_init: X-Signature header");

    s = S(V1_SECRET);
    memset(&err, 0, sizeof(err));
    rc = loyalty_provider_add_secret(&conf, &s, &err);
    is_int(rc, LOYALTY_ERROR, "add_secret without a sender");
    is_int(err.code, LOYALTY_ERR_CONFIG, "no sender: ERR_CONFIG");

    conf.provider = &loyalty_provider_standard;

    s = S("whsec_!!!notbase64");
    memset(&err, 0, sizeof(err));
    rc = loyalty_provider_add_secret(&conf, &s, &err);
    is_int(rc, LOYALTY_ERROR, "standard: invalid base64 secret refused");
    is_int(err.code, LOYALTY_ERR_CONFIG, "invalid secret: ERR_CONFIG");
    ok(strstr(err.msg, "notbase64") == NULL,
       "invalid secret: message does not echo it (%s)", err.msg);

    s = S("A");
    rc = loyalty_provider_add_secret(&conf, &s, &err);
    is_int(rc, LOYALTY_ERROR, "standard: one-character secret refused");

    s = S("whsec_");
    rc = loyalty_provider_add_secret(&conf, &s, &err);
    is_int(rc, LOYALTY_ERROR, "standard: empty secret refused");
    is_int(conf.nkeys, 0, "refused secrets add no key");

    conf.provider = &loyalty_provider_generic;
    s = S("");
    rc = loyalty_provider_add_secret(&conf, &s, &err);
    is_int(rc, LOYALTY_ERROR, "generic: empty secret refused");

    /* growth past the first allocation */
    conf.provider = &loyalty_provider_standard;
    s = S(V1_SECRET);

    for (i = 0; i < 5; i++) {
        rc = loyalty_provider_add_secret(&conf, &s, &err);
        if (rc != LOYALTY_OK) {
            break;
        }
    }

    is_int(i, 5, "add_secret: five keys");
    is_int(conf.nkeys, 5, "add_secret: nkeys 5");
    ok(conf.nalloc >= 5, "add_secret: array grown");

    loyalty_provider_conf_free(&conf);
    ok(conf.keys == NULL && conf.nkeys == 0 && conf.nalloc == 0,
       "conf_free: emptied");
    loyalty_provider_conf_free(&conf);
    ok(conf.keys == NULL, "conf_free: twice is harmless");
}


static void
test_standard_verify(void)
{
    int                      rc;
    lt_headers_t             h;
    loyalty_err_t            err;
    loyalty_request_t        req;
    loyalty_provider_conf_t  conf, wrong, rotated, nokeys;

    conf_with(&conf, "standard", -1, -1, V1_SECRET, NULL);
    conf_with(&wrong, "standard", -1, -1, WRONG_SECRET, NULL);
    conf_with(&rotated, "standard", -1, -1, WRONG_SECRET, V1_SECRET, NULL);
    conf_with(&nokeys, "standard", -1, -1, NULL);

    memset(&h, 0, sizeof(h));
    hdr_add(&h, "webhook-id", V1_ID);
    hdr_add(&h, "webhook-timestamp", V1_TS);
    hdr_add(&h, "webhook-signature", V1_SIG);
    request(&req, &h, V1_BODY, V1_NOW);

    rc = verify(&conf, &req, &err);
    is_int(rc, LOYALTY_OK, "standard: vector 1 verifies");
    if (rc != LOYALTY_OK) {
        diag("  %s", err.msg);
    }

    rc = verify(&rotated, &req, &err);
    is_int(rc, LOYALTY_OK, "standard: second of two keys verifies");

    rc = verify(&wrong, &req, &err);
    is_int(rc, LOYALTY_DECLINED, "standard: wrong secret declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "wrong secret: ERR_SIGNATURE");
    is_str(err.msg, "no matching signature", "wrong secret: message");

    rc = verify(&nokeys, &req, &err);
    is_int(rc, LOYALTY_ERROR, "standard: no keys is a configuration error");
    is_int(err.code, LOYALTY_ERR_CONFIG, "no keys: ERR_CONFIG");

    /* tolerance 300 s both ways */
    req.now = V1_NOW + 300;
    is_int(verify(&conf, &req, &err), LOYALTY_OK, "standard: 300 s old ok");
    req.now = V1_NOW - 300;
    is_int(verify(&conf, &req, &err), LOYALTY_OK, "standard: 300 s ahead ok");

    req.now = V1_NOW + 301;
    rc = verify(&conf, &req, &err);
    is_int(rc, LOYALTY_DECLINED, "standard: 301 s old declined");
    is_str(err.msg, "timestamp too old", "stale: message");

    req.now = V1_NOW - 301;
    rc = verify(&conf, &req, &err);
    is_int(rc, LOYALTY_DECLINED, "standard: 301 s ahead declined");
    is_str(err.msg, "timestamp too new", "future: message");

    /* the tolerance comes from the configuration */
    conf.tolerance = 600;
    req.now = V1_NOW + 599;
    is_int(verify(&conf, &req, &err), LOYALTY_OK,
           "standard: tolerance read from conf");
    conf.tolerance = 300;
    req.now = V1_NOW;

    /* tampered body */
    request(&req, &h, "{\"test\": 2432232315}", V1_NOW);
    is_int(verify(&conf, &req, &err), LOYALTY_DECLINED,
           "standard: tampered body declined");
    request(&req, &h, "{\"test\":2432232314}", V1_NOW);
    is_int(verify(&conf, &req, &err), LOYALTY_DECLINED,
           "standard: re-serialised body declined");

    /* header names in mixed case: the transport's lookup finds them */
    memset(&h, 0, sizeof(h));
    hdr_add(&h, "Webhook-Id", V1_ID);
    hdr_add(&h, "WEBHOOK-TIMESTAMP", V1_TS);
    hdr_add(&h, "Webhook-Signature", V1_SIG);
    request(&req, &h, V1_BODY, V1_NOW);
    is_int(verify(&conf, &req, &err), LOYALTY_OK,
           "standard: mixed-case header names");

    /* several signatures, only the last valid; other versions ignored */
    memset(&h, 0, sizeof(h));
    hdr_add(&h, "webhook-id", V1_ID);
    hdr_add(&h, "webhook-timestamp", V1_TS);
    hdr_add(&h, "webhook-signature",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= "
            "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= " V1_SIG);
    request(&req, &h, V1_BODY, V1_NOW);
    is_int(verify(&conf, &req, &err), LOYALTY_OK,
           "standard: last of several signatures matches");

    /* each header missing */
    memset(&h, 0, sizeof(h));
    hdr_add(&h, "webhook-timestamp", V1_TS);
    hdr_add(&h, "webhook-signature", V1_SIG);
    request(&req, &h, V1_BODY, V1_NOW);
    rc = verify(&conf, &req, &err);
    is_int(rc, LOYALTY_DECLINED, "standard: missing webhook-id declined");
    is_str(err.msg, "missing webhook-id header", "missing id: message");

    memset(&h, 0, sizeof(h));
    hdr_add(&h, "webhook-id", V1_ID);
    hdr_add(&h, "webhook-signature", V1_SIG);
    request(&req, &h, V1_BODY, V1_NOW);
    rc = verify(&conf, &req, &err);
    is_int(rc, LOYALTY_DECLINED, "standard: missing timestamp declined");
    is_str(err.msg, "missing webhook-timestamp header",
           "missing timestamp: message");

    memset(&h, 0, sizeof(h));
    hdr_add(&h, "webhook-id", V1_ID);
    hdr_add(&h, "webhook-timestamp", V1_TS);
    request(&req, &h, V1_BODY, V1_NOW);
    rc = verify(&conf, &req, &err);
    is_int(rc, LOYALTY_DECLINED, "standard: missing signature declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "missing header: ERR_SIGNATURE");
    is_str(err.msg, "missing webhook-signature header",
           "missing signature: message");

    /* the X-Signature of generic means nothing to standard */
    memset(&h, 0, sizeof(h));
    hdr_add(&h, "X-Signature", V1_SIG);
    request(&req, &h, V1_BODY, V1_NOW);
    is_int(verify(&conf, &req, &err), LOYALTY_DECLINED,
           "standard: no Standard Webhooks headers declined");

    loyalty_provider_conf_free(&conf);
    loyalty_provider_conf_free(&wrong);
    loyalty_provider_conf_free(&rotated);
    loyalty_provider_conf_free(&nokeys);
}


/* the module's sequence: verify, normalise, stamp store/corr, encode */

static void
test_standard_e2e(void)
{
    int                      rc;
    size_t                   n;
    lt_headers_t             h;
    loyalty_err_t            err;
    loyalty_str_t            fv[2 * LOYALTY_ENVELOPE_FIELDS];
    loyalty_batch_t          batch;
    loyalty_event_t         *ev, back;
    loyalty_request_t        req;
    loyalty_provider_conf_t  conf;

    conf_with(&conf, "standard", -1, -1, V1_SECRET, NULL);

    std_request(&req, &h, "msg_2Ab", V1_TS, N_BODY, V1_NOW + 5);

    rc = verify(&conf, &req, &err);
    is_int(rc, LOYALTY_OK, "standard e2e: signed body verifies");

    rc = normalize(&conf, &req, &batch, &err);
    is_int(rc, LOYALTY_OK, "standard e2e: normalised");

    if (rc != LOYALTY_OK || batch.nevents != 1) {
        diag("  %s", err.msg);
        loyalty_provider_conf_free(&conf);
        return;
    }

    is_int(batch.nevents, 1, "standard e2e: one event");
    ev = &batch.events[0];

    lt_str_is(&ev->id, "msg_2Ab", "standard: id is webhook-id");
    lt_str_is(&ev->src, "standard", "standard: src");
    lt_str_is(&ev->type, "customer.updated", "standard: canonical type");
    lt_str_is(&ev->topic, "customer.updated", "standard: topic");
    lt_str_is(&ev->occurred, "2024-01-02T03:04:05Z",
           "standard: occurred from the body");
    lt_str_is(&ev->data, N_DATA,
           "standard: data is the data object, compact, number text kept");
    lt_str_is(&ev->email, "a@b.co", "standard: email trimmed, lower-cased");
    lt_str_is(&ev->ext_id, "x1", "standard: ext_id");
    lt_str_is(&ev->store_cid, "12345678901234567890",
           "standard: store_cid number as its text");
    lt_str_is(&ev->phone, "+4915112345678", "standard: phone");
    ok(ev->received == (int64_t) (V1_NOW + 5) * 1000 + 123,
       "standard: received is now_ms");
    ok(ev->store.len == 0 && ev->corr.len == 0 && ev->raw.len == 0,
       "standard: store, corr and raw left to the transport");

    ev->store = S("eu");
    ev->corr = S("req-1");

    n = loyalty_envelope_encode(ev, fv);
    is_int(n, 2 * LOYALTY_ENVELOPE_FIELDS - 2, "standard e2e: 14 pairs");

    rc = loyalty_envelope_decode(fv, n, &back, &err);
    is_int(rc, LOYALTY_OK, "standard e2e: the entry decodes");
    is_mem(back.data.data, back.data.len, ev->data.data, ev->data.len,
           "standard e2e: data survives the envelope");

    loyalty_provider_conf_free(&conf);
}


static void
test_standard_normalize(void)
{
    int                      rc;
    lt_headers_t             h;
    loyalty_err_t            err;
    loyalty_batch_t          batch;
    loyalty_event_t         *ev;
    loyalty_request_t        req;
    loyalty_provider_conf_t  conf;

    conf_with(&conf, "standard", -1, -1, V1_SECRET, NULL);

#define NORM(body, now)                                                      \
    std_request(&req, &h, "msg_1", V1_TS, body, now);                        \
    rc = normalize(&conf, &req, &batch, &err);                               \
    ev = (rc == LOYALTY_OK && batch.nevents == 1) ? batch.events : NULL;     \
    if (ev == NULL) {                                                        \
        ok(0, "normalize %s", body);                                         \
        diag("  rc %d: %s", rc, err.msg);                                    \
    }                                                                        \
    if (ev != NULL)

    /* pretty-printed, money and big ids */
    NORM("{ \"type\": \"order.paid\",\n  \"timestamp\": "
         "\"2024-01-02T03:04:05.123+01:00\",\n  \"data\": { \"order\": "
         "{ \"id\": \"1001\", \"total\": 12.10, \"n\": 18446744073709551615 },"
         " \"customer\": { \"email\": \"X@Y.ZZ\" } } }", V1_NOW) {
        lt_str_is(&ev->type, "order.paid", "standard: order.paid");
        lt_str_is(&ev->occurred, "2024-01-02T02:04:05.123Z",
               "standard: occurred in UTC, fraction kept");
        lt_str_is(&ev->data,
               "{\"order\":{\"id\":\"1001\",\"total\":12.10,"
               "\"n\":18446744073709551615},\"customer\":{\"email\":"
               "\"X@Y.ZZ\"}}",
               "standard: data compact, 12.10 and UINT64_MAX kept");
        lt_str_is(&ev->email, "x@y.zz", "standard: email of data.customer");
    }

    /* no timestamp in the body: webhook-timestamp, not now */
    NORM("{\"type\":\"customer.created\",\"data\":{}}", V1_NOW + 100) {
        lt_str_is(&ev->occurred, V1_TIME,
               "standard: occurred from webhook-timestamp");
        lt_str_is(&ev->data, "{}", "standard: empty data object");
    }

    NORM("{\"type\":\"customer.created\",\"timestamp\":\"yesterday\","
         "\"data\":{}}", V1_NOW + 100) {
        lt_str_is(&ev->occurred, V1_TIME,
               "standard: unparsable timestamp falls back to the header");
    }

    NORM("{\"type\":\"customer.created\",\"timestamp\":1700000000,"
         "\"data\":{}}", V1_NOW) {
        lt_str_is(&ev->occurred, "2023-11-14T22:13:20Z",
               "standard: integer timestamp as RFC 3339");
    }

    NORM("{\"type\":\"customer.created\",\"timestamp\":\"2024-13-45T99:99:99"
         "Z\",\"data\":{}}", V1_NOW) {
        lt_str_is(&ev->occurred, V1_TIME,
               "standard: impossible date falls back to the header");
    }

    /* unknown topic */
    NORM("{\"type\":\"contact.created\",\"data\":{\"email\":\"q@r.st\"}}",
         V1_NOW) {
        lt_str_is(&ev->type, "unknown", "standard: unknown topic -> unknown");
        lt_str_is(&ev->topic, "contact.created", "standard: topic kept");
        lt_str_is(&ev->email, "q@r.st", "standard: email on data itself");
    }

    NORM("{\"data\":{\"a\":1}}", V1_NOW) {
        lt_str_is(&ev->type, "unknown", "standard: no type -> unknown");
        is_int(ev->topic.len, 0, "standard: no type -> no topic");
    }

    /* "topic" and "event" are generic's, not standard's */
    NORM("{\"topic\":\"order.paid\",\"event\":\"order.paid\",\"data\":{}}",
         V1_NOW) {
        lt_str_is(&ev->type, "unknown",
                  "standard: only \"type\" names the topic");
    }

    /* data missing or not an object: the whole body */
    NORM("{\"type\":\"order.paid\",\"email\":\"A@b.cd\"}", V1_NOW) {
        lt_str_is(&ev->data, "{\"type\":\"order.paid\",\"email\":\"A@b.cd\"}",
               "standard: no data member -> the whole body");
        lt_str_is(&ev->email, "a@b.cd", "standard: identity from the body");
    }

    NORM("{\"type\":\"order.paid\",\"data\":[1,2]}", V1_NOW) {
        lt_str_is(&ev->data, "{\"type\":\"order.paid\",\"data\":[1,2]}",
               "standard: array data -> the whole body");
    }

    /* identity values that are not keys are left out */
    NORM("{\"type\":\"customer.updated\",\"data\":{\"customer\":{"
         "\"email\":\"not an email\",\"ext_id\":\"has space\","
         "\"store_cid\":{\"a\":1},\"phone\":\"\"}}}", V1_NOW) {
        ok(ev->email.len == 0 && ev->ext_id.len == 0
           && ev->store_cid.len == 0 && ev->phone.len == 0,
           "standard: invalid identity values left out");
    }

    NORM("{\"type\":\"customer.updated\",\"data\":{\"customer\":{"
         "\"ext_id\":42,\"store_cid\":\"s-1\",\"phone\":12.5}}}", V1_NOW) {
        lt_str_is(&ev->ext_id, "42", "standard: numeric ext_id as text");
        lt_str_is(&ev->store_cid, "s-1", "standard: string store_cid");
        ok(ev->phone.len == 0, "standard: 12.5 is no phone number");
    }

    NORM("{\"type\":\"customer.updated\",\"data\":{\"customer\":{"
         "\"phone\":\"+44 7700 900123\"}}}", V1_NOW) {
        lt_str_is(&ev->phone, "+447700900123", "standard: phone to E.164");
    }

    NORM("{\"type\":\"customer.updated\",\"data\":{\"customer\":{"
         "\"phone\":\"07700 900123\"}}}", V1_NOW) {
        ok(ev->phone.len == 0,
           "standard: national phone without a default country left out");
    }

    /*
     * An integer beyond 64 bits keeps its exact text: a store customer
     * id never turns into another customer's id.
     */
    NORM("{\"type\":\"customer.updated\",\"data\":{\"customer\":{"
         "\"store_cid\":123456789012345678901234}}}", V1_NOW) {
        lt_str_is(&ev->store_cid, "123456789012345678901234",
               "standard: integer beyond 64 bits kept as its text");
        ok(strstr((const char *) ev->data.data,
                  "123456789012345678901234") != NULL,
           "... and unchanged in data");
    }

#undef NORM

    loyalty_provider_conf_free(&conf);
}


static void
test_standard_reject(void)
{
    int                      rc;
    size_t                   i;
    char                     id[256];
    lt_headers_t             h;
    loyalty_err_t            err;
    loyalty_batch_t          batch;
    loyalty_request_t        req;
    loyalty_provider_conf_t  conf;

    static const char  *not_object[] = { "[]", "\"x\"", "1", "[{}]", " 1 ",
                                         "true", NULL };
    static const char  *malformed[] = {
        "{", "{\"type\":", "not json", "{\"a\":1}}", "{} {}", "{\"a\":1,}",
        NULL
    };
    static const char  *bad_ids[] = {
        "msg 1", " msg1", "msg1\t", "msg\x01", "m\xc3\xa9g", "", NULL
    };

    conf_with(&conf, "standard", -1, -1, V1_SECRET, NULL);

    for (i = 0; not_object[i] != NULL; i++) {
        std_request(&req, &h, "msg_1", V1_TS, not_object[i], V1_NOW);
        rc = normalize(&conf, &req, &batch, &err);

        if (!is_int(rc, LOYALTY_DECLINED, "standard: non-object declined")) {
            diag("  body %s", not_object[i]);
        }
        is_int(err.code, LOYALTY_ERR_JSON, "non-object: ERR_JSON");
    }

    std_request(&req, &h, "msg_1", V1_TS, "[]", V1_NOW);
    normalize(&conf, &req, &batch, &err);
    is_str(err.msg, "body is not a JSON object", "non-object: message");

    for (i = 0; malformed[i] != NULL; i++) {
        std_request(&req, &h, "msg_1", V1_TS, malformed[i], V1_NOW);
        rc = normalize(&conf, &req, &batch, &err);

        if (!is_int(rc, LOYALTY_DECLINED, "standard: malformed declined")) {
            diag("  body %s", malformed[i]);
        }
        is_int(err.code, LOYALTY_ERR_JSON, "malformed: ERR_JSON");
    }

    memset(&h, 0, sizeof(h));
    request(&req, &h, "", V1_NOW);
    hdr_add(&h, "webhook-id", "msg_1");
    rc = normalize(&conf, &req, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON,
       "standard: empty body declined with ERR_JSON");

    /* webhook-id is the event id: it must be a valid one */
    for (i = 0; bad_ids[i] != NULL; i++) {
        std_request(&req, &h, bad_ids[i], V1_TS, "{\"type\":\"x\"}", V1_NOW);
        rc = normalize(&conf, &req, &batch, &err);

        if (!is_int(rc, LOYALTY_DECLINED, "standard: invalid webhook-id")) {
            diag("  id \"%s\"", bad_ids[i]);
        }
        is_int(err.code, LOYALTY_ERR_INPUT, "invalid webhook-id: ERR_INPUT");
    }

    memset(id, 'i', sizeof(id));
    id[201] = '\0';
    std_request(&req, &h, id, V1_TS, "{\"type\":\"x\"}", V1_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    is_int(rc, LOYALTY_DECLINED, "standard: 201-byte webhook-id declined");
    is_int(err.code, LOYALTY_ERR_INPUT, "201-byte id: ERR_INPUT");

    id[200] = '\0';
    std_request(&req, &h, id, V1_TS, "{\"type\":\"x\"}", V1_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    is_int(rc, LOYALTY_OK, "standard: 200-byte webhook-id accepted");
    ok(rc == LOYALTY_OK && batch.events[0].id.len == 200,
       "standard: 200-byte id kept");

    memset(&h, 0, sizeof(h));
    hdr_add(&h, "webhook-timestamp", V1_TS);
    request(&req, &h, "{\"type\":\"x\"}", V1_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_INPUT,
       "standard: missing webhook-id declined with ERR_INPUT");

    loyalty_provider_conf_free(&conf);
}


static void
test_generic_verify(void)
{
    int                      rc;
    char                     sig[128];
    lt_headers_t             h;
    loyalty_err_t            err;
    loyalty_request_t        req;
    loyalty_provider_conf_t  hex256, b64_256, b64_1, hex1, wrong, custom;

    conf_with(&hex256, "generic", -1, -1, V4_SECRET, NULL);
    conf_with(&b64_256, "generic", -1, LOYALTY_ENC_BASE64, V4_SECRET, NULL);
    conf_with(&b64_1, "generic", LOYALTY_MD_SHA1, LOYALTY_ENC_BASE64,
              V4_SECRET, NULL);
    conf_with(&hex1, "generic", LOYALTY_MD_SHA1, LOYALTY_ENC_HEX,
              V4_SECRET, NULL);
    conf_with(&wrong, "generic", -1, -1, "hush2", NULL);
    conf_with(&custom, "generic", -1, -1, "other", V4_SECRET, NULL);
    custom.signature_header = "X-Hub-Signature";

    is_int(hex256.md, LOYALTY_MD_SHA256, "generic: SHA-256 by default");
    is_int(hex256.encoding, LOYALTY_ENC_HEX, "generic: hex by default");

    /* the expected values, recomputed with OpenSSL */
    body_sig(EVP_sha256(), V4_SECRET, V4_BODY, 0, sig);
    is_str(sig, V4_HEX, "vector 4 hex recomputed");
    body_sig(EVP_sha256(), V4_SECRET, V4_BODY, 1, sig);
    is_str(sig, V4_B64, "vector 4 base64 recomputed");
    body_sig(EVP_sha1(), V4_SECRET, V4_BODY, 1, sig);
    is_str(sig, V4_SHA1_B64, "vector 4 SHA-1 base64 recomputed");

#define GV(conf, name, value, body)                                          \
    memset(&h, 0, sizeof(h));                                                \
    if (name != NULL) {                                                      \
        hdr_add(&h, name, value);                                            \
    }                                                                        \
    request(&req, &h, body, G_NOW);                                          \
    rc = verify(&conf, &req, &err)

    GV(hex256, "X-Signature", V4_HEX, V4_BODY);
    is_int(rc, LOYALTY_OK, "generic: vector 4, SHA-256 hex");

    GV(hex256, "x-signature", V4_HEX, V4_BODY);
    is_int(rc, LOYALTY_OK, "generic: header name in lower case");

    GV(hex256, "X-Signature",
       "0F450C5E6863C01462E32EBA4E6849AC3961400043EF32367E6DE9EBF40B328F",
       V4_BODY);
    is_int(rc, LOYALTY_OK, "generic: upper-case hex");

    GV(hex256, "X-Signature", V4_B64, V4_BODY);
    is_int(rc, LOYALTY_DECLINED, "generic: base64 where hex is configured");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "base64 for hex: ERR_SIGNATURE");

    GV(hex256, "X-Signature", V4_SHA1_HEX, V4_BODY);
    is_int(rc, LOYALTY_DECLINED, "generic: SHA-1 where SHA-256 is configured");

    GV(hex256, "X-Signature", V4_HEX, "{\"id\":820982911946154509,"
       "\"email\":\"jon@example.com\"}");
    is_int(rc, LOYALTY_DECLINED, "generic: tampered body declined");

    GV(hex256, NULL, NULL, V4_BODY);
    is_int(rc, LOYALTY_DECLINED, "generic: missing signature header");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "missing header: ERR_SIGNATURE");
    is_str(err.msg, "missing X-Signature header", "missing header: message");

    GV(hex256, "X-Signature", "", V4_BODY);
    is_int(rc, LOYALTY_DECLINED, "generic: empty signature header");

    GV(wrong, "X-Signature", V4_HEX, V4_BODY);
    is_int(rc, LOYALTY_DECLINED, "generic: wrong key declined");

    GV(b64_256, "X-Signature", V4_B64, V4_BODY);
    is_int(rc, LOYALTY_OK, "generic: SHA-256 base64");

    GV(b64_256, "X-Signature", V4_HEX, V4_BODY);
    is_int(rc, LOYALTY_DECLINED, "generic: hex where base64 is configured");

    GV(b64_1, "X-Signature", V4_SHA1_B64, V4_BODY);
    is_int(rc, LOYALTY_OK, "generic: SHA-1 base64");

    GV(b64_1, "X-Signature", V4_B64, V4_BODY);
    is_int(rc, LOYALTY_DECLINED, "generic: SHA-256 where SHA-1 is configured");

    GV(hex1, "X-Signature", V4_SHA1_HEX, V4_BODY);
    is_int(rc, LOYALTY_OK, "generic: SHA-1 hex");

    /* another body, signed here */
    body_sig(EVP_sha1(), V4_SECRET, "{\"type\":\"order.paid\"}", 1, sig);
    GV(b64_1, "X-Signature", sig, "{\"type\":\"order.paid\"}");
    is_int(rc, LOYALTY_OK, "generic: SHA-1 base64 of another body");

    /* configured header name, second key of two */
    GV(custom, "X-Hub-Signature", V4_HEX, V4_BODY);
    is_int(rc, LOYALTY_OK, "generic: configured header, rotated key");

    GV(custom, "X-Signature", V4_HEX, V4_BODY);
    is_int(rc, LOYALTY_DECLINED, "generic: default header not read");
    is_str(err.msg, "missing X-Hub-Signature header",
           "configured header: message names it");

#undef GV

    loyalty_provider_conf_free(&hex256);
    loyalty_provider_conf_free(&b64_256);
    loyalty_provider_conf_free(&b64_1);
    loyalty_provider_conf_free(&hex1);
    loyalty_provider_conf_free(&wrong);
    loyalty_provider_conf_free(&custom);
}


static void
test_generic_normalize(void)
{
    int                      rc;
    char                     digest_hex[2 * EVP_MAX_MD_SIZE + 1], id[256];
    u_char                   md[EVP_MAX_MD_SIZE];
    unsigned int             mdlen;
    lt_headers_t             h;
    loyalty_err_t            err;
    loyalty_batch_t          batch;
    loyalty_event_t         *ev;
    loyalty_request_t        req;
    loyalty_provider_conf_t  conf, idconf;

    conf_with(&conf, "generic", -1, -1, V4_SECRET, NULL);
    conf_with(&idconf, "generic", -1, -1, V4_SECRET, NULL);
    idconf.id_header = "X-Event-Id";

    /* end to end: verify, normalise */
    memset(&h, 0, sizeof(h));
    hdr_add(&h, "X-Signature", V4_HEX);
    request(&req, &h, V4_BODY, G_NOW);

    rc = verify(&conf, &req, &err);
    is_int(rc, LOYALTY_OK, "generic e2e: verifies");

    rc = normalize(&conf, &req, &batch, &err);
    is_int(rc, LOYALTY_OK, "generic e2e: normalised");

    if (rc == LOYALTY_OK && batch.nevents == 1) {
        ev = batch.events;

        EVP_Digest(V4_BODY, strlen(V4_BODY), md, &mdlen, EVP_sha256(), NULL);
        hex(digest_hex, md, mdlen);
        is_str(digest_hex, V4_SHA256, "sha256sum of vector 4 recomputed");

        lt_str_is(&ev->id, digest_hex,
                  "generic: id is hex SHA-256 of the body");
        lt_str_is(&ev->src, "generic", "generic: src");
        lt_str_is(&ev->type, "unknown", "generic: no topic -> unknown");
        is_int(ev->topic.len, 0, "generic: no topic");
        lt_str_is(&ev->occurred, G_TIME, "generic: no time -> now");
        lt_str_is(&ev->data, V4_BODY, "generic: data is the body");
        lt_str_is(&ev->email, "jon@example.com", "generic: email");
        is_int(ev->ext_id.len, 0, "generic: \"id\" is not ext_id");
        ok(ev->received == (int64_t) G_NOW * 1000 + 123,
           "generic: received is now_ms");

    } else {
        ok(0, "generic e2e event");
        diag("  %s", err.msg);
    }

    /* a different body, a different id */
    memset(&h, 0, sizeof(h));
    request(&req, &h, "{\"a\":1}", G_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    EVP_Digest("{\"a\":1}", 7, md, &mdlen, EVP_sha256(), NULL);
    hex(digest_hex, md, mdlen);
    ok(rc == LOYALTY_OK && batch.events[0].id.len == 64
       && memcmp(batch.events[0].id.data, digest_hex, 64) == 0,
       "generic: id follows the body");

    /* id from the configured header */
    memset(&h, 0, sizeof(h));
    hdr_add(&h, "x-event-id", "evt_42");
    request(&req, &h, V4_BODY, G_NOW);
    rc = normalize(&idconf, &req, &batch, &err);
    is_int(rc, LOYALTY_OK, "generic: id header");
    if (rc == LOYALTY_OK) {
        lt_str_is(&batch.events[0].id, "evt_42", "generic: id from the header");
    }

    memset(&h, 0, sizeof(h));
    request(&req, &h, V4_BODY, G_NOW);
    rc = normalize(&idconf, &req, &batch, &err);
    is_int(rc, LOYALTY_DECLINED, "generic: missing id header declined");
    is_int(err.code, LOYALTY_ERR_INPUT, "missing id header: ERR_INPUT");

    memset(&h, 0, sizeof(h));
    hdr_add(&h, "X-Event-Id", "evt 42");
    request(&req, &h, V4_BODY, G_NOW);
    rc = normalize(&idconf, &req, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_INPUT,
       "generic: id header with a space declined with ERR_INPUT");

    memset(id, 'g', sizeof(id));
    id[201] = '\0';
    memset(&h, 0, sizeof(h));
    hdr_add(&h, "X-Event-Id", id);
    request(&req, &h, V4_BODY, G_NOW);
    rc = normalize(&idconf, &req, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_INPUT,
       "generic: 201-byte id header declined with ERR_INPUT");

    memset(&h, 0, sizeof(h));
    hdr_add(&h, "X-Event-Id", "");
    request(&req, &h, V4_BODY, G_NOW);
    rc = normalize(&idconf, &req, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_INPUT,
       "generic: empty id header declined with ERR_INPUT");

    /* payload errors */
    memset(&h, 0, sizeof(h));
    request(&req, &h, "[1,2]", G_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON,
       "generic: array body declined with ERR_JSON");

    request(&req, &h, "{\"type\":\"order.paid\"", G_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON,
       "generic: truncated body declined with ERR_JSON");

    request(&req, &h, "", G_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON,
       "generic: empty body declined with ERR_JSON");

    loyalty_provider_conf_free(&conf);
    loyalty_provider_conf_free(&idconf);
}


static void
test_generic_fields(void)
{
    int                      rc;
    size_t                   i;
    lt_headers_t             h;
    loyalty_err_t            err;
    loyalty_batch_t          batch;
    loyalty_request_t        req;
    loyalty_provider_conf_t  conf;

    static const struct {
        const char  *body;
        const char  *topic;
        const char  *type;
    } topics[] = {
        { "{\"type\":\"order.paid\",\"topic\":\"t\",\"event\":\"e\"}",
          "order.paid", "order.paid" },
        { "{\"topic\":\"orders/paid\",\"event\":\"order.paid\"}",
          "orders/paid", "unknown" },
        { "{\"event\":\"customer.created\"}",
          "customer.created", "customer.created" },
        { "{\"type\":{\"x\":1},\"topic\":\"points.earned\"}",
          "points.earned", "points.earned" },
        { "{\"type\":\"\",\"event\":\"tier.changed\"}",
          "tier.changed", "tier.changed" },
        { "{\"type\":null,\"topic\":[1],\"event\":\"reward.issued\"}",
          "reward.issued", "reward.issued" },
        { "{\"kind\":\"order.paid\"}", "", "unknown" },
        { NULL, NULL, NULL }
    };

    static const struct {
        const char  *body;
        const char  *occurred;
    } times[] = {
        { "{\"timestamp\":\"2024-01-02T03:04:05Z\","
          "\"occurred_at\":\"2023-01-01T00:00:00Z\"}",
          "2024-01-02T03:04:05Z" },
        { "{\"occurred_at\":\"2024-01-02T03:04:05+02:00\","
          "\"created_at\":\"2023-01-01T00:00:00Z\"}",
          "2024-01-02T01:04:05Z" },
        { "{\"created_at\":\"2024-01-02t03:04:05z\"}",
          "2024-01-02T03:04:05Z" },
        { "{\"created_at\":\"2024-01-02 03:04:05\"}", G_TIME },
        { "{\"created_at\":1700000000}", "2023-11-14T22:13:20Z" },
        { "{\"timestamp\":\"yesterday\",\"created_at\":1614265330}", V1_TIME },
        { "{\"timestamp\":0,\"occurred_at\":-5}", G_TIME },
        { "{\"timestamp\":1700000000.5}", G_TIME },
        { "{\"timestamp\":99999999999}", G_TIME },
        { "{\"timestamp\":\"2024-01-02\"}", G_TIME },
        { "{\"timestamp\":\"2024/01/02T03:04:05Z\"}", G_TIME },
        { "{\"timestamp\":\"20x4-01-02T03:04:05Z\"}", G_TIME },
        { "{\"timestamp\":\"2024-01-02T03:04:05Z and then quite a lot "
          "more text\"}", G_TIME },
        { "{\"timestamp\":true,\"updated_at\":\"2024-01-02T03:04:05Z\"}",
          G_TIME },
        { NULL, NULL }
    };

    conf_with(&conf, "generic", -1, -1, V4_SECRET, NULL);
    memset(&h, 0, sizeof(h));

    for (i = 0; topics[i].body != NULL; i++) {
        request(&req, &h, topics[i].body, G_NOW);
        rc = normalize(&conf, &req, &batch, &err);

        if (!is_int(rc, LOYALTY_OK, "generic topic: normalised")) {
            diag("  body %s: %s", topics[i].body, err.msg);
            continue;
        }

        if (!lt_str_is(&batch.events[0].topic, topics[i].topic,
                    "generic: topic from type, then topic, then event")
            || !lt_str_is(&batch.events[0].type, topics[i].type,
                       "generic: canonical type of the topic"))
        {
            diag("  body %s", topics[i].body);
        }
    }

    for (i = 0; times[i].body != NULL; i++) {
        request(&req, &h, times[i].body, G_NOW);
        rc = normalize(&conf, &req, &batch, &err);

        if (!is_int(rc, LOYALTY_OK, "generic time: normalised")) {
            diag("  body %s: %s", times[i].body, err.msg);
            continue;
        }

        if (!lt_str_is(&batch.events[0].occurred, times[i].occurred,
                    "generic: occurred from timestamp/occurred_at/"
                    "created_at, else now"))
        {
            diag("  body %s", times[i].body);
        }
    }

    /* generic keeps the whole body as data, even with a "data" member */
    request(&req, &h, "{\"type\":\"customer.updated\",\"data\":{\"customer\":"
            "{\"email\":\"a@b.co\"}}}", G_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    ok(rc == LOYALTY_OK && batch.events[0].data.len == req.body.len,
       "generic: data is the whole body, not unwrapped");
    ok(rc == LOYALTY_OK && batch.events[0].email.len == 0,
       "generic: identity not looked up inside data");

    request(&req, &h, "{\"type\":\"customer.updated\",\"customer\":"
            "{\"email\":\"A@B.CO\",\"ext_id\":\"c-9\"}}", G_NOW);
    rc = normalize(&conf, &req, &batch, &err);
    ok(rc == LOYALTY_OK && batch.events[0].email.len == 6
       && memcmp(batch.events[0].email.data, "a@b.co", 6) == 0
       && batch.events[0].ext_id.len == 3,
       "generic: identity from the body's customer");

    loyalty_provider_conf_free(&conf);
}


/*
 * Every allocation of normalize failing in turn: LOYALTY_ERROR with
 * LOYALTY_ERR_NOMEM and nothing leaked (json objects freed), until the
 * failing allocation is no longer reached.  A failure must never be
 * swallowed into an event.
 */

static int
event_sane(const loyalty_event_t *ev)
{
    const loyalty_str_t  *f[] = {
        &ev->id, &ev->src, &ev->store, &ev->type, &ev->topic, &ev->occurred,
        &ev->corr, &ev->email, &ev->ext_id, &ev->store_cid, &ev->phone,
        &ev->data, &ev->raw
    };

    size_t  i;

    for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        if (f[i]->len && f[i]->data == NULL) {
            return 0;
        }
    }

    return 1;
}


static void
nomem(const loyalty_provider_conf_t *conf, const char *name,
    const char *body, int standard)
{
    int                rc, final;
    size_t             n, points, bad, swallowed, broken;
    lt_headers_t       h;
    loyalty_err_t      err;
    loyalty_batch_t    batch;
    loyalty_request_t  req;

    bad = 0;
    points = 0;
    swallowed = 0;
    broken = 0;
    final = LOYALTY_ERROR;

    for (n = 1; n < 64; n++) {
        lt_arena_free(&arena);

        if (standard) {
            std_request(&req, &h, "msg_1", V1_TS, body, V1_NOW);

        } else {
            memset(&h, 0, sizeof(h));
            request(&req, &h, body, G_NOW);
        }

        arena.fail_at = n;

        rc = normalize(conf, &req, &batch, &err);

        if (arena.calls < n) {
            /* the n-th allocation never happened: a clean run */
            final = rc;
            break;
        }

        points++;

        if (rc == LOYALTY_OK) {
            swallowed++;

            if (batch.nevents != 1 || !event_sane(batch.events)) {
                broken++;
            }

        } else if (rc != LOYALTY_ERROR || err.code != LOYALTY_ERR_NOMEM) {
            bad++;
            diag("  %s, allocation %zu failing: rc %d, code %d, %s",
                 name, n, rc, err.code, err.msg);
        }
    }

    lt_arena_free(&arena);

    ok(points >= 5, "%s nomem: %zu allocations can fail", name, points);
    ok(bad == 0, "%s nomem: failures are LOYALTY_ERROR, ERR_NOMEM", name);
    is_int(final, LOYALTY_OK, "nomem: succeeds with enough memory");

    /*
     * loyalty_provider_json_time() and loyalty_provider_time() set
     * out->len before the copy, and loyalty_provider_json_event() treats
     * LOYALTY_ERROR from the time lookup as "not found": occurred keeps
     * a length with a NULL pointer and normalize returns LOYALTY_OK.
     */
    check_ok(swallowed == 0, "allocation failure swallowed (occurred)",
            "%s nomem: no allocation failure swallowed (%zu were)", name,
            swallowed);
    check_ok(broken == 0, "allocation failure swallowed (occurred)",
            "%s nomem: no event with a length but no data (%zu)", name,
            broken);
}


static void
test_nomem(void)
{
    loyalty_provider_conf_t  std, gen;

    conf_with(&std, "standard", -1, -1, V1_SECRET, NULL);
    conf_with(&gen, "generic", -1, -1, V4_SECRET, NULL);

    nomem(&std, "standard", N_BODY, 1);
    nomem(&gen, "generic", "{\"type\":\"order.paid\",\"created_at\":"
          "1700000000,\"customer\":{\"email\":\"a@b.co\",\"ext_id\":"
          "\"x\",\"phone\":\"1\"}}", 0);

    loyalty_provider_conf_free(&std);
    loyalty_provider_conf_free(&gen);
}


int
main(void)
{
    test_registry();
    test_conf();
    test_standard_verify();
    test_standard_e2e();
    test_standard_normalize();
    test_standard_reject();
    test_generic_verify();
    test_generic_normalize();
    test_generic_fields();
    test_nomem();

    lt_arena_free(&arena);

    return done_testing();
}
