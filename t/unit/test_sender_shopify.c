/*
 * Copyright (C) loyalty-edge authors
 *
 * The shopify sender: X-Shopify-Hmac-Sha256 (base64 HMAC-SHA256 of the
 * raw body) with apis.md section 10 vector 4, the negative cases of that
 * section that apply (Shopify signs no timestamp and sends one
 * signature), the shopify-* header set, rotation, and normalisation
 * details the golden cases do not pin: dedupe keys, header preference,
 * and allocation failure at every step.
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

#define NOW         1732442400
#define H_HMAC      "X-Shopify-Hmac-Sha256"


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static const u_char *
copy(const char *s, size_t len)
{
    return lt_arena_dup(&arena, s, len);
}


static void
hdr(lt_headers_t *h, const char *name, const char *value)
{
    lt_header_add(h, &arena, name, value);
}


static void
request(loyalty_request_t *req, lt_headers_t *h, const char *body)
{
    lt_request(req, h, copy(body, strlen(body)), strlen(body), NOW,
               (int64_t) NOW * 1000 + 123);
}


/* base64 HMAC-SHA256 of body with key, by OpenSSL directly */

static void
sign(const char *key, const char *body, char *out)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  len;

    HMAC(EVP_sha256(), key, (int) strlen(key), (const u_char *) body,
         strlen(body), mac, &len);
    EVP_EncodeBlock((u_char *) out, mac, (int) len);
}


static void
conf_with(loyalty_provider_conf_t *conf, const char *s1, const char *s2)
{
    loyalty_err_t  err;
    loyalty_str_t  s;

    loyalty_provider_conf_init(conf);
    loyalty_provider_conf_set(conf,
        loyalty_provider_find((const u_char *) "shopify", 7));

    s = lt_str(s1);
    if (loyalty_provider_add_secret(conf, &s, &err) != LOYALTY_OK) {
        diag("add_secret: %s", err.msg);
        exit(2);
    }

    if (s2 != NULL) {
        s = lt_str(s2);
        if (loyalty_provider_add_secret(conf, &s, &err) != LOYALTY_OK) {
            diag("add_secret: %s", err.msg);
            exit(2);
        }
    }
}


/* verify body with one header (name: value); NULL name: no header */

static int
verify1(const loyalty_provider_conf_t *conf, const char *name,
    const char *value, const char *body, loyalty_err_t *err)
{
    int                 rc;
    lt_headers_t        h;
    loyalty_request_t   req;

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "orders/paid");

    if (name != NULL) {
        hdr(&h, name, value);
    }

    request(&req, &h, body);

    err->code = 0;
    err->msg[0] = '\0';

    rc = conf->provider->verify(conf, &req, err);

    lt_arena_free(&arena);

    return rc;
}


static void
test_verify(void)
{
    int                       rc;
    char                      sig[128], sig2[128], buf[256];
    loyalty_err_t             err;
    loyalty_provider_conf_t   conf, rot;

    conf_with(&conf, V4_SECRET, NULL);

    ok(conf.provider != NULL
       && strcmp(conf.provider->name, "shopify") == 0,
       "shopify is registered");
    is_str(conf.provider->signature_header, H_HMAC,
           "documented default header");
    ok(conf.provider->encoding == LOYALTY_ENC_BASE64, "base64 by default");

    /* the vector, and our own HMAC agrees with it */
    sign(V4_SECRET, V4_BODY, sig);
    is_str(sig, V4_B64, "OpenSSL gives vector 4");

    is_int(verify1(&conf, H_HMAC, V4_B64, V4_BODY, &err), LOYALTY_OK,
           "vector 4 verifies");

    rc = verify1(&conf, NULL, NULL, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "missing header: declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "... as a signature error");
    ok(strstr(err.msg, "X-Shopify-Hmac-Sha256") != NULL,
       "... naming the header (%s)", err.msg);

    is_int(verify1(&conf, H_HMAC, "", V4_BODY, &err), LOYALTY_DECLINED,
           "empty header: declined");

    /* an empty body is refused even with its correct signature */
    sign(V4_SECRET, "", sig);
    rc = verify1(&conf, H_HMAC, sig, "", &err);
    is_int(rc, LOYALTY_DECLINED, "empty body, correctly signed: declined");
    is_str(err.msg, "empty body", "... empty body");

    is_int(verify1(&conf, H_HMAC, V4_HEX, V4_BODY, &err), LOYALTY_DECLINED,
           "the hex digest instead of base64: declined");

    sign("hush2", V4_BODY, sig);
    rc = verify1(&conf, H_HMAC, sig, V4_BODY, &err);
    is_int(rc, LOYALTY_DECLINED, "wrong key: declined");
    is_int(err.code, LOYALTY_ERR_SIGNATURE, "... signature error");

    /* the same JSON re-serialised is other bytes */
    is_int(verify1(&conf, H_HMAC, V4_B64,
                   "{\"id\": 820982911946154508, \"email\": "
                   "\"jon@example.com\"}", &err),
           LOYALTY_DECLINED, "signature over re-serialised JSON: declined");
    is_int(verify1(&conf, H_HMAC, V4_B64,
                   "{\"email\":\"jon@example.com\","
                   "\"id\":820982911946154508}", &err),
           LOYALTY_DECLINED, "members reordered: declined");
    is_int(verify1(&conf, H_HMAC, V4_B64, V4_BODY "\n", &err),
           LOYALTY_DECLINED, "a trailing newline: declined");

    /* mixed-case names (the transport is case-insensitive as nginx) */
    is_int(verify1(&conf, "x-shopify-hmac-sha256", V4_B64, V4_BODY, &err),
           LOYALTY_OK, "lower-case header name");
    is_int(verify1(&conf, "X-SHOPIFY-HMAC-SHA256", V4_B64, V4_BODY, &err),
           LOYALTY_OK, "upper-case header name");
    is_int(verify1(&conf, "Shopify-Hmac-Sha256", V4_B64, V4_BODY, &err),
           LOYALTY_OK, "the Events header shopify-hmac-sha256");

    /* Shopify sends one value: a list is no valid signature */
    sign("other", V4_BODY, sig);
    snprintf(buf, sizeof(buf), "%s,%s", sig, V4_B64);
    is_int(verify1(&conf, H_HMAC, buf, V4_BODY, &err), LOYALTY_DECLINED,
           "two signatures, the last valid: declined (one value only)");
    snprintf(buf, sizeof(buf), "%s %s", sig, V4_B64);
    is_int(verify1(&conf, H_HMAC, buf, V4_BODY, &err), LOYALTY_DECLINED,
           "space-separated list: declined");
    snprintf(buf, sizeof(buf), "v1,%s", V4_B64);
    is_int(verify1(&conf, H_HMAC, buf, V4_BODY, &err), LOYALTY_DECLINED,
           "a v1, prefix: declined");
    snprintf(buf, sizeof(buf), "sha256=%s", V4_B64);
    is_int(verify1(&conf, H_HMAC, buf, V4_BODY, &err), LOYALTY_DECLINED,
           "a sha256= prefix: declined");

    /* encodings */
    is_int(verify1(&conf, H_HMAC, " " V4_B64 " ", V4_BODY, &err),
           LOYALTY_OK, "surrounding spaces are trimmed");
    is_int(verify1(&conf, H_HMAC,
                   "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6/QLMo8", V4_BODY,
                   &err),
           LOYALTY_OK, "missing padding accepted");
    is_int(verify1(&conf, H_HMAC,
                   "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2fm3p6_QLMo8=", V4_BODY,
                   &err),
           LOYALTY_DECLINED, "URL-safe alphabet: declined");
    is_int(verify1(&conf, H_HMAC, "D0UMXmhjwBRi4y66TmhJrDlhQABD7zI2", V4_BODY,
                   &err),
           LOYALTY_DECLINED, "truncated: declined");
    is_int(verify1(&conf, H_HMAC, "oUsRDrPrFdZRZGh4uN7pfrGX3zY=", V4_BODY,
                   &err),
           LOYALTY_DECLINED, "an HMAC-SHA1 (20 bytes): declined");

    /* header and encoding are fixed: the location's override is unused */
    conf.signature_header = "X-Signature";
    conf.encoding = LOYALTY_ENC_HEX;
    is_int(verify1(&conf, H_HMAC, V4_B64, V4_BODY, &err), LOYALTY_OK,
           "loyalty_signature_header/_encoding do not apply");
    is_int(verify1(&conf, "X-Signature", V4_HEX, V4_BODY, &err),
           LOYALTY_DECLINED, "... a hex X-Signature is not read");

    loyalty_provider_conf_free(&conf);

    /* rotation: every secret is tried, in either order */
    conf_with(&rot, "old-secret", V4_SECRET);
    is_int(verify1(&rot, H_HMAC, V4_B64, V4_BODY, &err), LOYALTY_OK,
           "rotation: the second secret verifies");
    sign("old-secret", V4_BODY, sig2);
    is_int(verify1(&rot, H_HMAC, sig2, V4_BODY, &err), LOYALTY_OK,
           "rotation: the first secret verifies");
    sign("third", V4_BODY, sig2);
    is_int(verify1(&rot, H_HMAC, sig2, V4_BODY, &err), LOYALTY_DECLINED,
           "rotation: an unknown secret does not");
    loyalty_provider_conf_free(&rot);

    /* the secret's UTF-8 bytes, as configured */
    conf_with(&rot, "h\xc3\xbcsh", NULL);
    sign("h\xc3\xbcsh", V4_BODY, sig);
    is_int(verify1(&rot, H_HMAC, sig, V4_BODY, &err), LOYALTY_OK,
           "a non-ASCII secret is used as its UTF-8 bytes");
    loyalty_provider_conf_free(&rot);
}


/* both header sets: X- is preferred for the signature */

static void
test_header_sets(void)
{
    char                      bad[64];
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_request_t         req;
    loyalty_provider_conf_t   conf;

    conf_with(&conf, V4_SECRET, NULL);
    sign("nope", V4_BODY, bad);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Hmac-Sha256", V4_B64);
    hdr(&h, "shopify-hmac-sha256", bad);
    request(&req, &h, V4_BODY);
    is_int(conf.provider->verify(&conf, &req, &err), LOYALTY_OK,
           "both HMAC headers: X- is verified");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Hmac-Sha256", bad);
    hdr(&h, "shopify-hmac-sha256", V4_B64);
    request(&req, &h, V4_BODY);
    is_int(conf.provider->verify(&conf, &req, &err), LOYALTY_DECLINED,
           "both HMAC headers, X- wrong: declined (no second chance)");
    lt_arena_free(&arena);

    /* no replay window: an old X-Shopify-Triggered-At does not matter */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Hmac-Sha256", V4_B64);
    hdr(&h, "X-Shopify-Triggered-At", "2024-11-20T00:00:00Z");
    request(&req, &h, V4_BODY);
    is_int(conf.provider->verify(&conf, &req, &err), LOYALTY_OK,
           "days-old Triggered-At: verified (Shopify signs no time)");
    lt_arena_free(&arena);

    loyalty_provider_conf_free(&conf);
}


static int
normalize(const loyalty_provider_conf_t *conf, lt_headers_t *h,
    const char *body, loyalty_batch_t *batch, loyalty_err_t *err)
{
    loyalty_request_t  req;

    request(&req, h, body);
    memset(batch, 0, sizeof(loyalty_batch_t));
    err->code = 0;
    err->msg[0] = '\0';

    return conf->provider->normalize(conf, &req, &alloc, batch, err);
}


static void
test_normalize(void)
{
    int                       rc;
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_str_t             alt1;
    loyalty_batch_t           batch;
    loyalty_event_t          *ev;
    loyalty_provider_conf_t   conf;

    static const char  body[] =
        "{\"id\":820982911946154508,\"email\":\"Jon@Example.com\","
        "\"updated_at\":\"2024-11-24T04:00:00-05:00\"}";

    conf_with(&conf, V4_SECRET, NULL);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "customers/update");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-1");
    hdr(&h, "X-Shopify-Event-Id", "ev-1");
    rc = normalize(&conf, &h, body, &batch, &err);
    is_int(rc, LOYALTY_OK, "customers/update normalises");
    is_int((int) batch.nevents, 1, "... one event");
    ev = batch.events;
    lt_str_is(&ev->id, "wh-1", "id = X-Shopify-Webhook-Id");
    lt_str_is(&ev->alt_id, "shopify:evt:ev-1:customers/update",
              "alt_id = event id + topic");
    lt_str_is(&ev->store_cid, "820982911946154508",
              "store_cid: the 64-bit id exactly");
    lt_str_is(&ev->email, "jon@example.com", "email lower-cased");
    lt_str_is(&ev->occurred, "2024-11-24T09:00:00Z",
              "occurred: updated_at in UTC without Triggered-At");
    ok(ev->received == (int64_t) NOW * 1000 + 123, "received");
    lt_arena_free(&arena);

    /* another topic of the same merchant action: another alt_id */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "customers/create");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-2");
    hdr(&h, "X-Shopify-Event-Id", "ev-1");
    rc = normalize(&conf, &h, body, &batch, &err);
    is_int(rc, LOYALTY_OK, "customers/create normalises");
    lt_str_is(&batch.events->alt_id, "shopify:evt:ev-1:customers/create",
              "same event id, other topic: other alt_id");
    lt_arena_free(&arena);

    /* no event id: the body digest; a retry with a new webhook id and
     * the same body gives the same alt_id, another body another one */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "customers/update");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-3");
    rc = normalize(&conf, &h, body, &batch, &err);
    is_int(rc, LOYALTY_OK, "without event id");
    alt1.len = batch.events->alt_id.len;
    alt1.data = (u_char *) strndup((char *) batch.events->alt_id.data,
                                   alt1.len);
    ok(alt1.len == sizeof("shopify:body:") - 1 + 64
       && memcmp(alt1.data, "shopify:body:", 13) == 0,
       "alt_id = shopify:body:<sha256>");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "customers/update");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-4");
    rc = normalize(&conf, &h, body, &batch, &err);
    ok(rc == LOYALTY_OK && batch.events->alt_id.len == alt1.len
       && memcmp(batch.events->alt_id.data, alt1.data, alt1.len) == 0,
       "a retry with a new webhook id: same alt_id");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "customers/update");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-5");
    rc = normalize(&conf, &h,
                   "{\"id\":820982911946154508,\"email\":\"jon@example.com\","
                   "\"updated_at\":\"2024-11-24T04:00:00-05:00\"}",
                   &batch, &err);
    ok(rc == LOYALTY_OK
       && (batch.events->alt_id.len != alt1.len
           || memcmp(batch.events->alt_id.data, alt1.data, alt1.len) != 0),
       "same resource and updated_at, other body: other alt_id");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "customers/create");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-6");
    rc = normalize(&conf, &h, body, &batch, &err);
    ok(rc == LOYALTY_OK
       && memcmp(batch.events->alt_id.data, alt1.data, alt1.len) != 0,
       "same body, other topic: other alt_id");
    lt_arena_free(&arena);
    free((void *) alt1.data);

    /* Events only: the event key is the id, no alt_id */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "shopify-topic", "customers/update");
    hdr(&h, "shopify-event-id", "ev-9");
    hdr(&h, "shopify-triggered-at", "2024-11-24T11:00:00+01:00");
    rc = normalize(&conf, &h, body, &batch, &err);
    is_int(rc, LOYALTY_OK, "shopify-* headers only");
    lt_str_is(&batch.events->id, "shopify:evt:ev-9:customers/update",
              "... id from shopify-event-id and topic");
    is_int((int) batch.events->alt_id.len, 0, "... no alt_id");
    lt_str_is(&batch.events->occurred, "2024-11-24T10:00:00Z",
              "... occurred from shopify-triggered-at, in UTC");
    lt_arena_free(&arena);

    /* a very long event id: a digest keeps the key under 200 bytes */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "customers/update");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-7");
    hdr(&h, "X-Shopify-Event-Id",
        "0123456789012345678901234567890123456789012345678901234567890123"
        "4567890123456789012345678901234567890123456789012345678901234567"
        "8901234567890123456789012345678901234567890123456789012345678");
    rc = normalize(&conf, &h, body, &batch, &err);
    ok(rc == LOYALTY_OK
       && batch.events->alt_id.len == sizeof("shopify:evt:") - 1 + 64
       && loyalty_event_id_valid(batch.events->alt_id.data,
                                 batch.events->alt_id.len),
       "long event id: alt_id is shopify:evt:<sha256>");
    lt_arena_free(&arena);

    /* refused */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Webhook-Id", "wh-8");
    rc = normalize(&conf, &h, body, &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_INPUT,
       "no topic: declined input");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "orders/paid");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-9");
    rc = normalize(&conf, &h, "{\"id\":1,", &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON,
       "truncated JSON: declined json");
    ok(batch.nevents == 1 && batch.events->id.len == 4,
       "... with the verified id kept for the log");
    lt_arena_free(&arena);

    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "orders/paid");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-10");
    rc = normalize(&conf, &h, "\"text\"", &batch, &err);
    ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON,
       "a JSON string body: declined json");
    lt_arena_free(&arena);

    /* ids of id_t shape only: 12.5 and 1e3 are no customer ids */
    memset(&h, 0, sizeof(lt_headers_t));
    hdr(&h, "X-Shopify-Topic", "customers/update");
    hdr(&h, "X-Shopify-Webhook-Id", "wh-11");
    rc = normalize(&conf, &h, "{\"id\":12.5,\"email\":\"a@b.co\"}", &batch,
                   &err);
    ok(rc == LOYALTY_OK && batch.events->store_cid.len == 0,
       "a fractional id is no store_cid");
    lt_arena_free(&arena);

    loyalty_provider_conf_free(&conf);
}


/* every allocation of normalize fails once: out of memory, never a crash */

static void
test_nomem(void)
{
    int                       rc, bad;
    size_t                    i, n, k;
    lt_headers_t              h;
    loyalty_err_t             err;
    loyalty_batch_t           batch;
    loyalty_provider_conf_t   conf;

    static const struct {
        const char  *topic;
        const char  *body;
    } cases[] = {
        { "orders/paid",
          "{\"id\":1,\"currency\":\"USD\",\"total_price\":\"1.00\","
          "\"customer\":{\"id\":2,\"email\":\"a@b.co\"},\"line_items\":"
          "[{\"id\":3,\"price\":\"1.00\",\"quantity\":1}],\"shipping_lines\":"
          "[{\"price\":\"1.00\"}]}" },
        { "refunds/create",
          "{\"id\":1,\"order_id\":2,\"transactions\":[{\"kind\":\"refund\","
          "\"status\":\"success\",\"amount\":\"1.00\",\"currency\":\"EUR\"}],"
          "\"refund_line_items\":[{\"line_item_id\":3,\"quantity\":1,"
          "\"subtotal\":1.0}]}" },
        { "customers/email_marketing_consent_update",
          "{\"customer_id\":1,\"email_address\":\"a@b.co\","
          "\"email_marketing_consent\":{\"state\":\"subscribed\"}}" },
        { "customers/redact",
          "{\"shop_id\":1,\"customer\":{\"id\":2,\"phone\":\"+15556251199\"},"
          "\"orders_to_redact\":[1,2]}" },
        { "products/update", "{\"id\":1,\"title\":\"x\"}" },
    };

    conf_with(&conf, V4_SECRET, NULL);

    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        memset(&h, 0, sizeof(lt_headers_t));
        hdr(&h, "X-Shopify-Topic", cases[k].topic);
        hdr(&h, "X-Shopify-Webhook-Id", "wh-nomem");

        rc = normalize(&conf, &h, cases[k].body, &batch, &err);
        n = arena.calls;
        lt_arena_free(&arena);

        if (rc != LOYALTY_OK) {
            ok(0, "%s: normalises without failures", cases[k].topic);
            continue;
        }

        bad = 0;

        for (i = 1; i <= n; i++) {
            memset(&h, 0, sizeof(lt_headers_t));
            hdr(&h, "X-Shopify-Topic", cases[k].topic);
            hdr(&h, "X-Shopify-Webhook-Id", "wh-nomem");
            arena.fail_at = i;

            rc = normalize(&conf, &h, cases[k].body, &batch, &err);

            if (!(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM)
                && rc != LOYALTY_OK)
            {
                bad++;
                diag("%s: allocation %zu: rc %d code %d %s",
                     cases[k].topic, i, rc, err.code, err.msg);
            }

            lt_arena_free(&arena);
        }

        ok(bad == 0, "%s: each of %zu allocations failing is out of memory",
           cases[k].topic, n);
    }

    loyalty_provider_conf_free(&conf);
}


int
main(void)
{
    test_verify();
    test_header_sets();
    test_normalize();
    test_nomem();

    return done_testing();
}
