/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target for the shopify sender.  The whole input is the body
 * (so the t/data/shopify bodies are valid seeds); a cheap function of the
 * input (the sum of its bytes) picks the topic, the header set, the
 * signature mode and an allocation to fail:
 *
 *   signature  0: the correct base64 HMAC, verify must accept (unless
 *                 the body is empty) and normalize runs;
 *              1: the first bytes of the input as the header value,
 *                 verify must not crash and (practically) declines;
 *              2: the correct HMAC with one character changed, or hex
 *                 instead of base64: verify must decline.
 *   headers    X-Shopify-* with webhook and event ids, shopify-* only
 *              (no webhook id), X- without event id, or both sets.
 *
 * Invariants of every event: id and alt_id are valid dedupe keys, src
 * is shopify, type is canonical or "unknown", topic is the header's,
 * occurred is RFC 3339 UTC, identity keys are normalised, data is a
 * JSON object, and the event survives the envelope.
 *
 *   make build/fuzz/fuzz_shopify
 *   build/fuzz/fuzz_shopify -max_total_time=60 -max_len=8192 \
 *       /tmp/corpus_shopify t/data/shopify
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"
#include "loyalty_fuzz.h"


#define SECRET       "shpss_fuzz_secret"
#define SECRET_OLD   "shpss_old_secret"
#define NOW          1732442400

#define check(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__,       \
                #cond);                                                      \
        abort();                                                             \
    }


static const char  *topics[] = {
    "customers/create", "customers/update", "customers/delete",
    "customers/enable", "customers/disable",
    "customers/email_marketing_consent_update",
    "customers/marketing_consent_update", "customer.tags_added",
    "customer.tags_removed", "customers/purchasing_summary",
    "orders/create", "orders/updated", "orders/paid", "orders/cancelled",
    "orders/fulfilled", "orders/partially_fulfilled", "orders/edited",
    "refunds/create", "customers/data_request", "customers/redact",
    "shop/redact", "app/uninstalled", "products/update"
};

#define NTOPICS  (sizeof(topics) / sizeof(topics[0]))


static lt_arena_t               arena;
static loyalty_alloc_t          alloc = { lt_arena_alloc, &arena };
static loyalty_provider_conf_t  conf;
static int                      ready;


static void
setup(void)
{
    loyalty_err_t  err;
    loyalty_str_t  s;

    loyalty_provider_conf_init(&conf);
    loyalty_provider_conf_set(&conf,
        loyalty_provider_find((const u_char *) "shopify", 7));

    /* rotation: the valid secret is the second one */
    s.data = (const u_char *) SECRET_OLD;
    s.len = sizeof(SECRET_OLD) - 1;

    if (conf.provider == NULL
        || loyalty_provider_add_secret(&conf, &s, &err) != LOYALTY_OK)
    {
        abort();
    }

    s.data = (const u_char *) SECRET;
    s.len = sizeof(SECRET) - 1;

    if (loyalty_provider_add_secret(&conf, &s, &err) != LOYALTY_OK) {
        abort();
    }
}


static size_t
sign(const u_char *body, size_t len, int hex, char *out)
{
    size_t        i;
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  mlen;

    if (HMAC(EVP_sha256(), SECRET, (int) sizeof(SECRET) - 1, body, len, mac,
             &mlen) == NULL)
    {
        abort();
    }

    if (!hex) {
        return (size_t) EVP_EncodeBlock((u_char *) out, mac, (int) mlen);
    }

    for (i = 0; i < mlen; i++) {
        sprintf(out + 2 * i, "%02x", mac[i]);
    }

    return 2 * mlen;
}


static void
check_event(loyalty_event_t *ev, const char *topic)
{
    lt_fuzz_event(ev, "shopify", (int64_t) NOW * 1000 + 7, &alloc);

    /* Shopify gives no id of its own for the customer */
    check(ev->ext_id.len == 0);
    check(ev->topic.len == strlen(topic)
          && memcmp(ev->topic.data, topic, ev->topic.len) == 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 rc;
    char                sig[128];
    u_char             *body;
    size_t              i, len, fail_at;
    uint64_t            sum, v;
    unsigned            hset, sigmode;
    const char         *topic;
    lt_headers_t        h;
    loyalty_err_t       err;
    loyalty_batch_t     batch;
    loyalty_request_t   req;

    if (!ready) {
        setup();
        ready = 1;
    }

    sum = 0;
    for (i = 0; i < size; i++) {
        sum += data[i];
    }

    v = sum;
    topic = topics[v % NTOPICS];
    v /= NTOPICS;
    hset = v % 4;
    v /= 4;
    sigmode = v % 3;
    v /= 3;
    fail_at = (v % 4 == 0) ? (sum % 61) + 1 : 0;

    /* exact size: ASan sees any read past the end, as with nginx */
    body = malloc(size ? size : 1);
    if (body == NULL) {
        abort();
    }

    memcpy(body, data, size);

    memset(&h, 0, sizeof(lt_headers_t));
    lt_request(&req, &h, body, size, NOW, (int64_t) NOW * 1000 + 7);

    if (sigmode == 0) {
        len = sign(body, size, 0, sig);

    } else if (sigmode == 1) {
        len = size < 88 ? size : 88;
        memcpy(sig, data, len);

    } else if (sum & 1) {
        len = sign(body, size, 1, sig);

    } else {
        len = sign(body, size, 0, sig);
        sig[sum % 43] = (sig[sum % 43] == 'A') ? 'B' : 'A';
    }

    switch (hset) {

    case 0:
        lt_header_set(&h, "X-Shopify-Topic", (const u_char *) topic,
                      strlen(topic));
        lt_header_set(&h, "X-Shopify-Hmac-Sha256", (const u_char *) sig,
                      len);
        lt_header_set(&h, "X-Shopify-Webhook-Id",
                      (const u_char *) "b54557e4-bdd9-4b37-8a5f", 23);
        lt_header_set(&h, "X-Shopify-Event-Id",
                      (const u_char *) "98880550-7158-44d4", 18);
        lt_header_set(&h, "X-Shopify-Triggered-At",
                      (const u_char *) "2024-11-24T09:58:11.123Z", 24);
        break;

    case 1:
        lt_header_set(&h, "shopify-topic", (const u_char *) topic,
                      strlen(topic));
        lt_header_set(&h, "shopify-hmac-sha256", (const u_char *) sig, len);
        lt_header_set(&h, "shopify-event-id", (const u_char *) "ev-1", 4);
        lt_header_set(&h, "shopify-shop-domain",
                      (const u_char *) "a.myshopify.com", 15);
        break;

    case 2:
        lt_header_set(&h, "x-shopify-topic", (const u_char *) topic,
                      strlen(topic));
        lt_header_set(&h, "x-shopify-hmac-sha256", (const u_char *) sig,
                      len);
        lt_header_set(&h, "x-shopify-webhook-id", (const u_char *) "wh-1",
                      4);
        break;

    default:
        lt_header_set(&h, "X-Shopify-Topic", (const u_char *) topic,
                      strlen(topic));
        lt_header_set(&h, "shopify-topic", (const u_char *) "x/y", 3);
        lt_header_set(&h, "X-Shopify-Hmac-Sha256", (const u_char *) sig,
                      len);
        lt_header_set(&h, "shopify-hmac-sha256", (const u_char *) "AAAA",
                      4);
        lt_header_set(&h, "X-Shopify-Webhook-Id", (const u_char *) "wh-2",
                      4);
        lt_header_set(&h, "shopify-triggered-at",
                      (const u_char *) "2024-11-24T10:59:58+01:00", 25);
        break;
    }

    memset(&err, 0, sizeof(err));
    rc = conf.provider->verify(&conf, &req, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (sigmode == 0) {
        check((rc == LOYALTY_OK) == (size != 0));
    }

    if (sigmode == 2) {
        check(rc == LOYALTY_DECLINED);
    }

    /* normalize runs on every verified body, and on unsigned ones too:
     * it must be safe whatever it gets */
    if (rc == LOYALTY_OK || sigmode != 0) {
        memset(&err, 0, sizeof(err));
        memset(&batch, 0, sizeof(batch));

        arena.fail_at = fail_at;

        rc = conf.provider->normalize(&conf, &req, &alloc, &batch, &err);

        check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

        if (rc == LOYALTY_OK) {
            check(batch.nevents == 1 && batch.events != NULL);
            arena.fail_at = 0;
            check_event(&batch.events[0], topic);

        } else if (rc == LOYALTY_DECLINED) {
            check(err.code == LOYALTY_ERR_JSON
                  || err.code == LOYALTY_ERR_INPUT);

        } else {
            check(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM
                  && fail_at != 0);
        }
    }

    lt_arena_free(&arena);
    free(body);

    return 0;
}
