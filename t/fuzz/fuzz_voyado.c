/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target for the voyado sender.  The whole input is the
 * body (so the t/data/voyado bodies are valid seeds); a cheap function
 * of the input (the sum of its bytes) picks the header set, the id, the
 * timestamp, the signature mode and an allocation to fail:
 *
 *   headers    svix-*, webhook-*, or both (svix-* signed, webhook-*
 *              garbage: svix-* decides).
 *   signature  0: the correct "v1,<base64>" with the decoded whsec_ key,
 *                 verify must accept (inside the window) and normalize
 *                 runs;
 *              1: the first bytes of the input as the signature, verify
 *                 must not crash;
 *              2: the correct MAC with one character changed, in hex,
 *                 or keyed with the whsec_ text: verify must decline.
 *   timestamp  now, 200 s old, 200 s ahead, or 301 s old (declined).
 *   id         a fixed msg_ id, or the first input bytes (may be
 *              invalid, contain '.', ...).
 *
 * Invariants of every event: id and alt_id are valid dedupe keys, src
 * is voyado, type is canonical or "unknown", topic is non-empty,
 * occurred is RFC 3339 UTC, identity keys are normalised, data is a JSON
 * object, and the event survives the envelope.
 *
 *   make build/fuzz/fuzz_voyado
 *   build/fuzz/fuzz_voyado -max_total_time=60 -max_len=8192 \
 *       /tmp/corpus_voyado t/data/voyado
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


#define SECRET       "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SECRET_OLD   "whsec_d3Jvbmd3cm9uZ3dyb25nd3Jvbmc="
#define SRC          "voyado"
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
        loyalty_provider_find((const u_char *) SRC, sizeof(SRC) - 1));

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


/*
 * "v1,<b64>" (hex when hex) of "id.ts.body" under the decoded key of
 * the whsec_ secret, or under its text when raw
 */

static size_t
sign(int raw, const loyalty_str_t *id, const char *ts, const u_char *body,
    size_t len, int hex, char *out)
{
    int            klen;
    size_t         i, n, tlen;
    u_char        *msg, mac[EVP_MAX_MD_SIZE], key[64];
    unsigned int   mlen;

    if (raw) {
        klen = (int) sizeof(SECRET) - 1;
        memcpy(key, SECRET, klen);

    } else {
        /* 32 characters, no padding: 24 bytes */
        klen = EVP_DecodeBlock(key, (const u_char *) SECRET + 6,
                               (int) sizeof(SECRET) - 7);
    }

    tlen = strlen(ts);
    n = id->len + 1 + tlen + 1 + len;

    msg = malloc(n ? n : 1);
    if (msg == NULL) {
        abort();
    }

    memcpy(msg, id->data, id->len);
    msg[id->len] = '.';
    memcpy(msg + id->len + 1, ts, tlen);
    msg[id->len + 1 + tlen] = '.';
    memcpy(msg + id->len + 2 + tlen, body, len);

    if (HMAC(EVP_sha256(), key, klen, msg, n, mac, &mlen)
        == NULL)
    {
        abort();
    }

    free(msg);

    memcpy(out, "v1,", 3);

    if (!hex) {
        return 3 + (size_t) EVP_EncodeBlock((u_char *) out + 3, mac,
                                            (int) mlen);
    }

    for (i = 0; i < mlen; i++) {
        sprintf(out + 3 + 2 * i, "%02x", mac[i]);
    }

    return 3 + 2 * mlen;
}


static void
check_event(loyalty_event_t *ev)
{
    lt_fuzz_event(ev, SRC, (int64_t) NOW * 1000 + 7, &alloc);

    check(ev->topic.len != 0);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                 rc, inside;
    char                sig[128], ts[32];
    u_char             *body, *idcopy;
    size_t              i, len, fail_at;
    uint64_t            sum, v;
    unsigned            idmode, tsmode, sigmode, hset;
    const char         *hid, *hts, *hsig;
    lt_headers_t        h;
    loyalty_err_t       err;
    loyalty_str_t       id;
    loyalty_batch_t     batch;
    loyalty_request_t   req;

    static const long   offsets[] = { 0, -200, 200, -301 };

    if (!ready) {
        setup();
        ready = 1;
    }

    sum = 0;
    for (i = 0; i < size; i++) {
        sum += data[i];
    }

    v = sum;
    hset = v % 3;
    v /= 3;
    idmode = v % 2;
    v /= 2;
    tsmode = v % 4;
    v /= 4;
    sigmode = v % 3;
    v /= 3;
    fail_at = (v % 4 == 0) ? (sum % 41) + 1 : 0;

    /* exact size: ASan sees any read past the end, as with nginx */
    body = malloc(size ? size : 1);
    idcopy = malloc(size ? size : 1);
    if (body == NULL || idcopy == NULL) {
        abort();
    }

    memcpy(body, data, size);

    if (idmode == 0) {
        id.data = (const u_char *) "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
        id.len = sizeof("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W") - 1;

    } else {
        id.len = size < 24 ? size : 24;
        memcpy(idcopy, data, id.len);
        id.data = idcopy;
    }

    snprintf(ts, sizeof(ts), "%ld", (long) NOW + offsets[tsmode]);
    inside = (tsmode != 3);

    memset(&h, 0, sizeof(lt_headers_t));
    lt_request(&req, &h, body, size, NOW, (int64_t) NOW * 1000 + 7);

    if (sigmode == 0) {
        len = sign(0, &id, ts, body, size, 0, sig);

    } else if (sigmode == 1) {
        len = size < 100 ? size : 100;
        memcpy(sig, data, len);

    } else if (sum % 3 == 0) {
        len = sign(0, &id, ts, body, size, 1, sig);

    } else if (sum % 3 == 1) {
        len = sign(1, &id, ts, body, size, 0, sig);

    } else {
        len = sign(0, &id, ts, body, size, 0, sig);
        sig[3 + sum % 43] = (sig[3 + sum % 43] == 'A') ? 'B' : 'A';
    }

    if (hset == 1) {
        hid = (sum & 16) ? "Webhook-Id" : "webhook-id";
        hts = "webhook-timestamp";
        hsig = "webhook-signature";

    } else {
        hid = (sum & 16) ? "Svix-Id" : "svix-id";
        hts = "svix-timestamp";
        hsig = "svix-signature";
    }

    lt_header_set(&h, hid, id.data, id.len);
    lt_header_set(&h, hts, (const u_char *) ts, strlen(ts));
    lt_header_set(&h, hsig, (const u_char *) sig, len);

    if (hset == 2) {
        lt_header_set(&h, "webhook-id", (const u_char *) "msg_other", 9);
        lt_header_set(&h, "webhook-timestamp", (const u_char *) "1", 1);
        lt_header_set(&h, "webhook-signature", (const u_char *) "v1,AA", 5);
    }

    memset(&err, 0, sizeof(err));
    rc = conf.provider->verify(&conf, &req, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (sigmode == 0) {
        check((rc == LOYALTY_OK)
              == (inside && id.len != 0
                  && memchr(id.data, '.', id.len) == NULL));
    }

    if (sigmode == 2) {
        check(rc == LOYALTY_DECLINED);
    }

    /* normalize must be safe whatever it gets, verified or not */
    memset(&err, 0, sizeof(err));
    memset(&batch, 0, sizeof(batch));

    arena.fail_at = fail_at;

    rc = conf.provider->normalize(&conf, &req, &alloc, &batch, &err);

    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (rc == LOYALTY_OK) {
        check(batch.nevents == 1 && batch.events != NULL);
        arena.fail_at = 0;
        check_event(&batch.events[0]);
        check(batch.events[0].id.len == id.len
              && memcmp(batch.events[0].id.data, id.data, id.len) == 0);

    } else if (rc == LOYALTY_DECLINED) {
        check(err.code == LOYALTY_ERR_JSON || err.code == LOYALTY_ERR_INPUT);

    } else {
        check(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM
              && fail_at != 0);
    }

    lt_arena_free(&arena);
    free(body);
    free(idcopy);

    return 0;
}
