/*
 * Copyright (C) loyalty-edge authors
 *
 * The assertion of Salesforce's OAuth 2.0 JWT bearer flow (apis.md
 * §11.2): header {"alg":"RS256"}, claims iss (consumer key), sub
 * (username), aud (login URL), exp in unix SECONDS, signed with the
 * connected app's RSA private key, all base64url without padding.
 */

#ifndef _LOYALTY_SF_JWT_H_INCLUDED_
#define _LOYALTY_SF_JWT_H_INCLUDED_


#include <openssl/evp.h>

#include "loyalty_core.h"


/*
 * An RSA private key from PEM text (PKCS#1 or PKCS#8, unencrypted);
 * NULL with err set otherwise.  The caller frees it with EVP_PKEY_free.
 */
EVP_PKEY *loyalty_sf_jwt_key(const u_char *pem, size_t len,
    loyalty_err_t *err);

/* the signed assertion into memory from a, NUL-terminated */
int loyalty_sf_jwt_sign(const char *iss, const char *sub, const char *aud,
    int64_t exp, EVP_PKEY *key, const loyalty_alloc_t *a, loyalty_str_t *out,
    loyalty_err_t *err);


#endif /* _LOYALTY_SF_JWT_H_INCLUDED_ */
