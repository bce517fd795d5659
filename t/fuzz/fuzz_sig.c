/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target for the signature-header parsers themselves:
 * loyalty_sig_standard_verify() (Standard Webhooks, Svix, BigCommerce)
 * and loyalty_sig_stripe_verify() with arbitrary header text and small
 * bodies.
 *
 * Input: [flags][split][text...]; the first split % (len + 1) bytes of
 * text are the header text, the rest is the body.
 *
 *   flags & 1   stripe (else standard)
 *   flags & 2   property mode: a correct signature is added to the
 *               fuzzed list (standard: "<text> v1,<good>" with a valid
 *               id and timestamp; stripe: "t=<now>,<text>,v1=<good>"),
 *               and verify MUST accept: nothing the sender (or an
 *               attacker) puts around a valid entry may hide it.
 *   flags & 4   standard: the text is "id\ntimestamp\nsignature"
 *               (else all of it is the signature, with a valid id and
 *               timestamp)
 *   flags >> 3  tolerance in seconds (0..31)
 *
 * Without property mode verify must return OK or DECLINED with a
 * signature error and a NUL-terminated message; with random text it
 * practically never accepts, so an OK is double-checked against the
 * expected MAC being present in the header.
 *
 *   make build/fuzz/fuzz_sig
 *   build/fuzz/fuzz_sig -max_total_time=60 -max_len=512 /tmp/corpus_sig
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loyalty_sig.h"
#include "loyalty_test.h"


#define STD_KEY_B64  "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define STRIPE_KEY   "whsec_test_secret"
#define OTHER_KEY    "another-key"
#define NOW          1614265330
#define NOW_TEXT     "1614265330"
#define ID           "msg_p5jXN8AQM9LWM0D4loKWxJek"

#define check(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__,       \
                #cond);                                                      \
        abort();                                                             \
    }


static loyalty_hmac_key_t  *std_keys[2];
static loyalty_hmac_key_t  *stripe_keys[2];
static u_char               std_key[32];
static int                  std_key_len;
static int                  ready;


static void
setup(void)
{
    loyalty_err_t  err;

    std_key_len = EVP_DecodeBlock(std_key, (const u_char *) STD_KEY_B64,
                                  (int) sizeof(STD_KEY_B64) - 1);

    /* rotation: the valid key is the second one */
    std_keys[0] = loyalty_hmac_key_create(LOYALTY_MD_SHA256,
                                          (const u_char *) OTHER_KEY,
                                          sizeof(OTHER_KEY) - 1, &err);
    std_keys[1] = loyalty_hmac_key_create(LOYALTY_MD_SHA256, std_key,
                                          std_key_len, &err);
    stripe_keys[0] = loyalty_hmac_key_create(LOYALTY_MD_SHA256,
                                             (const u_char *) OTHER_KEY,
                                             sizeof(OTHER_KEY) - 1, &err);
    stripe_keys[1] = loyalty_hmac_key_create(LOYALTY_MD_SHA256,
                                             (const u_char *) STRIPE_KEY,
                                             sizeof(STRIPE_KEY) - 1, &err);

    if (std_keys[0] == NULL || std_keys[1] == NULL
        || stripe_keys[0] == NULL || stripe_keys[1] == NULL)
    {
        abort();
    }
}


/* HMAC of prefix + body under key */

static void
mac_of(const u_char *key, size_t klen, const char *prefix,
    const u_char *body, size_t len, u_char *mac)
{
    size_t         plen;
    u_char        *msg;
    unsigned int   mlen;

    plen = strlen(prefix);
    msg = malloc(plen + len + 1);
    if (msg == NULL) {
        abort();
    }

    memcpy(msg, prefix, plen);
    memcpy(msg + plen, body, len);

    if (HMAC(EVP_sha256(), key, (int) klen, msg, plen + len, mac, &mlen)
        == NULL || mlen != 32)
    {
        abort();
    }

    free(msg);
}


/* an exact-size heap copy (ASan sees over-reads), NULL for none */

static u_char *
copy_of(const u_char *p, size_t len)
{
    u_char  *q;

    q = malloc(len ? len : 1);
    if (q == NULL) {
        abort();
    }

    memcpy(q, p, len);

    return q;
}


static int
contains(const u_char *hay, size_t n, const char *needle)
{
    size_t  i, len;

    len = strlen(needle);

    for (i = 0; i + len <= n; i++) {
        if (memcmp(hay + i, needle, len) == 0) {
            return 1;
        }
    }

    return 0;
}


static void
fuzz_standard(unsigned flags, const u_char *text, size_t tlen,
    const u_char *body, size_t blen)
{
    int                     rc, property;
    char                    good[64], prefix[128];
    u_char                  mac[32], *id, *ts, *sig, *b;
    size_t                  n, idlen, tslen, siglen;
    const u_char           *p, *nl;
    loyalty_err_t           err;
    loyalty_sig_standard_t  in;

    property = flags & 2;

    snprintf(prefix, sizeof(prefix), "%s.%s.", ID, NOW_TEXT);
    mac_of(std_key, std_key_len, prefix, body, blen, mac);
    memcpy(good, "v1,", 3);
    n = EVP_EncodeBlock((u_char *) good + 3, mac, 32);
    good[3 + n] = '\0';

    idlen = sizeof(ID) - 1;
    tslen = sizeof(NOW_TEXT) - 1;
    id = copy_of((const u_char *) ID, idlen);
    ts = copy_of((const u_char *) NOW_TEXT, tslen);

    if ((flags & 4) && !property) {
        /* "id\ntimestamp\nsignature" */
        free(id);
        free(ts);

        p = text;
        nl = memchr(p, '\n', tlen);
        idlen = nl ? (size_t) (nl - p) : tlen;
        id = copy_of(p, idlen);

        p = nl ? nl + 1 : text + tlen;
        nl = memchr(p, '\n', text + tlen - p);
        tslen = nl ? (size_t) (nl - p) : (size_t) (text + tlen - p);
        ts = copy_of(p, tslen);

        p = nl ? nl + 1 : text + tlen;
        siglen = text + tlen - p;
        sig = copy_of(p, siglen);

    } else if (property) {
        siglen = tlen + 1 + strlen(good);
        sig = malloc(siglen);
        if (sig == NULL) {
            abort();
        }
        memcpy(sig, text, tlen);
        sig[tlen] = ' ';
        memcpy(sig + tlen + 1, good, strlen(good));

    } else {
        siglen = tlen;
        sig = copy_of(text, tlen);
    }

    b = copy_of(body, blen);

    memset(&in, 0, sizeof(loyalty_sig_standard_t));
    in.id.data = id;
    in.id.len = idlen;
    in.timestamp.data = ts;
    in.timestamp.len = tslen;
    in.signature.data = sig;
    in.signature.len = siglen;
    in.body.data = b;
    in.body.len = blen;
    in.now = NOW;
    in.tolerance = flags >> 3;

    memset(&err, 0, sizeof(err));
    rc = loyalty_sig_standard_verify(std_keys, 2, &in, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (property) {
        check(rc == LOYALTY_OK);
    }

    /* a random header may only verify when it holds the right MAC */
    if (rc == LOYALTY_OK && !property && !(flags & 4)) {
        check(contains(sig, siglen, good + 3));
    }

    free(id);
    free(ts);
    free(sig);
    free(b);
}


static void
fuzz_stripe(unsigned flags, const u_char *text, size_t tlen,
    const u_char *body, size_t blen)
{
    int             rc, property;
    char            good[72], *p;
    u_char          mac[32], *hdr, *b;
    size_t          i, hlen;
    loyalty_err_t   err;
    loyalty_str_t   header, bs;

    property = flags & 2;

    mac_of((const u_char *) STRIPE_KEY, sizeof(STRIPE_KEY) - 1,
           NOW_TEXT ".", body, blen, mac);

    for (i = 0; i < 32; i++) {
        sprintf(good + 2 * i, "%02x", mac[i]);
    }

    if (property) {
        /* "t=<now>," text ",v1=<good>" */
        hlen = 2 + (sizeof(NOW_TEXT) - 1) + 1 + tlen + 4 + 64;
        hdr = malloc(hlen);
        if (hdr == NULL) {
            abort();
        }

        p = (char *) hdr;
        memcpy(p, "t=" NOW_TEXT ",", sizeof("t=" NOW_TEXT ",") - 1);
        p += sizeof("t=" NOW_TEXT ",") - 1;
        memcpy(p, text, tlen);
        p += tlen;
        memcpy(p, ",v1=", 4);
        p += 4;
        memcpy(p, good, 64);

    } else {
        hlen = tlen;
        hdr = copy_of(text, tlen);
    }

    b = copy_of(body, blen);

    header.data = hdr;
    header.len = hlen;
    bs.data = b;
    bs.len = blen;

    memset(&err, 0, sizeof(err));
    rc = loyalty_sig_stripe_verify(stripe_keys, 2, &header, &bs, NOW,
                                   flags >> 3, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (property) {
        check(rc == LOYALTY_OK);
    }

    /*
     * A random header verifies only with the right MAC for its own t:
     * with t = now that MAC is good (hex, either case).
     */
    if (rc == LOYALTY_OK && !property && contains(hdr, hlen, "t=" NOW_TEXT))
    {
        check(contains(hdr, hlen, good) || hlen >= 64);
    }

    free(hdr);
    free(b);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t    split;
    unsigned  flags;

    if (!ready) {
        setup();
        ready = 1;
    }

    if (size < 2) {
        return 0;
    }

    flags = data[0];
    split = data[1];
    data += 2;
    size -= 2;

    split %= size + 1;

    if (flags & 1) {
        fuzz_stripe(flags, data, split, data + split, size - split);

    } else {
        fuzz_standard(flags, data, split, data + split, size - split);
    }

    return 0;
}
