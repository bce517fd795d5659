/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>

#include "loyalty_jw.h"
#include "loyalty_sig.h"
#include "loyalty_sf_jwt.h"


static size_t loyalty_sf_b64url(u_char *dst, const u_char *src, size_t len);


EVP_PKEY *
loyalty_sf_jwt_key(const u_char *pem, size_t len, loyalty_err_t *err)
{
    BIO       *bio;
    EVP_PKEY  *key;

    bio = BIO_new_mem_buf(pem, (int) len);
    if (bio == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return NULL;
    }

    /* no passphrase callback: an encrypted key is refused, not prompted */
    key = PEM_read_bio_PrivateKey(bio, NULL, NULL, (void *) "");
    BIO_free(bio);

    if (key == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "not an unencrypted PEM private key");
        return NULL;
    }

    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        EVP_PKEY_free(key);
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "not an RSA key (Salesforce takes RS256 only)");
        return NULL;
    }

    if (EVP_PKEY_get_bits(key) < 2048) {
        EVP_PKEY_free(key);
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "RSA key shorter than 2048 bits");
        return NULL;
    }

    return key;
}


/* base64url without padding; returns the length written */

static size_t
loyalty_sf_b64url(u_char *dst, const u_char *src, size_t len)
{
    size_t  n, i;

    n = loyalty_base64_encode(dst, src, len);

    while (n > 0 && dst[n - 1] == '=') {
        n--;
    }

    for (i = 0; i < n; i++) {
        if (dst[i] == '+') {
            dst[i] = '-';
        } else if (dst[i] == '/') {
            dst[i] = '_';
        }
    }

    return n;
}


int
loyalty_sf_jwt_sign(const char *iss, const char *sub, const char *aud,
    int64_t exp, EVP_PKEY *key, const loyalty_alloc_t *a, loyalty_str_t *out,
    loyalty_err_t *err)
{
    static const char  header[] = "{\"alg\":\"RS256\"}";
    int                rc;
    u_char            *buf, *p, sig[1024];
    size_t             siglen, room;
    EVP_MD_CTX        *md;
    loyalty_jw_t       w;
    loyalty_str_t      claims;

    loyalty_jw_init(&w, a, 256);
    loyalty_jw_object(&w, NULL);
    loyalty_jw_cstr(&w, "iss", iss);
    loyalty_jw_cstr(&w, "sub", sub);
    loyalty_jw_cstr(&w, "aud", aud);
    loyalty_jw_int(&w, "exp", exp);
    loyalty_jw_end(&w);

    if (loyalty_jw_finish(&w, &claims) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    if ((size_t) EVP_PKEY_get_size(key) > sizeof(sig)) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "RSA key too long");
        return LOYALTY_ERROR;
    }

    room = loyalty_base64_encoded_len(sizeof(header) - 1) + 1
           + loyalty_base64_encoded_len(claims.len) + 1
           + loyalty_base64_encoded_len(sizeof(sig)) + 1;

    buf = a->alloc(a->ctx, room);
    if (buf == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    p = buf;
    p += loyalty_sf_b64url(p, (const u_char *) header, sizeof(header) - 1);
    *p++ = '.';
    p += loyalty_sf_b64url(p, claims.data, claims.len);

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    siglen = sizeof(sig);
    rc = EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) == 1
         && EVP_DigestSign(md, sig, &siglen, buf, (size_t) (p - buf)) == 1;
    EVP_MD_CTX_free(md);

    if (!rc) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "RS256 signing failed");
        return LOYALTY_ERROR;
    }

    *p++ = '.';
    p += loyalty_sf_b64url(p, sig, siglen);
    *p = '\0';

    out->data = buf;
    out->len = (size_t) (p - buf);

    return LOYALTY_OK;
}
