/*
 * Copyright (C) loyalty-edge authors
 *
 * bigcommerce: Standard Webhooks headers keyed with the RAW client
 * secret (apis.md section 2.1, vector 3 of section 10), the negative
 * cases of section 10, and normalize after verify (ids, hash, thin
 * reference).  Expected signatures are computed here with OpenSSL.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


/* apis.md section 10, vector 3 */
#define V3_SECRET  "my_client_secret"
#define V3_ID      "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
#define V3_TS      "1674087231"
#define V3_NOW     1674087231
#define V3_BODY                                                              \
    "{\"scope\":\"store/order/created\",\"store_id\":\"1025646\","           \
    "\"data\":{\"type\":\"order\",\"id\":250},"                               \
    "\"hash\":\"dd70c0976e06b67aaf671e73f49dcb79230ebf9d\","                  \
    "\"created_at\":1561479335,\"producer\":\"stores/abc123\"}"
#define V3_SIG     "v1,KAygXNmtetBVjlJbJq7iwmht/bAa+VuLmbRV477gvbE="
/* base64 of "my_client_secret": what a Standard Webhooks library gets */
#define V3_SECRET_B64  "bXlfY2xpZW50X3NlY3JldA=="

#define OTHER_SECRET   "another_client_secret"


static const u_char *copy(const char *s);
static void hdr(lt_headers_t *h, const char *name, const char *value);
static void sign(const char *key, const char *id, const char *ts,
    const char *body, int hex, char *out);
static int verify(const char *secret1, const char *secret2,
    lt_headers_t *h, const char *body, time_t now, time_t tolerance,
    loyalty_err_t *err);
static int three(const char *id, const char *ts, const char *sig,
    const char *body, time_t now, loyalty_err_t *err);
static void test_vector(void);
static void test_negative(void);
static void test_window(void);
static void test_lists(void);
static void test_normalize(void);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


/* exact-size heap copies without a NUL, as nginx buffers are */

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


/* "v1,<base64>" (or hex when hex) of "id.ts.body" keyed with key */

static void
sign(const char *key, const char *id, const char *ts, const char *body,
    int hex, char *out)
{
    char          *msg;
    size_t         i, mlen;
    u_char         mac[EVP_MAX_MD_SIZE];
    unsigned int   len;

    mlen = strlen(id) + strlen(ts) + strlen(body) + 2;
    msg = malloc(mlen + 1);
    if (msg == NULL) {
        exit(2);
    }

    snprintf(msg, mlen + 1, "%s.%s.%s", id, ts, body);

    HMAC(EVP_sha256(), key, (int) strlen(key), (u_char *) msg, mlen, mac,
         &len);
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
                                  (const u_char *) "bigcommerce", 11));
    conf.tolerance = tolerance;

    s = lt_str(secret1);
    if (loyalty_provider_add_secret(&conf, &s, err) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    if (secret2 != NULL) {
        s = lt_str(secret2);
        if (loyalty_provider_add_secret(&conf, &s, err) != LOYALTY_OK) {
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


/* the three headers (any may be NULL: left out), the vector 3 secret */

static int
three(const char *id, const char *ts, const char *sig, const char *body,
    time_t now, loyalty_err_t *err)
{
    lt_headers_t  h;

    memset(&h, 0, sizeof(lt_headers_t));

    if (id != NULL) {
        hdr(&h, "webhook-id", id);
    }

    if (ts != NULL) {
        hdr(&h, "webhook-timestamp", ts);
    }

    if (sig != NULL) {
        hdr(&h, "webhook-signature", sig);
    }

    return verify(V3_SECRET, NULL, &h, body, now, 300, err);
}


static void
test_vector(void)
{
    char           sig[128];
    loyalty_err_t  err;

    is_int(three(V3_ID, V3_TS, V3_SIG, V3_BODY, V3_NOW, &err), LOYALTY_OK,
           "vector 3 verifies with the raw client secret");

    sign(V3_SECRET, V3_ID, V3_TS, V3_BODY, 0, sig);
    is_str(sig, V3_SIG, "our own signer agrees with vector 3");

    /* the key material confusions */
    {
        lt_headers_t  h;

        memset(&h, 0, sizeof(lt_headers_t));
        hdr(&h, "webhook-id", V3_ID);
        hdr(&h, "webhook-timestamp", V3_TS);
        hdr(&h, "webhook-signature", V3_SIG);

        is_int(verify(V3_SECRET_B64, NULL, &h, V3_BODY, V3_NOW, 300, &err),
               LOYALTY_DECLINED,
               "the base64 of the secret configured as the secret: 401");
        is_int(verify("whsec_" V3_SECRET_B64, NULL, &h, V3_BODY, V3_NOW,
                      300, &err),
               LOYALTY_DECLINED,
               "a whsec_ secret is used as its own bytes, not decoded");
        is_int(verify(OTHER_SECRET, V3_SECRET, &h, V3_BODY, V3_NOW, 300,
                      &err),
               LOYALTY_OK, "rotation: the second configured secret verifies");
        is_int(verify(OTHER_SECRET, "third_secret", &h, V3_BODY, V3_NOW,
                      300, &err),
               LOYALTY_DECLINED, "rotation: neither secret: 401");
        is_str(err.msg, "no matching signature", "... no matching signature");
        is_int(err.code, LOYALTY_ERR_SIGNATURE, "... a signature error");
    }
}


static void
test_negative(void)
{
    char           sig[128], body[512];
    loyalty_err_t  err;

    is_int(three(NULL, V3_TS, V3_SIG, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "missing webhook-id");
    is_str(err.msg, "missing webhook-id header", "... says so");

    is_int(three(V3_ID, NULL, V3_SIG, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "missing webhook-timestamp");
    is_str(err.msg, "missing webhook-timestamp header", "... says so");

    is_int(three(V3_ID, V3_TS, NULL, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "missing webhook-signature");
    is_str(err.msg, "missing webhook-signature header", "... says so");

    is_int(three(V3_ID, V3_TS, "", V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "empty webhook-signature");

    sign(OTHER_SECRET, V3_ID, V3_TS, V3_BODY, 0, sig);
    is_int(three(V3_ID, V3_TS, sig, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "signed with another secret");

    sign(V3_SECRET, V3_ID, V3_TS, V3_BODY, 1, sig);
    is_int(three(V3_ID, V3_TS, sig, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "the right MAC in hex instead of base64");

    /* the same JSON re-serialised with spaces */
    snprintf(body, sizeof(body), "%s", V3_BODY);
    {
        char    *p, out[600];
        size_t   n;

        n = 0;
        for (p = body; *p && n < sizeof(out) - 2; p++) {
            out[n++] = *p;
            if (*p == ',' || *p == ':') {
                out[n++] = ' ';
            }
        }
        out[n] = '\0';

        is_int(three(V3_ID, V3_TS, V3_SIG, out, V3_NOW, &err),
               LOYALTY_DECLINED, "signature over re-serialised JSON");
    }

    is_int(three("msg_other", V3_TS, V3_SIG, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "signature made for another webhook-id");

    is_int(three(V3_ID, "1674087232", V3_SIG, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "signature made for another timestamp");

    is_int(three(V3_ID, "yesterday", V3_SIG, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "timestamp not a number");
    is_str(err.msg, "malformed timestamp", "... malformed timestamp");

    /* an empty body is signed as "id.ts." and verifies as such */
    sign(V3_SECRET, V3_ID, V3_TS, "", 0, sig);
    is_int(three(V3_ID, V3_TS, sig, "", V3_NOW, &err), LOYALTY_OK,
           "an empty body signed as such verifies (normalize refuses it)");
    is_int(three(V3_ID, V3_TS, V3_SIG, "", V3_NOW, &err), LOYALTY_DECLINED,
           "an empty body under the vector's signature: 401");
}


static void
test_window(void)
{
    char           ts[32], sig[128];
    loyalty_err_t  err;
    lt_headers_t   h;

    /* 301 s either way is outside the default 300 s */
    snprintf(ts, sizeof(ts), "%ld", (long) V3_NOW - 301);
    sign(V3_SECRET, V3_ID, ts, V3_BODY, 0, sig);
    is_int(three(V3_ID, ts, sig, V3_BODY, V3_NOW, &err), LOYALTY_DECLINED,
           "timestamp 301 s old: 401");
    is_str(err.msg, "timestamp too old", "... too old");

    snprintf(ts, sizeof(ts), "%ld", (long) V3_NOW + 301);
    sign(V3_SECRET, V3_ID, ts, V3_BODY, 0, sig);
    is_int(three(V3_ID, ts, sig, V3_BODY, V3_NOW, &err), LOYALTY_DECLINED,
           "timestamp 301 s in the future: 401");
    is_str(err.msg, "timestamp too new", "... too new");

    snprintf(ts, sizeof(ts), "%ld", (long) V3_NOW - 300);
    sign(V3_SECRET, V3_ID, ts, V3_BODY, 0, sig);
    is_int(three(V3_ID, ts, sig, V3_BODY, V3_NOW, &err), LOYALTY_OK,
           "timestamp 300 s old: inside");

    snprintf(ts, sizeof(ts), "%ld", (long) V3_NOW + 300);
    sign(V3_SECRET, V3_ID, ts, V3_BODY, 0, sig);
    is_int(three(V3_ID, ts, sig, V3_BODY, V3_NOW, &err), LOYALTY_OK,
           "timestamp 300 s ahead: inside");

    /* loyalty_timestamp_tolerance */
    snprintf(ts, sizeof(ts), "%ld", (long) V3_NOW - 11);
    sign(V3_SECRET, V3_ID, ts, V3_BODY, 0, sig);
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "webhook-id", V3_ID);
    hdr(&h, "webhook-timestamp", ts);
    hdr(&h, "webhook-signature", sig);
    is_int(verify(V3_SECRET, NULL, &h, V3_BODY, V3_NOW, 10, &err),
           LOYALTY_DECLINED, "tolerance 10 s: 11 s old refused");
    is_int(verify(V3_SECRET, NULL, &h, V3_BODY, V3_NOW, 600, &err),
           LOYALTY_OK, "tolerance 600 s: 11 s old accepted");
}


static void
test_lists(void)
{
    char           good[128], bad[128], list[512];
    loyalty_err_t  err;
    lt_headers_t   h;

    sign(V3_SECRET, V3_ID, V3_TS, V3_BODY, 0, good);
    sign(OTHER_SECRET, V3_ID, V3_TS, V3_BODY, 0, bad);

    snprintf(list, sizeof(list), "%s v1,Zm9vYmFy %s", bad, good);
    is_int(three(V3_ID, V3_TS, list, V3_BODY, V3_NOW, &err), LOYALTY_OK,
           "several signatures, only the last valid");

    snprintf(list, sizeof(list), "%s %s", good, bad);
    is_int(three(V3_ID, V3_TS, list, V3_BODY, V3_NOW, &err), LOYALTY_OK,
           "several signatures, only the first valid");

    snprintf(list, sizeof(list), "v2,%s", good + 3);
    is_int(three(V3_ID, V3_TS, list, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "the valid MAC as a v2 entry is ignored");

    snprintf(list, sizeof(list), "v1a,%s v0,%s", good + 3, good + 3);
    is_int(three(V3_ID, V3_TS, list, V3_BODY, V3_NOW, &err),
           LOYALTY_DECLINED, "v1a and v0 entries are ignored");

    snprintf(list, sizeof(list), "v2,AAAA v1a,%s %s", good + 3, good);
    is_int(three(V3_ID, V3_TS, list, V3_BODY, V3_NOW, &err), LOYALTY_OK,
           "v2 and v1a entries before a valid v1 are skipped");

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "Webhook-Id", V3_ID);
    hdr(&h, "WEBHOOK-TIMESTAMP", V3_TS);
    hdr(&h, "Webhook-Signature", V3_SIG);
    is_int(verify(V3_SECRET, NULL, &h, V3_BODY, V3_NOW, 300, &err),
           LOYALTY_OK, "header names in mixed case");
}


static void
test_normalize(void)
{
    int                       rc;
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_str_t             s;
    loyalty_batch_t           batch;
    loyalty_request_t         req;
    loyalty_provider_conf_t   conf;

    loyalty_provider_conf_init(&conf);
    loyalty_provider_conf_set(&conf, loyalty_provider_find(
                                  (const u_char *) "bigcommerce", 11));
    s = lt_str(V3_SECRET);
    ok(loyalty_provider_add_secret(&conf, &s, &err) == LOYALTY_OK,
       "conf with the client secret");

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "webhook-id", V3_ID);
    hdr(&h, "webhook-timestamp", V3_TS);
    hdr(&h, "webhook-signature", V3_SIG);

    lt_request(&req, &h, copy(V3_BODY), strlen(V3_BODY), V3_NOW,
               (int64_t) V3_NOW * 1000 + 5);

    is_int(conf.provider->verify(&conf, &req, &err), LOYALTY_OK,
           "normalize: verified first");

    memset(&batch, 0, sizeof(loyalty_batch_t));
    rc = conf.provider->normalize(&conf, &req, &alloc, &batch, &err);
    is_int(rc, LOYALTY_OK, "vector 3 body normalizes");
    is_int((long long) batch.nevents, 1, "... one event");

    if (rc == LOYALTY_OK && batch.nevents == 1) {
        lt_str_is(&batch.events[0].id, V3_ID, "... id = webhook-id");
        lt_str_is(&batch.events[0].alt_id,
                  "dd70c0976e06b67aaf671e73f49dcb79230ebf9d",
                  "... alt_id = the payload hash");
        lt_str_is(&batch.events[0].src, "bigcommerce", "... src");
        lt_str_is(&batch.events[0].type, "order.created", "... type");
        lt_str_is(&batch.events[0].topic, "store/order/created",
                  "... topic = scope");
        lt_str_is(&batch.events[0].occurred, "2019-06-25T16:15:35Z",
                  "... occurred = created_at");
        lt_str_is(&batch.events[0].data,
                  "{\"ref\":{\"type\":\"order\",\"id\":\"250\"},"
                  "\"needs_fetch\":true,\"store_id\":\"1025646\","
                  "\"store_hash\":\"abc123\"}",
                  "... data: the reference to fetch");
        is_int(batch.events[0].received, (long long) V3_NOW * 1000 + 5,
               "... received");
    }

    /* an empty body that verified is still no payload */
    lt_request(&req, &h, copy(""), 0, V3_NOW, (int64_t) V3_NOW * 1000);
    memset(&batch, 0, sizeof(loyalty_batch_t));
    is_int(conf.provider->normalize(&conf, &req, &alloc, &batch, &err),
           LOYALTY_DECLINED, "empty body: declined");
    is_int(err.code, LOYALTY_ERR_JSON, "... as bad JSON (400)");

    /* allocation failure anywhere: LOYALTY_ERROR, never a crash */
    {
        size_t  i, errors;

        errors = 0;

        for (i = 1; i < 40; i++) {
            lt_request(&req, &h, copy(V3_BODY), strlen(V3_BODY), V3_NOW,
                       (int64_t) V3_NOW * 1000);
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
