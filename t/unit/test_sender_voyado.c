/*
 * Copyright (C) loyalty-edge authors
 *
 * voyado: the Svix scheme (apis.md section 6, vectors 1 and 2 of
 * section 10) under svix-* and webhook-* header names, keyed with the
 * base64-decoded part of a "whsec_" secret, the negative cases of
 * section 10, and normalize after verify.  Expected signatures are
 * computed here with OpenSSL.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


/* apis.md section 10, vectors 1 (webhook-*) and 2 (svix-*) */
#define V1_SECRET   "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define V1_KEY_B64  "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define V1_ID       "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define V1_TS       "1614265330"
#define V1_NOW      1614265330
#define V1_BODY     "{\"test\": 2432232314}"
#define V1_SIG      "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* base64 of "wrongwrongwrongwrong" */
#define OTHER_SECRET  "whsec_d3Jvbmd3cm9uZ3dyb25nd3Jvbmc="

#define N_BODY                                                               \
    "{\"eventType\":\"point.balance.updated\",\"id\":\"ev-1\","              \
    "\"isEncrypted\":false,\"tenant\":\"acme\",\"payload\":"                  \
    "{\"balance\":1250.0,\"contactId\":\"c-1\",\"accountId\":17}}"


static const u_char *copy(const char *s);
static void hdr(lt_headers_t *h, const char *name, const char *value);
static void sign(const char *secret, const char *id, const char *ts,
    const char *body, int hex, char *out);
static int verify(const char *secret1, const char *secret2,
    lt_headers_t *h, const char *body, time_t now, time_t tolerance,
    loyalty_err_t *err);
static int three(const char *prefix, const char *id, const char *ts,
    const char *sig, const char *body, time_t now, loyalty_err_t *err);
static void test_vectors(void);
static void test_keys(void);
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


static void
hdr(lt_headers_t *h, const char *name, const char *value)
{
    lt_header_add(h, &arena, name, value);
}


/* "v1,<base64>" (hex when hex) of "id.ts.body", a whsec_ secret's key */

static void
sign(const char *secret, const char *id, const char *ts, const char *body,
    int hex, char *out)
{
    int            klen;
    char          *msg;
    size_t         i, mlen, n;
    u_char         key[128], mac[EVP_MAX_MD_SIZE];
    unsigned int   len;

    if (strncmp(secret, "whsec_", 6) == 0) {
        secret += 6;
    }

    n = strlen(secret);
    klen = EVP_DecodeBlock(key, (const u_char *) secret, (int) n);

    /* EVP_DecodeBlock counts the padding as zero bytes */
    while (n > 0 && secret[n - 1] == '=') {
        klen--;
        n--;
    }

    mlen = strlen(id) + strlen(ts) + strlen(body) + 2;
    msg = malloc(mlen + 1);
    if (msg == NULL || klen <= 0) {
        exit(2);
    }

    snprintf(msg, mlen + 1, "%s.%s.%s", id, ts, body);

    HMAC(EVP_sha256(), key, klen, (u_char *) msg, mlen, mac, &len);
    free(msg);

    memcpy(out, "v1,", 3);

    if (hex) {
        for (i = 0; i < len; i++) {
            sprintf(out + 3 + 2 * i, "%02x", mac[i]);
        }

    } else {
        EVP_EncodeBlock((u_char *) out + 3, mac, (int) len);
    }
}


static int
verify(const char *secret1, const char *secret2, lt_headers_t *h,
    const char *body, time_t now, time_t tolerance, loyalty_err_t *err)
{
    int                       rc;
    loyalty_str_t             s;
    loyalty_request_t         req;
    loyalty_provider_conf_t   conf;

    loyalty_provider_conf_init(&conf);
    loyalty_provider_conf_set(&conf, loyalty_provider_find(
                                  (const u_char *) "voyado", 6));
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

    lt_request(&req, h, copy(body), strlen(body), now,
               (int64_t) now * 1000);

    err->code = 0;
    err->msg[0] = '\0';

    rc = conf.provider->verify(&conf, &req, err);

    loyalty_provider_conf_free(&conf);

    return rc;
}


/* prefix "svix-" or "webhook-"; NULL values are left out */

static int
three(const char *prefix, const char *id, const char *ts, const char *sig,
    const char *body, time_t now, loyalty_err_t *err)
{
    lt_headers_t  h;

    static char   name[3][32];

    memset(&h, 0, sizeof(lt_headers_t));

    snprintf(name[0], 32, "%sid", prefix);
    snprintf(name[1], 32, "%stimestamp", prefix);
    snprintf(name[2], 32, "%ssignature", prefix);

    if (id != NULL) {
        hdr(&h, name[0], id);
    }

    if (ts != NULL) {
        hdr(&h, name[1], ts);
    }

    if (sig != NULL) {
        hdr(&h, name[2], sig);
    }

    return verify(V1_SECRET, NULL, &h, body, now, 300, err);
}


static void
test_vectors(void)
{
    char           sig[128];
    loyalty_err_t  err;
    lt_headers_t   h;

    is_int(three("svix-", V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err),
           LOYALTY_OK, "vector 2: svix-* headers verify");
    is_int(three("webhook-", V1_ID, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err),
           LOYALTY_OK, "vector 1: webhook-* headers verify");

    sign(V1_SECRET, V1_ID, V1_TS, V1_BODY, 0, sig);
    is_str(sig, V1_SIG, "our own signer agrees with vector 1");

    /* both sets: svix-* decides */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "svix-id", V1_ID);
    hdr(&h, "svix-timestamp", V1_TS);
    hdr(&h, "svix-signature", V1_SIG);
    hdr(&h, "webhook-id", "msg_other");
    hdr(&h, "webhook-timestamp", "1");
    hdr(&h, "webhook-signature", "v1,AAAA");
    is_int(verify(V1_SECRET, NULL, &h, V1_BODY, V1_NOW, 300, &err),
           LOYALTY_OK, "both sets, svix-* valid: verified by svix-*");

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "svix-id", "msg_other");
    hdr(&h, "svix-timestamp", V1_TS);
    hdr(&h, "svix-signature", "v1,AAAA");
    hdr(&h, "webhook-id", V1_ID);
    hdr(&h, "webhook-timestamp", V1_TS);
    hdr(&h, "webhook-signature", V1_SIG);
    is_int(verify(V1_SECRET, NULL, &h, V1_BODY, V1_NOW, 300, &err),
           LOYALTY_DECLINED,
           "both sets, only webhook-* valid: svix-* decides, 401");

    /* a partial svix set does not fall back to webhook-* */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "svix-signature", V1_SIG);
    hdr(&h, "webhook-id", V1_ID);
    hdr(&h, "webhook-timestamp", V1_TS);
    is_int(verify(V1_SECRET, NULL, &h, V1_BODY, V1_NOW, 300, &err),
           LOYALTY_DECLINED, "svix-signature without svix-id: 401");
    is_str(err.msg, "missing svix-id header", "... says svix-id is missing");
}


static void
test_keys(void)
{
    loyalty_err_t  err;
    lt_headers_t   h;

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "svix-id", V1_ID);
    hdr(&h, "svix-timestamp", V1_TS);
    hdr(&h, "svix-signature", V1_SIG);

    is_int(verify(V1_KEY_B64, NULL, &h, V1_BODY, V1_NOW, 300, &err),
           LOYALTY_OK, "the secret without its whsec_ prefix works");
    is_int(verify(OTHER_SECRET, V1_SECRET, &h, V1_BODY, V1_NOW, 300, &err),
           LOYALTY_OK, "rotation: the second secret verifies");
    is_int(verify(OTHER_SECRET, NULL, &h, V1_BODY, V1_NOW, 300, &err),
           LOYALTY_DECLINED, "another secret: 401");
    is_str(err.msg, "no matching signature", "... no matching signature");
    is_int(verify("whsec_not*base64!", NULL, &h, V1_BODY, V1_NOW, 300,
                  &err),
           LOYALTY_ERROR, "a secret that is not base64 is a config error");
    is_int(err.code, LOYALTY_ERR_CONFIG, "... LOYALTY_ERR_CONFIG");
}


static void
test_negative(void)
{
    char           sig[128], raw[128];
    loyalty_err_t  err;

    is_int(three("svix-", NULL, V1_TS, V1_SIG, V1_BODY, V1_NOW, &err),
           LOYALTY_DECLINED, "missing svix-id");
    is_str(err.msg, "missing svix-id header", "... says so");
    is_int(three("svix-", V1_ID, NULL, V1_SIG, V1_BODY, V1_NOW, &err),
           LOYALTY_DECLINED, "missing svix-timestamp");
    is_str(err.msg, "missing svix-timestamp header", "... says so");
    is_int(three("svix-", V1_ID, V1_TS, NULL, V1_BODY, V1_NOW, &err),
           LOYALTY_DECLINED, "missing svix-signature");
    is_str(err.msg, "missing svix-signature header", "... says so");
    is_int(three("webhook-", V1_ID, V1_TS, NULL, V1_BODY, V1_NOW, &err),
           LOYALTY_DECLINED, "missing webhook-signature");
    is_str(err.msg, "missing webhook-signature header", "... says so");

    sign(V1_SECRET, V1_ID, V1_TS, V1_BODY, 1, sig);
    is_int(three("svix-", V1_ID, V1_TS, sig, V1_BODY, V1_NOW, &err),
           LOYALTY_DECLINED, "the right MAC in hex instead of base64");

    /* keyed with the secret's text instead of its decoded bytes */
    {
        u_char        mac[EVP_MAX_MD_SIZE];
        unsigned int  len;
        const char   *msg = V1_ID "." V1_TS "." V1_BODY;

        HMAC(EVP_sha256(), V1_SECRET, (int) strlen(V1_SECRET),
             (const u_char *) msg, strlen(msg), mac, &len);
        memcpy(raw, "v1,", 3);
        EVP_EncodeBlock((u_char *) raw + 3, mac, (int) len);

        is_int(three("svix-", V1_ID, V1_TS, raw, V1_BODY, V1_NOW, &err),
               LOYALTY_DECLINED,
               "keyed with the whsec_ text instead of the decoded key");
    }

    is_int(three("svix-", V1_ID, V1_TS, V1_SIG, "{\"test\":2432232314}",
                 V1_NOW, &err),
           LOYALTY_DECLINED, "signature over re-serialised JSON");
    is_int(three("svix-", "msg_other", V1_TS, V1_SIG, V1_BODY, V1_NOW,
                 &err),
           LOYALTY_DECLINED, "signature made for another id");
    is_int(three("svix-", V1_ID, V1_TS, V1_SIG, "", V1_NOW, &err),
           LOYALTY_DECLINED, "empty body under the vector's signature");
}


static void
test_window(void)
{
    char           ts[32], sig[128];
    loyalty_err_t  err;

    snprintf(ts, sizeof(ts), "%ld", (long) V1_NOW - 301);
    sign(V1_SECRET, V1_ID, ts, V1_BODY, 0, sig);
    is_int(three("svix-", V1_ID, ts, sig, V1_BODY, V1_NOW, &err),
           LOYALTY_DECLINED, "timestamp 301 s old: 401");
    is_str(err.msg, "timestamp too old", "... too old");

    snprintf(ts, sizeof(ts), "%ld", (long) V1_NOW + 301);
    sign(V1_SECRET, V1_ID, ts, V1_BODY, 0, sig);
    is_int(three("svix-", V1_ID, ts, sig, V1_BODY, V1_NOW, &err),
           LOYALTY_DECLINED, "timestamp 301 s in the future: 401");
    is_str(err.msg, "timestamp too new", "... too new");

    snprintf(ts, sizeof(ts), "%ld", (long) V1_NOW - 299);
    sign(V1_SECRET, V1_ID, ts, V1_BODY, 0, sig);
    is_int(three("webhook-", V1_ID, ts, sig, V1_BODY, V1_NOW, &err),
           LOYALTY_OK, "timestamp 299 s old: inside");

    snprintf(ts, sizeof(ts), "%ld", (long) V1_NOW + 299);
    sign(V1_SECRET, V1_ID, ts, V1_BODY, 0, sig);
    is_int(three("webhook-", V1_ID, ts, sig, V1_BODY, V1_NOW, &err),
           LOYALTY_OK, "timestamp 299 s ahead: inside");
}


static void
test_lists(void)
{
    char           good[128], bad[128], list[512];
    loyalty_err_t  err;
    lt_headers_t   h;

    sign(V1_SECRET, V1_ID, V1_TS, V1_BODY, 0, good);
    sign(OTHER_SECRET, V1_ID, V1_TS, V1_BODY, 0, bad);

    snprintf(list, sizeof(list), "%s v1,Zm9vYmFy %s", bad, good);
    is_int(three("svix-", V1_ID, V1_TS, list, V1_BODY, V1_NOW, &err),
           LOYALTY_OK, "several signatures, only the last valid");

    snprintf(list, sizeof(list), "v2,%s", good + 3);
    is_int(three("svix-", V1_ID, V1_TS, list, V1_BODY, V1_NOW, &err),
           LOYALTY_DECLINED, "the valid MAC as a v2 entry is ignored");

    snprintf(list, sizeof(list), "v1a,%s v0,AAAA %s", good + 3, good);
    is_int(three("svix-", V1_ID, V1_TS, list, V1_BODY, V1_NOW, &err),
           LOYALTY_OK, "v1a and v0 entries before a valid v1 are skipped");

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "Svix-Id", V1_ID);
    hdr(&h, "SVIX-TIMESTAMP", V1_TS);
    hdr(&h, "Svix-Signature", V1_SIG);
    is_int(verify(V1_SECRET, NULL, &h, V1_BODY, V1_NOW, 300, &err),
           LOYALTY_OK, "header names in mixed case");
}


static void
test_normalize(void)
{
    int                       rc;
    char                      sig[128], ts[32];
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_str_t             s;
    loyalty_batch_t           batch;
    loyalty_request_t         req;
    loyalty_provider_conf_t   conf;

    loyalty_provider_conf_init(&conf);
    loyalty_provider_conf_set(&conf, loyalty_provider_find(
                                  (const u_char *) "voyado", 6));
    s = lt_str(V1_SECRET);
    ok(loyalty_provider_add_secret(&conf, &s, &err) == LOYALTY_OK,
       "conf with the vector secret");

    snprintf(ts, sizeof(ts), "%d", 1732442398);
    sign(V1_SECRET, "msg_norm_1", ts, N_BODY, 0, sig);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "svix-id", "msg_norm_1");
    hdr(&h, "svix-timestamp", ts);
    hdr(&h, "svix-signature", sig);

    lt_request(&req, &h, copy(N_BODY), strlen(N_BODY), 1732442400,
               (int64_t) 1732442400 * 1000);

    is_int(conf.provider->verify(&conf, &req, &err), LOYALTY_OK,
           "point.balance.updated verifies");

    memset(&batch, 0, sizeof(loyalty_batch_t));
    rc = conf.provider->normalize(&conf, &req, &alloc, &batch, &err);
    is_int(rc, LOYALTY_OK, "... and normalizes");

    if (rc == LOYALTY_OK && batch.nevents == 1) {
        lt_str_is(&batch.events[0].id, "msg_norm_1", "... id = svix-id");
        lt_str_is(&batch.events[0].type, "points.adjusted", "... type");
        lt_str_is(&batch.events[0].topic, "point.balance.updated",
                  "... topic = eventType");
        lt_str_is(&batch.events[0].ext_id, "c-1", "... ext_id = contactId");
        lt_str_is(&batch.events[0].occurred, "2024-11-24T09:59:58Z",
                  "... occurred = svix-timestamp");
        lt_str_is(&batch.events[0].data,
                  "{\"points\":{\"balance_after\":1250,\"account_id\":\"17\"},"
                  "\"customer\":{\"ext_id\":\"c-1\",\"points_balance\":1250},"
                  "\"tenant\":\"acme\",\"event_id\":\"ev-1\"}",
                  "... data");
        ok(batch.events[0].alt_id.len == 0, "... no alt_id");
    }

    {
        size_t  i, errors;

        errors = 0;

        for (i = 1; i < 40; i++) {
            lt_request(&req, &h, copy(N_BODY), strlen(N_BODY), 1732442400,
                       (int64_t) 1732442400 * 1000);
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
    test_vectors();
    test_keys();
    test_negative();
    test_window();
    test_lists();
    test_normalize();

    lt_arena_free(&arena);

    return done_testing();
}
