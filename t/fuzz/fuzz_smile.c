/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target: the whole input is a Smile.io body (so the
 * t/data/smile bodies are seeds).  A cheap function of the input picks
 * the variant: default header and base64 or a configured header and hex,
 * the event id from the body or from a loyalty_id_header (present or
 * not), whether the signature is right, and whether one allocation of
 * normalize fails.  See t/fuzz/README.
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


#define NOW          1735700405

#define check(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__,       \
                #cond);                                                      \
        abort();                                                             \
    }


static size_t sign_b64(const char *key, const u_char *body, size_t len,
    char *out);
static size_t hex_of(const char *b64, size_t len, char *out);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static size_t
sign_b64(const char *key, const u_char *body, size_t len, char *out)
{
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  mlen;

    if (HMAC(EVP_sha256(), key, (int) strlen(key), body, len, mac, &mlen)
        == NULL)
    {
        abort();
    }

    return (size_t) EVP_EncodeBlock((u_char *) out, mac, (int) mlen);
}


#define SECRET  "smile-app-secret"


static size_t
hex_of(const char *b64, size_t len, char *out)
{
    size_t  i, n;
    u_char  raw[64];

    n = (size_t) EVP_DecodeBlock(raw, (const u_char *) b64, (int) len);

    /* EVP_DecodeBlock counts the padding bytes: a SHA-256 MAC is 32 */
    n = n > 32 ? 32 : n;

    for (i = 0; i < n; i++) {
        sprintf(out + 2 * i, "%02x", raw[i]);
    }

    return 2 * n;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                             rc, hex, idh;
    char                            sig[128], hsig[130];
    u_char                         *body;
    size_t                          i, len, sum;
    lt_headers_t                    h;
    loyalty_err_t                   err;
    loyalty_request_t               req;
    loyalty_provider_conf_t        *conf;

    static int                      ready;
    static loyalty_provider_conf_t  dconf, hconf, iconf;

    if (!ready) {
        lt_fuzz_conf(&dconf, "smile", SECRET);

        lt_fuzz_conf(&hconf, "smile", SECRET);
        hconf.signature_header = "X-Smile-Signature";
        hconf.encoding = LOYALTY_ENC_HEX;

        lt_fuzz_conf(&iconf, "smile", SECRET);
        iconf.id_header = "X-Smile-Webhook-Id";

        ready = 1;
    }

    for (sum = 0, i = 0; i < size; i++) {
        sum += data[i];
    }

    body = malloc(size ? size : 1);
    if (body == NULL) {
        abort();
    }

    memcpy(body, data, size);

    memset(&h, 0, sizeof(lt_headers_t));
    lt_request(&req, &h, body, size, NOW, (int64_t) NOW * 1000 + 7);

    hex = (sum % 3 == 1);
    idh = (sum % 3 == 2);
    conf = hex ? &hconf : (idh ? &iconf : &dconf);

    len = sign_b64(SECRET, body, size, sig);

    if ((sum / 3) % 8 == 0) {
        /* a wrong one: the body's own bytes */
        lt_header_set(&h, conf->signature_header, body, size < 44 ? size : 44);

    } else if (hex) {
        len = hex_of(sig, len, hsig);
        lt_header_set(&h, "x-smile-SIGNATURE", (const u_char *) hsig, len);

    } else {
        lt_header_set(&h, "x-smile-hmac-sha256", (const u_char *) sig, len);
    }

    /* the id header, sometimes absent, sometimes invalid */
    if (idh && (sum / 24) % 4 != 0) {
        lt_header_set(&h, "X-Smile-Webhook-Id", body, size < 24 ? size : 24);
    }

    memset(&err, 0, sizeof(err));
    rc = conf->provider->verify(conf, &req, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check((sum / 3) % 8 == 0 || rc == LOYALTY_OK);

    if (rc == LOYALTY_OK) {
        lt_fuzz_normalize(conf, &req, &arena, &alloc,
                          (sum / 96) % 4 == 3 ? sum % 16 + 1 : 0,
                          (int64_t) NOW * 1000 + 7);
    }

    lt_arena_free(&arena);
    free(body);

    return 0;
}
