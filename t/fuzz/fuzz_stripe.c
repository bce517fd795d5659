/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target for the stripe sender.  The whole input is the body
 * (so the t/data/stripe bodies are valid seeds); a cheap function of the
 * input (the sum of its bytes) picks the timestamp, the header layout,
 * the signature mode and an allocation to fail:
 *
 *   signature  0: the correct lower-case hex v1 with the whole whsec_
 *                 string as key, verify must accept unless t is too old,
 *                 and normalize runs;
 *              1: the first bytes of the input as the header, verify
 *                 must not crash;
 *              2: the correct MAC with one character changed, in base64,
 *                 or only as v0: verify must decline.
 *   layout     "t=,v1=", "t=,v1=<other>,v1=<good>", "v0=,v1=,t=" or
 *              "t=, v1=" with a space.
 *   timestamp  now, 200 s old, 400 s ahead (accepted, as Stripe's SDK
 *              does), or 301 s old (declined).
 *
 * Invariants of every event: id is a valid dedupe key, src is stripe,
 * type is canonical or "unknown", topic is non-empty, occurred is RFC
 * 3339 UTC, identity keys are normalised, data is a JSON object, and
 * the event survives the envelope.
 *
 *   make build/fuzz/fuzz_stripe
 *   build/fuzz/fuzz_stripe -max_total_time=60 -max_len=8192 \
 *       /tmp/corpus_stripe t/data/stripe
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


#define SECRET       "whsec_test_secret"
#define SECRET_OLD   "whsec_old_secret"
#define NOW          1732442400

#define check(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__,       \
                #cond);                                                      \
        abort();                                                             \
    }


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
        loyalty_provider_find((const u_char *) "stripe", 6));

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


/* hex (or base64) HMAC of "t.body" under key as it is */

static size_t
sign(const char *key, const char *t, const u_char *body, size_t len,
    int base64, char *out)
{
    size_t         i, n, tlen;
    u_char        *msg, mac[EVP_MAX_MD_SIZE];
    unsigned int   mlen;

    tlen = strlen(t);
    n = tlen + 1 + len;

    msg = malloc(n);
    if (msg == NULL) {
        abort();
    }

    memcpy(msg, t, tlen);
    msg[tlen] = '.';
    memcpy(msg + tlen + 1, body, len);

    if (HMAC(EVP_sha256(), key, (int) strlen(key), msg, n, mac, &mlen)
        == NULL)
    {
        abort();
    }

    free(msg);

    if (base64) {
        return (size_t) EVP_EncodeBlock((u_char *) out, mac, (int) mlen);
    }

    for (i = 0; i < mlen; i++) {
        sprintf(out + 2 * i, "%02x", mac[i]);
    }

    return 2 * mlen;
}


static void
check_event(loyalty_event_t *ev)
{
    lt_fuzz_event(ev, "stripe", (int64_t) NOW * 1000 + 7, &alloc);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 rc, inside;
    char                good[128], other[128], t[32], header[512];
    u_char             *body, *hcopy;
    size_t              i, len, fail_at;
    uint64_t            sum, v;
    unsigned            tmode, layout, sigmode;
    lt_headers_t        h;
    loyalty_err_t       err;
    loyalty_batch_t     batch;
    loyalty_request_t   req;

    static const long   offsets[] = { 0, -200, 400, -301 };

    if (!ready) {
        setup();
        ready = 1;
    }

    sum = 0;
    for (i = 0; i < size; i++) {
        sum += data[i];
    }

    v = sum;
    tmode = v % 4;
    v /= 4;
    layout = v % 4;
    v /= 4;
    sigmode = v % 3;
    v /= 3;
    fail_at = (v % 4 == 0) ? (sum % 41) + 1 : 0;

    body = malloc(size ? size : 1);
    hcopy = malloc(sizeof(header));
    if (body == NULL || hcopy == NULL) {
        abort();
    }

    memcpy(body, data, size);

    snprintf(t, sizeof(t), "%ld", (long) NOW + offsets[tmode]);
    inside = (tmode != 3);

    sign(SECRET_OLD "x", t, body, size, 0, other);
    other[64] = '\0';

    if (sigmode == 0) {
        len = sign(SECRET, t, body, size, 0, good);
        good[len] = '\0';

        switch (layout) {
        case 0:
            len = snprintf(header, sizeof(header), "t=%s,v1=%s", t, good);
            break;
        case 1:
            len = snprintf(header, sizeof(header), "t=%s,v1=%s,v1=%s", t,
                           other, good);
            break;
        case 2:
            len = snprintf(header, sizeof(header), "v0=%s,v1=%s,t=%s",
                           other, good, t);
            break;
        default:
            len = snprintf(header, sizeof(header), "t=%s, v1=%s", t, good);
            break;
        }

    } else if (sigmode == 1) {
        len = size < 200 ? size : 200;
        memcpy(header, data, len);

    } else {
        if (sum % 3 == 0) {
            len = sign(SECRET, t, body, size, 1, good);

        } else {
            len = sign(SECRET, t, body, size, 0, good);

            if (sum % 3 == 1) {
                good[sum % 64] = (good[sum % 64] == 'a') ? 'b' : 'a';
            }
        }

        good[len] = '\0';

        len = snprintf(header, sizeof(header),
                       (sum % 3 == 2) ? "t=%s,v0=%s" : "t=%s,v1=%s", t,
                       good);
    }

    /* exact size, not NUL-terminated */
    memcpy(hcopy, header, len);

    memset(&h, 0, sizeof(lt_headers_t));
    lt_header_set(&h, (sum & 32) ? "stripe-signature" : "Stripe-Signature",
                  hcopy, len);
    lt_request(&req, &h, body, size, NOW, (int64_t) NOW * 1000 + 7);

    memset(&err, 0, sizeof(err));
    rc = conf.provider->verify(&conf, &req, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (sigmode == 0) {
        check((rc == LOYALTY_OK) == inside);
    }

    if (sigmode == 2) {
        check(rc == LOYALTY_DECLINED);
    }

    memset(&err, 0, sizeof(err));
    memset(&batch, 0, sizeof(batch));

    arena.fail_at = fail_at;

    rc = conf.provider->normalize(&conf, &req, &alloc, &batch, &err);

    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (rc == LOYALTY_OK) {
        check(batch.nevents == 1 && batch.events != NULL);
        arena.fail_at = 0;
        check_event(&batch.events[0]);

    } else if (rc == LOYALTY_DECLINED) {
        check(err.code == LOYALTY_ERR_JSON || err.code == LOYALTY_ERR_INPUT);

    } else {
        check(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM
              && fail_at != 0);
    }

    lt_arena_free(&arena);
    free(body);
    free(hcopy);

    return 0;
}
