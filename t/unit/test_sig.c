/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_sig: codecs, HMAC key reuse, the vectors and negative cases of
 * shared/reference/apis.md section 10.  Time is always passed in, so
 * the results do not depend on the clock.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_sig.h"
#include "loyalty_test.h"


#define S(s)      ((loyalty_str_t) loyalty_string(s))
#define nelts(a)  (sizeof(a) / sizeof((a)[0]))


/* vector 1 (Standard Webhooks) and 2 (Svix) */
#define V1_SECRET   "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define V1_ID       "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define V1_TS       "1614265330"
#define V1_NOW      1614265330
#define V1_BODY     "{\"test\": 2432232314}"
#define V1_SIG      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define V1_B64      "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* vector 3 (BigCommerce): the raw client secret is the key */
#define V3_SECRET   "my_client_secret"
#define V3_ID       "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
#define V3_TS       "1674087231"
#define V3_NOW      1674087231
#define V3_BODY                                                              \
    "{\"scope\":\"store/order/created\",\"store_id\":\"1025646\","           \
    "\"data\":{\"type\":\"order\",\"id\":250},"                              \
    "\"hash\":\"dd70c0976e06b67aaf671e73f49dcb79230ebf9d\","                 \
    "\"created_at\":1561479335,\"producer\":\"stores/abc123\"}"
#define V3_SIG      "v1,KAygXNmtetBVjlJbJq7iwmht/bAa+VuLmbRV477gvbE="

/* vector 4 (Shopify / LoyaltyLion): HMAC of the raw body */
#define V4_SECRET   "hush"
#define V4_BODY     "{\"id\":820982911946154508,\"email\":\"jon@example.com\"}"
#define V4_B64      "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8="
#define V4_HEX                                                               \
    "0f450c5e6863c01462e32eba4e6849ac3961400043ef32367e6de9ebf40b328f"

/* vector 5 (Stripe): the whole whsec_ string is the key */
#define V5_SECRET   "whsec_test_secret"
#define V5_NOW      1700000000
#define V5_V1                                                                \
    "d2ef6f609cf69ce282bef3673dc8b4a61c6ff6e1a1a47d315ac5c3c953de84ac"
#define V5_HEADER   "t=1700000000,v1=" V5_V1

/* RFC 2202 / RFC 4231 test case 2: key "Jefe" */
#define RFC2202_2_DATA  "what do ya want for nothing?"
#define RFC4231_2_HEX                                                        \
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"


/*
 * A table row of the body and Stripe tests.  keys picks the key list
 * from the "good" and "wrong" keys run_cases() is given: good alone,
 * wrong alone, wrong then good (rotation), or none.
 */

typedef enum {
    KEYS_GOOD = 0,
    KEYS_WRONG,
    KEYS_ROTATED,
    KEYS_NONE
} keys_e;

typedef struct {
    keys_e          keys;
    loyalty_enc_e   enc;            /* body only */
    const char     *sig;            /* Stripe: the whole header */
    const char     *body;
    time_t          now;            /* Stripe only */
    int             rc;
    const char     *msg;            /* NULL: only rc is checked */
    const char     *name;
} sig_case_t;

typedef int (*sig_verify_pt)(loyalty_hmac_key_t **keys, size_t nkeys,
    const sig_case_t *c, loyalty_err_t *err);


static loyalty_hmac_key_t *key_raw(loyalty_md_e md, const char *secret);
static loyalty_hmac_key_t *key_std(const char *secret);
static int msg_known(const loyalty_err_t *err);
static void err_unset(loyalty_err_t *err);
static int verdict(int rc, const loyalty_err_t *err);
static int declined_with(int rc, const loyalty_err_t *err, const char *msg);
static int std_verify(loyalty_hmac_key_t **keys, size_t nkeys,
    const char *id, const char *ts, const char *sig, const char *body,
    time_t now, loyalty_err_t *err);
static int body_verify(loyalty_hmac_key_t **keys, size_t nkeys,
    const sig_case_t *c, loyalty_err_t *err);
static int stripe_verify(loyalty_hmac_key_t **keys, size_t nkeys,
    const sig_case_t *c, loyalty_err_t *err);
static void run_cases(sig_verify_pt verify, loyalty_hmac_key_t *good,
    loyalty_hmac_key_t *wrong, const sig_case_t *c, size_t n);
static void test_base64(void);
static void test_hex(void);
static void test_hmac(void);
static void test_standard_key(void);
static void test_standard(void);
static void test_body(void);
static void test_stripe(void);


/* every message a verifier may return: none can carry secret bytes */
static const char  *known_msgs[] = {
    "missing webhook-id header",
    "missing webhook-timestamp header",
    "missing webhook-signature header",
    "malformed webhook-id",
    "malformed timestamp",
    "timestamp too old",
    "timestamp too new",
    "no matching signature",
    "missing signature",
    "malformed signature",
    "wrong signature length",
    "missing Stripe-Signature header",
    "missing timestamp",
    "no signing keys",
    NULL
};


static loyalty_hmac_key_t *
key_raw(loyalty_md_e md, const char *secret)
{
    loyalty_err_t        err;
    loyalty_hmac_key_t  *k;

    k = loyalty_hmac_key_create(md, (const u_char *) secret, strlen(secret),
                                &err);
    if (k == NULL) {
        diag("key_raw: %s", err.msg);
        exit(2);
    }

    return k;
}


static loyalty_hmac_key_t *
key_std(const char *secret)
{
    u_char               buf[256];
    size_t               len;
    loyalty_err_t        err;
    loyalty_str_t        s;
    loyalty_hmac_key_t  *k;

    s = lt_str(secret);

    if (loyalty_sig_standard_key(&s, buf, &len, &err) != LOYALTY_OK) {
        diag("key_std: %s", err.msg);
        exit(2);
    }

    k = loyalty_hmac_key_create(LOYALTY_MD_SHA256, buf, len, &err);
    if (k == NULL) {
        diag("key_std: %s", err.msg);
        exit(2);
    }

    return k;
}


static int
msg_known(const loyalty_err_t *err)
{
    int  i;

    for (i = 0; known_msgs[i] != NULL; i++) {
        if (strcmp(err->msg, known_msgs[i]) == 0) {
            return 1;
        }
    }

    diag("unexpected message: '%s'", err->msg);

    return 0;
}


/* the verifiers leave err as it was on success: start from a marker */

static void
err_unset(loyalty_err_t *err)
{
    strcpy(err->msg, "(unset)");
    err->code = 0;
}


/*
 * A verifier's result, or 99 when it declined with anything but
 * LOYALTY_ERR_SIGNATURE and one of known_msgs.
 */

static int
verdict(int rc, const loyalty_err_t *err)
{
    if (rc == LOYALTY_DECLINED
        && (err->code != LOYALTY_ERR_SIGNATURE || !msg_known(err)))
    {
        diag("declined with code %d '%s'", err->code, err->msg);
        return 99;
    }

    return rc;
}


static int
declined_with(int rc, const loyalty_err_t *err, const char *msg)
{
    return rc == LOYALTY_DECLINED && strcmp(err->msg, msg) == 0;
}


static int
std_verify(loyalty_hmac_key_t **keys, size_t nkeys, const char *id,
    const char *ts, const char *sig, const char *body, time_t now,
    loyalty_err_t *err)
{
    int                     rc;
    loyalty_sig_standard_t  in;

    in.id = lt_str(id);
    in.timestamp = lt_str(ts);
    in.signature = lt_str(sig);
    in.body = lt_str(body);
    in.now = now;
    in.tolerance = 300;

    err_unset(err);

    rc = loyalty_sig_standard_verify((loyalty_hmac_key_t *const *) keys,
                                     nkeys, &in, err);

    return verdict(rc, err);
}


static int
body_verify(loyalty_hmac_key_t **keys, size_t nkeys, const sig_case_t *c,
    loyalty_err_t *err)
{
    int            rc;
    loyalty_str_t  s, b;

    s = lt_str(c->sig);
    b = lt_str(c->body);

    err_unset(err);

    rc = loyalty_sig_body_verify((loyalty_hmac_key_t *const *) keys, nkeys,
                                 c->enc, &s, &b, err);

    return verdict(rc, err);
}


static int
stripe_verify(loyalty_hmac_key_t **keys, size_t nkeys, const sig_case_t *c,
    loyalty_err_t *err)
{
    int            rc;
    loyalty_str_t  h, b;

    h = lt_str(c->sig);
    b = lt_str(c->body);

    err_unset(err);

    rc = loyalty_sig_stripe_verify((loyalty_hmac_key_t *const *) keys,
                                   nkeys, &h, &b, c->now, 300, err);

    return verdict(rc, err);
}


/*
 * One TAP line a row: rc and, when the row names one, the message; an
 * expected LOYALTY_ERROR must also be LOYALTY_ERR_CONFIG.
 */

static void
run_cases(sig_verify_pt verify, loyalty_hmac_key_t *good,
    loyalty_hmac_key_t *wrong, const sig_case_t *c, size_t n)
{
    int                  rc;
    size_t               i, nkeys;
    loyalty_err_t        err;
    loyalty_hmac_key_t  *keys[2];

    for (i = 0; i < n; i++) {
        keys[0] = (c[i].keys == KEYS_GOOD) ? good : wrong;
        keys[1] = good;

        switch (c[i].keys) {
        case KEYS_ROTATED:
            nkeys = 2;
            break;
        case KEYS_NONE:
            nkeys = 0;
            break;
        default:
            nkeys = 1;
        }

        rc = verify(keys, nkeys, &c[i], &err);

        if (c[i].rc == LOYALTY_ERROR) {
            ok(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_CONFIG, "%s",
               c[i].name);

        } else if (c[i].msg != NULL) {
            ok(rc == c[i].rc && strcmp(err.msg, c[i].msg) == 0, "%s",
               c[i].name);

        } else {
            is_int(rc, c[i].rc, c[i].name);
        }
    }
}


static void
test_base64(void)
{
    int            rc;
    size_t         i, n, len, elen;
    u_char         src[256], enc[512], dec[512];
    const char    *bad[] = {
        "Z", "Zg=", "Zg===", "=", "==", "===", "Zm9v=", "Zm9v===",
        "Zm9v====", "Zm 9v", " Zm9v", "Zm9v\n", "Zm-v", "Zm_v", "Z=g=",
        "Zg==Zg==", "Zm9v\xff", "Zm9vY", "Zh==", "Zh", "Zm9=", "Zm9",
        "Zm9v\"", NULL
    };

    static const struct {
        const char  *plain;
        const char  *b64;
    } rfc[] = {
        { "", "" },
        { "f", "Zg==" },
        { "fo", "Zm8=" },
        { "foo", "Zm9v" },
        { "foob", "Zm9vYg==" },
        { "fooba", "Zm9vYmE=" },
        { "foobar", "Zm9vYmFy" },
    };

    for (i = 0; i < sizeof(rfc) / sizeof(rfc[0]); i++) {
        n = loyalty_base64_encode(enc, (const u_char *) rfc[i].plain,
                                  strlen(rfc[i].plain));
        is_mem(enc, n, rfc[i].b64, strlen(rfc[i].b64),
               "base64 encode RFC 4648 vector");
        is_int(n, loyalty_base64_encoded_len(strlen(rfc[i].plain)),
               "base64 encoded length macro");

        rc = loyalty_base64_decode(dec, &len, (const u_char *) rfc[i].b64,
                                   strlen(rfc[i].b64));
        ok(rc == LOYALTY_OK && len == strlen(rfc[i].plain)
           && memcmp(dec, rfc[i].plain, len) == 0,
           "base64 decode '%s'", rfc[i].b64);

        /* the same without padding */
        elen = strlen(rfc[i].b64);
        while (elen > 0 && rfc[i].b64[elen - 1] == '=') {
            elen--;
        }

        rc = loyalty_base64_decode(dec, &len, (const u_char *) rfc[i].b64,
                                   elen);
        ok(rc == LOYALTY_OK && len == strlen(rfc[i].plain)
           && memcmp(dec, rfc[i].plain, len) == 0,
           "base64 decode '%.*s' (no padding)", (int) elen, rfc[i].b64);
    }

    for (i = 0; bad[i] != NULL; i++) {
        rc = loyalty_base64_decode(dec, &len, (const u_char *) bad[i],
                                   strlen(bad[i]));
        is_int(rc, LOYALTY_ERROR, "base64 rejects invalid input");
    }

    rc = loyalty_base64_decode(dec, &len, (const u_char *) "Zm\0v", 4);
    is_int(rc, LOYALTY_ERROR, "base64 rejects an embedded NUL");

    rc = loyalty_base64_decode(dec, &len, (const u_char *) "-_-_", 4);
    is_int(rc, LOYALTY_ERROR, "base64 rejects the URL-safe alphabet");

    rc = loyalty_base64_decode(dec, &len, (const u_char *) "+/+/", 4);
    ok(rc == LOYALTY_OK && len == 3 && dec[0] == 0xfb && dec[1] == 0xff
       && dec[2] == 0xbf, "base64 decodes '+' and '/'");

    /* every byte value, every length: round trip, decoder stays in bounds */

    for (i = 0; i < sizeof(src); i++) {
        src[i] = (u_char) (255 - i);
    }

    rc = 1;

    for (n = 0; n <= sizeof(src); n++) {
        elen = loyalty_base64_encode(enc, src, n);

        memset(dec, 0xa5, sizeof(dec));

        if (loyalty_base64_decode(dec, &len, enc, elen) != LOYALTY_OK
            || len != n || memcmp(dec, src, n) != 0
            || len > loyalty_base64_decoded_len(elen)
            || dec[n] != 0xa5)
        {
            diag("round trip failed at length %zu", n);
            rc = 0;
            break;
        }

        while (elen > 0 && enc[elen - 1] == '=') {
            elen--;
        }

        memset(dec, 0xa5, sizeof(dec));

        if (loyalty_base64_decode(dec, &len, enc, elen) != LOYALTY_OK
            || len != n || memcmp(dec, src, n) != 0 || dec[n] != 0xa5)
        {
            diag("unpadded round trip failed at length %zu", n);
            rc = 0;
            break;
        }
    }

    ok(rc, "base64 round trip of all byte values, lengths 0..256");
}


static void
test_hex(void)
{
    int      rc;
    size_t   i, n, len;
    u_char   src[256], enc[512], dec[256];

    n = loyalty_hex_encode(enc, (const u_char *) "\x00\x01\xab\xff\x7f", 5);
    is_mem(enc, n, "0001abff7f", 10, "hex encode is lowercase");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "0001ABff7F", 10);
    ok(rc == LOYALTY_OK && len == 5
       && memcmp(dec, "\x00\x01\xab\xff\x7f", 5) == 0,
       "hex decode accepts both cases");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "", 0);
    ok(rc == LOYALTY_OK && len == 0, "hex decode of empty input");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "abc", 3);
    is_int(rc, LOYALTY_ERROR, "hex rejects odd length");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "0g", 2);
    is_int(rc, LOYALTY_ERROR, "hex rejects 'g'");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "0G", 2);
    is_int(rc, LOYALTY_ERROR, "hex rejects 'G'");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "a ", 2);
    is_int(rc, LOYALTY_ERROR, "hex rejects a space");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "0x", 2);
    is_int(rc, LOYALTY_ERROR, "hex rejects 'x'");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "@`", 2);
    is_int(rc, LOYALTY_ERROR, "hex rejects '@' and '`'");

    rc = loyalty_hex_decode(dec, &len, (const u_char *) "\xe1\xe2", 2);
    is_int(rc, LOYALTY_ERROR, "hex rejects high bytes");

    for (i = 0; i < sizeof(src); i++) {
        src[i] = (u_char) i;
    }

    n = loyalty_hex_encode(enc, src, sizeof(src));
    rc = loyalty_hex_decode(dec, &len, enc, n);
    ok(rc == LOYALTY_OK && len == sizeof(src)
       && memcmp(dec, src, len) == 0, "hex round trip of all byte values");

    for (i = 0; i < n; i++) {
        if (enc[i] >= 'a' && enc[i] <= 'f') {
            enc[i] -= 0x20;
        }
    }

    rc = loyalty_hex_decode(dec, &len, enc, n);
    ok(rc == LOYALTY_OK && len == sizeof(src)
       && memcmp(dec, src, len) == 0, "hex upper-case round trip");
}


static void
test_hmac(void)
{
    int                  n, m;
    u_char               mac[LOYALTY_HMAC_MAX], mac2[LOYALTY_HMAC_MAX];
    u_char               hex[2 * LOYALTY_HMAC_MAX];
    loyalty_err_t        err;
    loyalty_str_t        parts[4], one;
    loyalty_hmac_key_t  *a, *b, *c;

    static const char  rfc4231_2[] =
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    static const char  rfc2202_2[] =
        "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79";
    static const char  fox[] =
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8";
    static const char  jefe_empty[] =
        "923598ca6d64af2a5dba79dcd021a8a0fe5c5f557519adaaf0ad532d4506dd30";

    a = key_raw(LOYALTY_MD_SHA256, "Jefe");
    b = key_raw(LOYALTY_MD_SHA256, "key");
    c = key_raw(LOYALTY_MD_SHA1, "Jefe");

    one = S("what do ya want for nothing?");

    n = loyalty_hmac(a, &one, 1, mac);
    is_int(n, 32, "HMAC-SHA256 length");
    is_mem(hex, loyalty_hex_encode(hex, mac, n), rfc4231_2, 64,
           "HMAC-SHA256 RFC 4231 case 2");

    /* the re-init must reuse the key: the same MAC again, twice */

    memset(mac, 0, sizeof(mac));
    n = loyalty_hmac(a, &one, 1, mac);
    is_mem(hex, loyalty_hex_encode(hex, mac, n), rfc4231_2, 64,
           "same key, second call: same MAC");

    n = loyalty_hmac(a, &one, 1, mac);
    is_mem(hex, loyalty_hex_encode(hex, mac, n), rfc4231_2, 64,
           "same key, third call: same MAC");

    /* interleaved with other keys */

    parts[0] = S("The quick brown fox jumps over the lazy dog");
    n = loyalty_hmac(b, parts, 1, mac);
    is_mem(hex, loyalty_hex_encode(hex, mac, n), fox, 64,
           "interleaved: key B");

    n = loyalty_hmac(c, &one, 1, mac);
    is_int(n, 20, "HMAC-SHA1 length");
    is_mem(hex, loyalty_hex_encode(hex, mac, n), rfc2202_2, 40,
           "HMAC-SHA1 RFC 2202 case 2 (interleaved)");

    n = loyalty_hmac(a, &one, 1, mac);
    is_mem(hex, loyalty_hex_encode(hex, mac, n), rfc4231_2, 64,
           "interleaved: key A again");

    n = loyalty_hmac(b, parts, 1, mac);
    is_mem(hex, loyalty_hex_encode(hex, mac, n), fox, 64,
           "interleaved: key B again");

    /* parts are concatenated; empty parts and no parts */

    parts[0] = S("The quick ");
    parts[1].len = 0;
    parts[1].data = NULL;
    parts[2] = S("brown fox jumps");
    parts[3] = S(" over the lazy dog");

    n = loyalty_hmac(b, parts, 4, mac);
    is_mem(hex, loyalty_hex_encode(hex, mac, n), fox, 64,
           "MAC over parts equals MAC over the concatenation");

    n = loyalty_hmac(a, NULL, 0, mac);
    is_mem(hex, loyalty_hex_encode(hex, mac, n), jefe_empty, 64,
           "MAC of no parts is the MAC of the empty message");

    n = loyalty_hmac(a, &one, 1, mac);
    m = loyalty_hmac(a, &one, 1, mac2);
    ok(n == m && loyalty_sig_equal(mac, mac2, n), "loyalty_sig_equal: equal");

    mac2[n - 1] ^= 0x01;
    ok(!loyalty_sig_equal(mac, mac2, n), "loyalty_sig_equal: last bit");

    mac2[n - 1] ^= 0x01;
    mac2[0] ^= 0x80;
    ok(!loyalty_sig_equal(mac, mac2, n), "loyalty_sig_equal: first bit");

    ok(loyalty_sig_equal(mac, mac2, 0), "loyalty_sig_equal: zero length");

    loyalty_hmac_key_free(a);
    loyalty_hmac_key_free(b);
    loyalty_hmac_key_free(c);
    loyalty_hmac_key_free(NULL);

    /* refused keys */

    err.code = 0;
    a = loyalty_hmac_key_create(LOYALTY_MD_SHA256, (const u_char *) "", 0,
                                &err);
    ok(a == NULL && err.code == LOYALTY_ERR_CONFIG, "empty key refused");

    err.code = 0;
    a = loyalty_hmac_key_create((loyalty_md_e) 99, (const u_char *) "k", 1,
                                &err);
    ok(a == NULL && err.code == LOYALTY_ERR_CONFIG, "unknown digest refused");

    a = loyalty_hmac_key_create(LOYALTY_MD_SHA256, (const u_char *) "k", 1,
                                NULL);
    ok(a != NULL, "err may be NULL");
    loyalty_hmac_key_free(a);
}


static void
test_standard_key(void)
{
    int            rc;
    u_char         out[64], ref[64];
    size_t         len, rlen;
    loyalty_err_t  err;
    loyalty_str_t  s;

    s = S(V1_SECRET);
    rc = loyalty_sig_standard_key(&s, out, &len, &err);
    ok(rc == LOYALTY_OK && len == 24, "whsec_ secret: 24 bytes");

    loyalty_base64_decode(ref, &rlen,
                          (const u_char *) "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                          32);
    is_mem(out, len, ref, rlen, "whsec_ prefix stripped, rest decoded");

    s = S("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    rc = loyalty_sig_standard_key(&s, out, &len, &err);
    ok(rc == LOYALTY_OK && len == rlen && memcmp(out, ref, len) == 0,
       "secret without prefix");

    s = S("whsec_c2VjcmV0cw");
    rc = loyalty_sig_standard_key(&s, out, &len, &err);
    ok(rc == LOYALTY_OK && len == 7 && memcmp(out, "secrets", 7) == 0,
       "secret with missing padding");

    s = S("whsec_");
    rc = loyalty_sig_standard_key(&s, out, &len, &err);
    ok(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_CONFIG,
       "empty secret after prefix refused");

    s = S("");
    rc = loyalty_sig_standard_key(&s, out, &len, &err);
    ok(rc == LOYALTY_ERROR, "empty secret refused");

    s = S("whsec_not base64!");
    rc = loyalty_sig_standard_key(&s, out, &len, &err);
    ok(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_CONFIG
       && strstr(err.msg, "base64") != NULL
       && strstr(err.msg, "not base64!") == NULL,
       "invalid secret refused, without echoing it");

    s = S("whsec_whsec_MfKQ");
    rc = loyalty_sig_standard_key(&s, out, &len, &err);
    ok(rc == LOYALTY_ERROR, "prefix stripped once only");
}


static void
test_standard(void)
{
    int                  rc;
    loyalty_err_t        err;
    loyalty_hmac_key_t  *k1, *k3, *wrong, *keys[3];

    k1 = key_std(V1_SECRET);
    k3 = key_raw(LOYALTY_MD_SHA256, V3_SECRET);
    wrong = key_std("whsec_c2VjcmV0cw==");

    /* vectors */

    keys[0] = k1;
    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "vector 1: Standard Webhooks");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "vector 1 again: the key is reusable");

    /* Svix sends the same values under svix-* names */
    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW + 10,
                    &err);
    is_int(rc, LOYALTY_OK, "vector 2: Svix");

    keys[0] = k3;
    rc = std_verify(keys, 1, V3_ID, V3_TS, V3_SIG, V3_BODY, V3_NOW, &err);
    is_int(rc, LOYALTY_OK, "vector 3: BigCommerce, raw client secret key");

    keys[0] = key_std("whsec_" "bXlfY2xpZW50X3NlY3JldA==");
    rc = std_verify(keys, 1, V3_ID, V3_TS, V3_SIG, V3_BODY, V3_NOW, &err);
    is_int(rc, LOYALTY_OK,
           "vector 3 with base64(client secret) as a whsec_ key");
    loyalty_hmac_key_free(keys[0]);

    /* missing headers */

    keys[0] = k1;
    rc = std_verify(keys, 1, "", V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    ok(declined_with(rc, &err, "missing webhook-id header"),
       "missing webhook-id");

    rc = std_verify(keys, 1, V1_ID, NULL, V1_SIG, V1_BODY, V1_NOW, &err);
    ok(declined_with(rc, &err, "missing webhook-timestamp header"),
       "missing webhook-timestamp");

    rc = std_verify(keys, 1, V1_ID, V1_TS, "", V1_BODY, V1_NOW, &err);
    ok(declined_with(rc, &err, "missing webhook-signature header"),
       "missing webhook-signature");

    /* malformed id and timestamp */

    rc = std_verify(keys, 1, "msg.1", V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    ok(declined_with(rc, &err, "malformed webhook-id"),
       "id containing '.' refused");

    rc = std_verify(keys, 1, V1_ID, V1_TS ".5", V1_SIG, V1_BODY, V1_NOW,
                    &err);
    ok(declined_with(rc, &err, "malformed timestamp"),
       "timestamp containing '.' refused");

    rc = std_verify(keys, 1, V1_ID, "abc", V1_SIG, V1_BODY, V1_NOW, &err);
    ok(declined_with(rc, &err, "malformed timestamp"),
       "non-digit timestamp refused");

    rc = std_verify(keys, 1, V1_ID, "+" V1_TS, V1_SIG, V1_BODY, V1_NOW,
                    &err);
    is_int(rc, LOYALTY_DECLINED, "signed timestamp refused");

    rc = std_verify(keys, 1, V1_ID, "-1", V1_SIG, V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_DECLINED, "negative timestamp refused");

    rc = std_verify(keys, 1, V1_ID, " " V1_TS, V1_SIG, V1_BODY, V1_NOW,
                    &err);
    is_int(rc, LOYALTY_DECLINED, "timestamp with a space refused");

    rc = std_verify(keys, 1, V1_ID, "1234567890123456789", V1_SIG, V1_BODY,
                    V1_NOW, &err);
    ok(declined_with(rc, &err, "malformed timestamp"),
       "19-digit timestamp refused");

    /* tolerance, both directions */

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW + 301,
                    &err);
    ok(declined_with(rc, &err, "timestamp too old"),
       "timestamp 301 s old refused");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW - 301,
                    &err);
    ok(declined_with(rc, &err, "timestamp too new"),
       "timestamp 301 s in the future refused");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW + 299,
                    &err);
    is_int(rc, LOYALTY_OK, "timestamp 299 s old accepted");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW - 299,
                    &err);
    is_int(rc, LOYALTY_OK, "timestamp 299 s in the future accepted");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW + 300,
                    &err);
    is_int(rc, LOYALTY_OK, "timestamp exactly 300 s old accepted");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW - 300,
                    &err);
    is_int(rc, LOYALTY_OK, "timestamp exactly 300 s ahead accepted");

    /* content */

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, "", V1_NOW, &err);
    ok(declined_with(rc, &err, "no matching signature"), "empty body");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, "{\"test\":2432232314}",
                    V1_NOW, &err);
    ok(declined_with(rc, &err, "no matching signature"),
       "signature over re-serialised JSON refused");

    rc = std_verify(keys, 1, "msg_p5jXN8AQM9LWM0D4loKWxJeK", V1_TS, V1_SIG,
                    V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_DECLINED, "other id refused");

    rc = std_verify(keys, 1, V1_ID, "1614265331", V1_SIG, V1_BODY, V1_NOW,
                    &err);
    is_int(rc, LOYALTY_DECLINED, "other timestamp refused");

    rc = std_verify(keys, 1, V1_ID, "01614265330", V1_SIG, V1_BODY, V1_NOW,
                    &err);
    is_int(rc, LOYALTY_DECLINED,
           "timestamp text is signed as sent (leading zero)");

    keys[0] = wrong;
    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    ok(declined_with(rc, &err, "no matching signature"), "wrong key");

    keys[0] = k1;
    rc = std_verify(keys, 1, V3_ID, V3_TS, V3_SIG, V3_BODY, V3_NOW, &err);
    is_int(rc, LOYALTY_DECLINED,
           "BigCommerce signature under the base64-decoded key refused");

    /* signature lists */

    rc = std_verify(keys, 1, V1_ID, V1_TS,
                    "v1,Zm9v v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= "
                    "v1,!!!! v1, v1 " V1_SIG, V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "several signatures, only the last valid");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG " v1,Zm9v", V1_BODY,
                    V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "several signatures, only the first valid");

    rc = std_verify(keys, 1, V1_ID, V1_TS, "  v1,Zm9v  \t " V1_SIG "  ",
                    V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "extra spaces and tabs between entries");

    rc = std_verify(keys, 1, V1_ID, V1_TS,
                    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
                    V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "signature without padding");

    rc = std_verify(keys, 1, V1_ID, V1_TS, "v2," V1_B64, V1_BODY, V1_NOW,
                    &err);
    ok(declined_with(rc, &err, "no matching signature"), "v2, entry ignored");

    rc = std_verify(keys, 1, V1_ID, V1_TS, "v1a," V1_B64, V1_BODY, V1_NOW,
                    &err);
    is_int(rc, LOYALTY_DECLINED, "v1a, entry ignored");

    rc = std_verify(keys, 1, V1_ID, V1_TS, "V1," V1_B64, V1_BODY, V1_NOW,
                    &err);
    is_int(rc, LOYALTY_DECLINED, "V1, (upper case) entry ignored");

    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_B64, V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_DECLINED, "entry without a version ignored");

    rc = std_verify(keys, 1, V1_ID, V1_TS, "v1=" V1_B64, V1_BODY, V1_NOW,
                    &err);
    is_int(rc, LOYALTY_DECLINED, "v1= entry ignored");

    rc = std_verify(keys, 1, V1_ID, V1_TS,
                    "v2," V1_B64 " v1a," V1_B64 " " V1_SIG, V1_BODY, V1_NOW,
                    &err);
    is_int(rc, LOYALTY_OK, "v2, and v1a, skipped, v1, matches");

    rc = std_verify(keys, 1, V1_ID, V1_TS,
                    "v1,83484cf52b04f8e4cf2531adfed9882ad4b2665137b85244"
                    "2d594d20e2c9d4e1", V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_DECLINED, "hex where base64 is expected");

    rc = std_verify(keys, 1, V1_ID, V1_TS, "v1," V1_B64 "AAAA", V1_BODY,
                    V1_NOW, &err);
    is_int(rc, LOYALTY_DECLINED, "signature with extra bytes");

    rc = std_verify(keys, 1, V1_ID, V1_TS,
                    "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1O==",
                    V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_DECLINED, "truncated signature");

    /* rotation */

    keys[0] = wrong;
    keys[1] = k1;
    rc = std_verify(keys, 2, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "rotation: only the second key matches");

    keys[0] = k1;
    keys[1] = wrong;
    rc = std_verify(keys, 2, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "rotation: only the first key matches");

    keys[0] = wrong;
    keys[1] = k3;
    keys[2] = k1;
    rc = std_verify(keys, 3, V3_ID, V3_TS, "v1,Zm9v " V3_SIG, V3_BODY,
                    V3_NOW, &err);
    is_int(rc, LOYALTY_OK, "three keys, two signatures");

    rc = std_verify(keys, 1, V3_ID, V3_TS, V3_SIG, V3_BODY, V3_NOW, &err);
    is_int(rc, LOYALTY_DECLINED, "the keys after nkeys are not used");

    rc = std_verify(keys, 0, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    ok(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_CONFIG,
       "no keys is a configuration error");

    /* the keys still work after all the failures above */

    keys[0] = k1;
    rc = std_verify(keys, 1, V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err);
    is_int(rc, LOYALTY_OK, "vector 1 after failures");

    loyalty_hmac_key_free(k1);
    loyalty_hmac_key_free(k3);
    loyalty_hmac_key_free(wrong);
}


static void
test_body(void)
{
    int                  rc;
    char                 hexlong[131], b64long[201];
    loyalty_err_t        err;
    loyalty_str_t        s, b;
    loyalty_hmac_key_t  *k, *wrong, *sha1, *jefe, *keys[2];

    const sig_case_t  cases[] = {
        { KEYS_GOOD, LOYALTY_ENC_BASE64, V4_B64, V4_BODY, 0,
          LOYALTY_OK, NULL, "vector 4: raw body, base64" },
        { KEYS_GOOD, LOYALTY_ENC_HEX, V4_HEX, V4_BODY, 0,
          LOYALTY_OK, NULL, "vector 4: raw body, hex" },
        { KEYS_GOOD, LOYALTY_ENC_HEX, "0F450C5E6863C01462E32EBA4E6849AC"
          "3961400043EF32367E6DE9EBF40B328F", V4_BODY, 0,
          LOYALTY_OK, NULL, "upper-case hex accepted" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64, " \t" V4_B64 " \r\n", V4_BODY, 0,
          LOYALTY_OK, NULL, "surrounding whitespace trimmed" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64,
          "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8", V4_BODY, 0,
          LOYALTY_OK, NULL, "base64 without padding accepted" },

        /* missing and malformed */

        { KEYS_GOOD, LOYALTY_ENC_BASE64, "", V4_BODY, 0,
          LOYALTY_DECLINED, "missing signature", "empty signature" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64, NULL, V4_BODY, 0,
          LOYALTY_DECLINED, "missing signature", "absent signature" },
        { KEYS_GOOD, LOYALTY_ENC_HEX, "  \t ", V4_BODY, 0,
          LOYALTY_DECLINED, "missing signature", "blank signature" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64, "D0UM Xmhj", V4_BODY, 0,
          LOYALTY_DECLINED, "malformed signature",
          "inner space is malformed" },
        { KEYS_GOOD, LOYALTY_ENC_HEX, "zz", V4_BODY, 0,
          LOYALTY_DECLINED, "malformed signature",
          "non-hex signature is malformed" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64, "====", V4_BODY, 0,
          LOYALTY_DECLINED, "malformed signature",
          "padding only is malformed" },
        { KEYS_GOOD, LOYALTY_ENC_HEX, "0f450c", V4_BODY, 0,
          LOYALTY_DECLINED, "wrong signature length",
          "short hex signature" },
        { KEYS_GOOD, LOYALTY_ENC_HEX, hexlong, V4_BODY, 0,
          LOYALTY_DECLINED, "wrong signature length",
          "overlong hex signature" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64, b64long, V4_BODY, 0,
          LOYALTY_DECLINED, "wrong signature length",
          "overlong base64 signature" },

        /* base64 vs hex confusion */

        { KEYS_GOOD, LOYALTY_ENC_BASE64, V4_HEX, V4_BODY, 0,
          LOYALTY_DECLINED, "wrong signature length",
          "hex given where base64 is expected" },
        { KEYS_GOOD, LOYALTY_ENC_HEX, V4_B64, V4_BODY, 0,
          LOYALTY_DECLINED, "malformed signature",
          "base64 given where hex is expected" },

        /* content and keys */

        { KEYS_GOOD, LOYALTY_ENC_BASE64, V4_B64, "", 0,
          LOYALTY_DECLINED, "no matching signature", "empty body" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64,
          "Knm8rWjeSXNIt2H0AOMT7DQ8/YSy8sQi/pEjbuUmGMs=", "", 0,
          LOYALTY_OK, NULL, "empty body with its own signature" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64, V4_B64,
          "{\"id\": 820982911946154508, \"email\": \"jon@example.com\"}", 0,
          LOYALTY_DECLINED, "no matching signature",
          "signature over re-serialised JSON refused" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64, V4_B64, V4_BODY "\n", 0,
          LOYALTY_DECLINED, NULL, "trailing newline in body refused" },
        { KEYS_WRONG, LOYALTY_ENC_BASE64, V4_B64, V4_BODY, 0,
          LOYALTY_DECLINED, "no matching signature", "wrong key" },
        { KEYS_ROTATED, LOYALTY_ENC_BASE64, V4_B64, V4_BODY, 0,
          LOYALTY_OK, NULL, "rotation: only the second key matches" },
        { KEYS_NONE, LOYALTY_ENC_BASE64, V4_B64, V4_BODY, 0,
          LOYALTY_ERROR, NULL, "no keys is a configuration error" }
    };

    /* SHA-1 generic variant (RFC 2202 case 2); "good" is the SHA-1 key */
    const sig_case_t  sha1_cases[] = {
        { KEYS_GOOD, LOYALTY_ENC_HEX,
          "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79", RFC2202_2_DATA, 0,
          LOYALTY_OK, NULL, "HMAC-SHA1, hex" },
        { KEYS_GOOD, LOYALTY_ENC_BASE64,
          "7/zfauXrL6LSdBbV8YTfnCWafHk=", RFC2202_2_DATA, 0,
          LOYALTY_OK, NULL, "HMAC-SHA1, base64" },
        { KEYS_GOOD, LOYALTY_ENC_HEX, RFC4231_2_HEX, RFC2202_2_DATA, 0,
          LOYALTY_DECLINED, "wrong signature length",
          "SHA-256 signature for a SHA-1 key: wrong length" },
        { KEYS_GOOD, LOYALTY_ENC_HEX,
          "effcdf6ae5eb2fa2d27416d5f184df9c259a7c78", RFC2202_2_DATA, 0,
          LOYALTY_DECLINED, "no matching signature",
          "HMAC-SHA1, last bit flipped" }
    };

    /* the SHA-1 key first, then the SHA-256 one that matches */
    const sig_case_t  mixed[] = {
        { KEYS_ROTATED, LOYALTY_ENC_HEX, RFC4231_2_HEX, RFC2202_2_DATA, 0,
          LOYALTY_OK, NULL, "mixed SHA-1 and SHA-256 keys" }
    };

    memset(hexlong, 'a', 130);
    hexlong[130] = '\0';
    memset(b64long, 'A', 200);
    b64long[200] = '\0';

    k = key_raw(LOYALTY_MD_SHA256, V4_SECRET);
    wrong = key_raw(LOYALTY_MD_SHA256, "hush2");
    sha1 = key_raw(LOYALTY_MD_SHA1, "Jefe");
    jefe = key_raw(LOYALTY_MD_SHA256, "Jefe");

    run_cases(body_verify, k, wrong, cases, nelts(cases));

    keys[0] = k;
    b = S(V4_BODY);
    rc = loyalty_sig_body_verify(keys, 1, LOYALTY_ENC_HEX, NULL, &b, &err);
    ok(declined_with(rc, &err, "missing signature"), "NULL signature");

    keys[0] = wrong;
    keys[1] = k;
    s = S(V4_B64);
    rc = loyalty_sig_body_verify(keys, 2, (loyalty_enc_e) 7, &s, &b, &err);
    ok(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_CONFIG,
       "unknown encoding is a configuration error");

    run_cases(body_verify, sha1, NULL, sha1_cases, nelts(sha1_cases));
    run_cases(body_verify, jefe, sha1, mixed, nelts(mixed));

    loyalty_hmac_key_free(k);
    loyalty_hmac_key_free(wrong);
    loyalty_hmac_key_free(sha1);
    loyalty_hmac_key_free(jefe);
}


static void
test_stripe(void)
{
    loyalty_hmac_key_t  *k, *wrong;

    static const sig_case_t  cases[] = {
        { KEYS_GOOD, 0, V5_HEADER, V4_BODY, V5_NOW,
          LOYALTY_OK, NULL, "vector 5: Stripe" },
        { KEYS_GOOD, 0, V5_HEADER, V4_BODY, V5_NOW + 299,
          LOYALTY_OK, NULL, "t 299 s old accepted" },
        { KEYS_GOOD, 0, V5_HEADER, V4_BODY, V5_NOW + 301,
          LOYALTY_DECLINED, "timestamp too old", "t 301 s old refused" },
        { KEYS_GOOD, 0, V5_HEADER, V4_BODY, V5_NOW - 301,
          LOYALTY_OK, NULL, "t 301 s ahead accepted, as Stripe's SDKs do" },
        { KEYS_GOOD, 0, "", V4_BODY, V5_NOW,
          LOYALTY_DECLINED, "missing Stripe-Signature header",
          "missing header" },
        { KEYS_GOOD, 0, "v1=" V5_V1, V4_BODY, V5_NOW,
          LOYALTY_DECLINED, "missing timestamp", "no t=" },
        { KEYS_GOOD, 0, "t=17e8,v1=" V5_V1, V4_BODY, V5_NOW,
          LOYALTY_DECLINED, "malformed timestamp", "malformed t=" },
        { KEYS_GOOD, 0, "t=,v1=" V5_V1, V4_BODY, V5_NOW,
          LOYALTY_DECLINED, "malformed timestamp", "empty t=" },
        { KEYS_GOOD, 0, "t=1700000000", V4_BODY, V5_NOW,
          LOYALTY_DECLINED, "no matching signature", "no v1=" },
        { KEYS_GOOD, 0, "t=1700000000,v0=" V5_V1, V4_BODY, V5_NOW,
          LOYALTY_DECLINED, NULL, "v0= ignored" },
        { KEYS_GOOD, 0, "t=1700000000,v2=" V5_V1, V4_BODY, V5_NOW,
          LOYALTY_DECLINED, NULL, "v2= ignored" },
        { KEYS_GOOD, 0, "t=1700000000,v1=" V5_V1 "00", V4_BODY, V5_NOW,
          LOYALTY_DECLINED, NULL, "signature with an extra byte" },
        { KEYS_GOOD, 0, "t=1700000000,v0=" V5_V1 ",v1=00ff,v1=zz,v1=" V5_V1,
          V4_BODY, V5_NOW, LOYALTY_OK, NULL,
          "several v1=, only the last valid; v0= ignored" },
        { KEYS_GOOD, 0, "v1=" V5_V1 ",t=1700000000", V4_BODY, V5_NOW,
          LOYALTY_OK, NULL, "items in any order" },
        { KEYS_GOOD, 0, " t=1700000000 , v1=" V5_V1 " ", V4_BODY, V5_NOW,
          LOYALTY_OK, NULL, "spaces around items" },
        { KEYS_GOOD, 0, "t=1700000000,v1=D2EF6F609CF69CE282BEF3673DC8B4A6"
          "1C6FF6E1A1A47D315AC5C3C953DE84AC", V4_BODY, V5_NOW,
          LOYALTY_OK, NULL, "upper-case hex accepted" },
        { KEYS_GOOD, 0, "t=1700000001,v1=" V5_V1, V4_BODY, V5_NOW,
          LOYALTY_DECLINED, NULL, "t is signed" },
        { KEYS_GOOD, 0, "t=1700000000,"
          "v1=0u9vYJz2nOKCvvNnPci0phxv9uGhpH0xWsXDyVPehKw=", V4_BODY, V5_NOW,
          LOYALTY_DECLINED, NULL, "base64 where hex is expected" },
        { KEYS_GOOD, 0, V5_HEADER, V4_BODY " ", V5_NOW,
          LOYALTY_DECLINED, NULL, "other body" },
        { KEYS_GOOD, 0, V5_HEADER, "", V5_NOW,
          LOYALTY_DECLINED, NULL, "empty body" },
        { KEYS_WRONG, 0, V5_HEADER, V4_BODY, V5_NOW,
          LOYALTY_DECLINED, "no matching signature", "wrong key" },
        { KEYS_ROTATED, 0, V5_HEADER, V4_BODY, V5_NOW,
          LOYALTY_OK, NULL, "rotation: only the second key matches" },
        { KEYS_NONE, 0, V5_HEADER, V4_BODY, V5_NOW,
          LOYALTY_ERROR, NULL, "no keys is a configuration error" }
    };

    k = key_raw(LOYALTY_MD_SHA256, V5_SECRET);
    wrong = key_raw(LOYALTY_MD_SHA256, "whsec_other_secret");

    run_cases(stripe_verify, k, wrong, cases, nelts(cases));

    loyalty_hmac_key_free(k);
    loyalty_hmac_key_free(wrong);
}


int
main(void)
{
    test_base64();
    test_hex();
    test_hmac();
    test_standard_key();
    test_standard();
    test_body();
    test_stripe();

    return done_testing();
}
