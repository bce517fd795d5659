/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_sf_jwt: the JWT bearer assertion is base64url without padding,
 * header {"alg":"RS256"}, claims with exp in seconds, and its signature
 * verifies with the public half of the key; keys Salesforce would not
 * take are refused when loaded.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "loyalty_json.h"
#include "loyalty_sf_jwt.h"
#include "loyalty_sig.h"
#include "loyalty_test.h"


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static const char *
pem_of(EVP_PKEY *key, const EVP_CIPHER *cipher, size_t *pem_len)
{
    BIO   *bio;
    char  *data;
    const char  *copy;
    long   len;

    bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(bio, key, cipher, (u_char *) "pw", 2, NULL,
                             NULL);
    len = BIO_get_mem_data(bio, &data);
    copy = (const char *) lt_arena_dup(&arena, data, (size_t) len);
    *pem_len = (size_t) len;
    BIO_free(bio);

    return copy;
}


/* base64url into standard base64 with padding, then decoded */

static int
b64url_decode(const u_char *s, size_t len, u_char *out, size_t *out_len)
{
    size_t  i;
    u_char  buf[2048];

    if (len + 3 > sizeof(buf)) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        if (s[i] == '=' || s[i] == '+' || s[i] == '/') {
            return -1;          /* not base64url without padding */
        }
        buf[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    }

    while (i % 4) {
        buf[i++] = '=';
    }

    return loyalty_base64_decode(out, out_len, buf, i);
}


static void
test_sign(EVP_PKEY *key)
{
    int              rc;
    char            *dot1, *dot2;
    u_char           part[2048];
    size_t           n;
    EVP_MD_CTX      *md;
    loyalty_err_t    err;
    loyalty_str_t    jwt, claims_text;
    loyalty_json_t  *claims;
    int64_t          exp;

    rc = loyalty_sf_jwt_sign("3MVG9consumerkey", "integration@acme.example",
                             "https://login.salesforce.com", 1795553266,
                             key, &alloc, &jwt, &err);
    ok(rc == LOYALTY_OK, "signed (%s)", rc ? err.msg : "");
    if (rc != LOYALTY_OK) {
        return;
    }

    ok(jwt.data[jwt.len] == '\0', "NUL-terminated");
    dot1 = strchr((char *) jwt.data, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    ok(dot1 && dot2 && strchr(dot2 + 1, '.') == NULL, "three parts");
    if (!dot1 || !dot2) {
        return;
    }

    ok(b64url_decode(jwt.data, (size_t) ((u_char *) dot1 - jwt.data), part,
                     &n) == LOYALTY_OK, "header is base64url");
    is_mem(part, n, "{\"alg\":\"RS256\"}", 15, "header");

    ok(b64url_decode((u_char *) dot1 + 1, (size_t) (dot2 - dot1 - 1), part,
                     &n) == LOYALTY_OK, "claims are base64url");
    claims_text.data = (u_char *) lt_arena_dup(&arena, (char *) part, n);
    claims_text.len = n;
    ok(loyalty_json_parse(&claims_text, &alloc, &claims, &err) == LOYALTY_OK,
       "claims are JSON");
    is_mem(loyalty_json_get(claims, "iss")->text.data,
           loyalty_json_get(claims, "iss")->text.len, "3MVG9consumerkey", 16,
           "iss");
    is_mem(loyalty_json_get(claims, "sub")->text.data,
           loyalty_json_get(claims, "sub")->text.len,
           "integration@acme.example", 24, "sub");
    is_mem(loyalty_json_get(claims, "aud")->text.data,
           loyalty_json_get(claims, "aud")->text.len,
           "https://login.salesforce.com", 28, "aud");
    ok(loyalty_json_get(claims, "exp")->type == LOYALTY_JSON_NUMBER
       && loyalty_json_int64(loyalty_json_get(claims, "exp"), &exp)
          == LOYALTY_OK
       && exp == 1795553266, "exp is a number of seconds");

    ok(b64url_decode((u_char *) dot2 + 1,
                     jwt.len - (size_t) ((u_char *) dot2 + 1 - jwt.data),
                     part, &n) == LOYALTY_OK, "signature is base64url");
    is_int((int) n, EVP_PKEY_get_size(key), "signature is one RSA block");

    md = EVP_MD_CTX_new();
    rc = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1
         && EVP_DigestVerify(md, part, n, jwt.data,
                             (size_t) ((u_char *) dot2 - jwt.data)) == 1;
    EVP_MD_CTX_free(md);
    ok(rc, "RS256 signature verifies over header.claims");

    /* a changed claim no longer verifies */
    part[0] ^= 1;
    md = EVP_MD_CTX_new();
    rc = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1
         && EVP_DigestVerify(md, part, n, jwt.data,
                             (size_t) ((u_char *) dot2 - jwt.data)) == 1;
    EVP_MD_CTX_free(md);
    ok(!rc, "a flipped signature bit does not verify");
}


static void
test_keys(EVP_PKEY *rsa)
{
    size_t          len;
    const char     *pem;
    EVP_PKEY       *k, *small, *ec;
    loyalty_err_t   err;

    pem = pem_of(rsa, NULL, &len);
    k = loyalty_sf_jwt_key((u_char *) pem, len, &err);
    ok(k != NULL, "PKCS#8 PEM RSA key loads");
    if (k) {
        test_sign(k);
        EVP_PKEY_free(k);
    }

    pem = pem_of(rsa, EVP_aes_128_cbc(), &len);
    k = loyalty_sf_jwt_key((u_char *) pem, len, &err);
    ok(k == NULL && strstr(err.msg, "unencrypted"),
       "an encrypted key is refused: %s", err.msg);

    small = EVP_RSA_gen(1024);
    pem = pem_of(small, NULL, &len);
    k = loyalty_sf_jwt_key((u_char *) pem, len, &err);
    ok(k == NULL && strstr(err.msg, "2048"), "1024 bits refused: %s",
       err.msg);
    EVP_PKEY_free(small);

    ec = EVP_EC_gen("P-256");
    pem = pem_of(ec, NULL, &len);
    k = loyalty_sf_jwt_key((u_char *) pem, len, &err);
    ok(k == NULL && strstr(err.msg, "RS256"), "an EC key refused: %s",
       err.msg);
    EVP_PKEY_free(ec);

    k = loyalty_sf_jwt_key((u_char *) "not a key", 9, &err);
    ok(k == NULL, "garbage refused");
}


int
main(void)
{
    EVP_PKEY  *rsa;

    rsa = EVP_RSA_gen(2048);
    ok(rsa != NULL, "test key generated");
    if (rsa) {
        test_keys(rsa);
        EVP_PKEY_free(rsa);
    }

    lt_arena_free(&arena);

    return done_testing();
}
