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


static void conf_make(loyalty_provider_conf_t *conf, const char *name,
    const char *secret);
static size_t sign_b64(const char *key, const u_char *body, size_t len,
    char *out);
static void check_event(loyalty_event_t *ev);
static void run_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, size_t fail_at);
static size_t hex_of(const char *b64, size_t len, char *out);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static void
conf_make(loyalty_provider_conf_t *conf, const char *name, const char *secret)
{
    loyalty_err_t  err;
    loyalty_str_t  s;

    loyalty_provider_conf_init(conf);
    loyalty_provider_conf_set(conf,
        loyalty_provider_find((const u_char *) name, strlen(name)));

    s.data = (const u_char *) secret;
    s.len = strlen(secret);

    if (conf->provider == NULL
        || loyalty_provider_add_secret(conf, &s, &err) != LOYALTY_OK)
    {
        abort();
    }
}


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


/* the invariants the module and the worker rely on */

static void
check_event(loyalty_event_t *ev)
{
    lt_fuzz_event(ev, "smile", (int64_t) NOW * 1000 + 7, &alloc);
}


/*
 * After verify succeeded: normalize, with one allocation failing when
 * fail_at is not 0, and check what comes out.
 */

static void
run_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, size_t fail_at)
{
    int              rc;
    size_t           i;
    loyalty_err_t    err;
    loyalty_batch_t  batch;

    memset(&err, 0, sizeof(err));
    memset(&batch, 0, sizeof(batch));

    arena.fail_at = fail_at;

    rc = conf->provider->normalize(conf, req, &alloc, &batch, &err);

    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (rc == LOYALTY_OK) {
        check(batch.nevents <= 1);
        check(batch.nevents == 0 || batch.events != NULL);
        arena.fail_at = 0;

        for (i = 0; i < batch.nevents; i++) {
            check_event(&batch.events[i]);
        }

    } else if (rc == LOYALTY_DECLINED) {
        check(err.code == LOYALTY_ERR_JSON || err.code == LOYALTY_ERR_INPUT);

    } else {
        check(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM);
        check(fail_at != 0);
    }
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
        conf_make(&dconf, "smile", SECRET);

        conf_make(&hconf, "smile", SECRET);
        hconf.signature_header = "X-Smile-Signature";
        hconf.encoding = LOYALTY_ENC_HEX;

        conf_make(&iconf, "smile", SECRET);
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
        run_normalize(conf, &req, (sum / 96) % 4 == 3 ? sum % 16 + 1 : 0);
    }

    lt_arena_free(&arena);
    free(body);

    return 0;
}
