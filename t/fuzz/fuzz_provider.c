/*
 * Copyright (C) loyalty-edge authors
 *
 * libFuzzer target: arbitrary bytes through verify + normalize of the
 * "standard" and "generic" senders with known keys, then through the
 * envelope, checking the invariants the module and the worker rely on.
 * See t/fuzz/README for the input layout and how to build and run it.
 */


#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


#define STD_SECRET   "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define STD_KEY_B64  "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define GEN_SECRET   "hush"
#define NOW          1614265330
#define NOW_TEXT     "1614265330"

#define F_GENERIC    0x01        /* else standard */
#define F_SIGN       0x02        /* a valid signature is computed */
#define F_BASE64     0x04        /* generic: base64, else hex */
#define F_SHA1       0x08        /* generic: HMAC-SHA1, else SHA-256 */
#define F_ID_HEADER  0x10        /* generic: id from X-Event-Id */
#define F_FAIL_ALLOC 0x20        /* FUZZ_ALLOC_FAIL builds: fail one */

#define check(cond)                                                          \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__,       \
                #cond);                                                      \
        abort();                                                             \
    }


static void conf_make(loyalty_provider_conf_t *conf, const char *name,
    loyalty_md_e md, loyalty_enc_e enc, const char *secret);
static size_t sign_body(int sha1, int base64, const u_char *body,
    size_t len, char *out);
static size_t sign_std(const loyalty_str_t *id, const u_char *body,
    size_t len, char *out);
static void check_event(loyalty_event_t *ev, int generic);


static lt_arena_t               arena;
static loyalty_alloc_t          alloc = { lt_arena_alloc, &arena };
static loyalty_provider_conf_t  std_conf;
static loyalty_provider_conf_t  gen_conf[4];      /* [sha1 << 1 | base64] */
static int                      ready;


static void
conf_make(loyalty_provider_conf_t *conf, const char *name, loyalty_md_e md,
    loyalty_enc_e enc, const char *secret)
{
    loyalty_err_t  err;
    loyalty_str_t  s;

    loyalty_provider_conf_init(conf);

    conf->provider = loyalty_provider_find((const u_char *) name,
                                           strlen(name));
    conf->md = md;
    conf->encoding = enc;

    s.data = (const u_char *) secret;
    s.len = strlen(secret);

    if (conf->provider == NULL
        || loyalty_provider_add_secret(conf, &s, &err) != LOYALTY_OK)
    {
        abort();
    }
}


static size_t
sign_body(int sha1, int base64, const u_char *body, size_t len, char *out)
{
    size_t        i;
    u_char        mac[EVP_MAX_MD_SIZE];
    unsigned int  mlen;

    if (HMAC(sha1 ? EVP_sha1() : EVP_sha256(), GEN_SECRET,
             (int) strlen(GEN_SECRET), body, len, mac, &mlen) == NULL)
    {
        abort();
    }

    if (base64) {
        return (size_t) EVP_EncodeBlock((u_char *) out, mac, (int) mlen);
    }

    for (i = 0; i < mlen; i++) {
        sprintf(out + 2 * i, "%02x", mac[i]);
    }

    return 2 * mlen;
}


static size_t
sign_std(const loyalty_str_t *id, const u_char *body, size_t len, char *out)
{
    int            klen;
    u_char         key[64], mac[EVP_MAX_MD_SIZE], *msg;
    size_t         mlen;
    unsigned int   maclen;

    klen = EVP_DecodeBlock(key, (const u_char *) STD_KEY_B64,
                           (int) strlen(STD_KEY_B64));

    /* "id.timestamp.body" */
    mlen = id->len + sizeof("." NOW_TEXT ".") - 1 + len;
    msg = malloc(mlen + 1);
    if (msg == NULL) {
        abort();
    }

    memcpy(msg, id->data, id->len);
    memcpy(msg + id->len, "." NOW_TEXT ".", sizeof("." NOW_TEXT ".") - 1);
    memcpy(msg + id->len + sizeof("." NOW_TEXT ".") - 1, body, len);

    if (HMAC(EVP_sha256(), key, klen, msg, mlen, mac, &maclen) == NULL) {
        abort();
    }

    free(msg);

    memcpy(out, "v1,", 3);

    return 3 + (size_t) EVP_EncodeBlock((u_char *) out + 3, mac,
                                        (int) maclen);
}


static void
check_event(loyalty_event_t *ev, int generic)
{
    size_t           i, n;
    loyalty_json_t  *obj;
    loyalty_err_t    err;
    loyalty_str_t    fv[2 * LOYALTY_ENVELOPE_FIELDS], redump, t;
    loyalty_event_t  back;

    const loyalty_str_t  *f[] = {
        &ev->id, &ev->src, &ev->type, &ev->topic, &ev->occurred,
        &ev->email, &ev->ext_id, &ev->store_cid, &ev->phone, &ev->data
    };

    for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        check(f[i]->len == 0 || f[i]->data != NULL);
    }

    check(loyalty_event_id_valid(ev->id.data, ev->id.len));
    check(ev->src.len != 0);
    check(ev->type.len != 0);
    check(ev->occurred.len >= 19);
    check(ev->data.len != 0);
    check(ev->received == (int64_t) NOW * 1000 + 7);

    t = ev->topic;
    check(strcmp(loyalty_canonical_type(&t), (const char *) ev->type.data)
          == 0);

    if (generic) {
        check(ev->src.len == 7);
    }

    if (ev->email.len) {
        check(memchr(ev->email.data, '@', ev->email.len) != NULL);
    }

    /* data is JSON that parses again to the same text */
    check(loyalty_json_parse(&ev->data, &alloc, &obj, &err) == LOYALTY_OK);
    check(loyalty_json_dump(obj, &alloc, &redump) == LOYALTY_OK);
    check(redump.len == ev->data.len
          && memcmp(redump.data, ev->data.data, redump.len) == 0);

    /* and the event survives the envelope */
    ev->store.data = (const u_char *) "eu";
    ev->store.len = 2;
    ev->corr.data = (const u_char *) "fuzz";
    ev->corr.len = 4;

    n = loyalty_envelope_encode(ev, fv);
    check(n <= 2 * LOYALTY_ENVELOPE_FIELDS && n % 2 == 0);
    check(loyalty_envelope_decode(fv, n, &back, &err) == LOYALTY_OK);
    check(back.received == ev->received);
    check(back.id.len == ev->id.len && back.data.len == ev->data.len);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                             rc, generic;
    char                            sig[128];
    u_char                          flags;
    size_t                          hlen, len, fail_at, i;
    lt_headers_t                    h;
    loyalty_err_t                   err;
    loyalty_batch_t                 batch;
    loyalty_request_t               req;
    const loyalty_provider_conf_t  *conf;

    if (!ready) {
        conf_make(&std_conf, "standard", LOYALTY_MD_SHA256, LOYALTY_ENC_HEX,
                  STD_SECRET);

        for (i = 0; i < 4; i++) {
            conf_make(&gen_conf[i], "generic",
                      (i & 2) ? LOYALTY_MD_SHA1 : LOYALTY_MD_SHA256,
                      (i & 1) ? LOYALTY_ENC_BASE64 : LOYALTY_ENC_HEX,
                      GEN_SECRET);
        }

        ready = 1;
    }

    if (size < 3) {
        return 0;
    }

    /* [flags][fail_at][header length][header bytes][body] */
    flags = data[0];
    fail_at = data[1];
    hlen = data[2] % 64;
    data += 3;
    size -= 3;

    if (hlen > size) {
        hlen = size;
    }

    memset(&h, 0, sizeof(lt_headers_t));

    /*
     * Exact-size copies, so ASan sees reads past the end (nginx buffers
     * are not NUL-terminated either); libFuzzer's own buffer is exact,
     * but sub-ranges of it are not.
     */
    u_char  *hdr = malloc(hlen ? hlen : 1);
    u_char  *body = malloc(size - hlen ? size - hlen : 1);

    if (hdr == NULL || body == NULL) {
        abort();
    }

    memcpy(hdr, data, hlen);
    memcpy(body, data + hlen, size - hlen);

    lt_request(&req, &h, body, size - hlen, NOW, (int64_t) NOW * 1000 + 7);

    generic = flags & F_GENERIC;

    if (generic) {
        conf = &gen_conf[((flags & F_SHA1) ? 2 : 0)
                         | ((flags & F_BASE64) ? 1 : 0)];

        if (flags & F_ID_HEADER) {
            gen_conf[0].id_header = gen_conf[1].id_header = "X-Event-Id";
            gen_conf[2].id_header = gen_conf[3].id_header = "X-Event-Id";
            lt_header_set(&h, "x-event-id", hdr, hlen);

        } else {
            for (i = 0; i < 4; i++) {
                gen_conf[i].id_header = NULL;
            }
        }

        if (flags & F_SIGN) {
            len = sign_body(flags & F_SHA1, flags & F_BASE64,
                            req.body.data, req.body.len, sig);
            lt_header_set(&h, "X-Signature", (const u_char *) sig, len);

        } else {
            lt_header_set(&h, "X-Signature", hdr, hlen);
        }

    } else {
        conf = &std_conf;

        lt_header_set(&h, "webhook-id", hdr, hlen);
        lt_header_set(&h, "webhook-timestamp", (const u_char *) NOW_TEXT,
                      sizeof(NOW_TEXT) - 1);

        if (flags & F_SIGN) {
            len = sign_std(&h.value[0], req.body.data, req.body.len, sig);
            lt_header_set(&h, "Webhook-Signature", (const u_char *) sig,
                          len);

        } else {
            lt_header_set(&h, "Webhook-Signature", hdr, hlen);
        }
    }

    memset(&err, 0, sizeof(err));
    rc = conf->provider->verify(conf, &req, &err);

    check(rc == LOYALTY_OK || rc == LOYALTY_DECLINED);
    check(rc == LOYALTY_OK || err.code == LOYALTY_ERR_SIGNATURE);
    check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (rc == LOYALTY_OK) {
        memset(&err, 0, sizeof(err));
        memset(&batch, 0, sizeof(batch));

#ifdef FUZZ_ALLOC_FAIL
        if (flags & F_FAIL_ALLOC) {
            arena.fail_at = fail_at % 16 + 1;
        }
#else
        (void) fail_at;
#endif

        rc = conf->provider->normalize(conf, &req, &alloc, &batch, &err);

        if (rc == LOYALTY_OK) {
            check(batch.nevents == 1 && batch.events != NULL);
            arena.fail_at = 0;
            check_event(&batch.events[0], generic);

        } else if (rc == LOYALTY_DECLINED) {
            check(err.code == LOYALTY_ERR_JSON
                  || err.code == LOYALTY_ERR_INPUT);

        } else {
            check(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM);
            check(arena.fail_at != 0);
        }
    }

    lt_arena_free(&arena);
    free(hdr);
    free(body);

    return 0;
}
