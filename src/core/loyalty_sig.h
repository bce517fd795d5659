/*
 * Copyright (C) loyalty-edge authors
 *
 * Webhook signature schemes over raw bytes.  Keys are prepared once
 * (per configuration, per process) and reused for every request, so the
 * HMAC implementation is fetched once, never per request.
 */

#ifndef _LOYALTY_SIG_H_INCLUDED_
#define _LOYALTY_SIG_H_INCLUDED_


#include "loyalty_core.h"


#define LOYALTY_HMAC_MAX     64      /* large enough for any digest used */


typedef enum {
    LOYALTY_MD_SHA256 = 0,
    LOYALTY_MD_SHA1
} loyalty_md_e;


typedef enum {
    LOYALTY_ENC_BASE64 = 0,
    LOYALTY_ENC_HEX
} loyalty_enc_e;


/* an HMAC key bound to its digest, with a reusable keyed context */
typedef struct loyalty_hmac_key_s  loyalty_hmac_key_t;


loyalty_hmac_key_t *loyalty_hmac_key_create(loyalty_md_e md,
    const u_char *key, size_t len, loyalty_err_t *err);
void loyalty_hmac_key_free(loyalty_hmac_key_t *key);

/*
 * MAC of the concatenation of parts into out (LOYALTY_HMAC_MAX bytes);
 * returns the MAC length or -1.  A key is used by one thread at a time.
 */
int loyalty_hmac(loyalty_hmac_key_t *key, const loyalty_str_t *parts,
    size_t nparts, u_char *out);

/* constant time; 1 when equal */
int loyalty_sig_equal(const u_char *a, const u_char *b, size_t len);


size_t loyalty_base64_encode(u_char *dst, const u_char *src, size_t len);
/*
 * Decoders set *dst_len (output only) and write at most
 * loyalty_base64_decoded_len(len) or len / 2 bytes.  Base64: standard
 * alphabet, accepts missing padding, rejects anything else (whitespace,
 * URL-safe alphabet, non-canonical trailing bits).  Hex: either case.
 * Both return LOYALTY_OK or LOYALTY_ERROR.
 */
int loyalty_base64_decode(u_char *dst, size_t *dst_len, const u_char *src,
    size_t len);
size_t loyalty_hex_encode(u_char *dst, const u_char *src, size_t len);
int loyalty_hex_decode(u_char *dst, size_t *dst_len, const u_char *src,
    size_t len);

#define loyalty_base64_encoded_len(n)  ((((n) + 2) / 3) * 4)
#define loyalty_base64_decoded_len(n)  ((((n) + 3) / 4) * 3)


/*
 * Standard Webhooks (and Svix): signed content is "id.timestamp.body",
 * the signature header is a space-separated list of "v1,<base64>".
 */

typedef struct {
    loyalty_str_t   id;
    loyalty_str_t   timestamp;
    loyalty_str_t   signature;
    loyalty_str_t   body;
    time_t          now;
    time_t          tolerance;       /* seconds, both directions */
} loyalty_sig_standard_t;


/* "whsec_" prefix stripped, base64 decoded into out (>= secret length) */
int loyalty_sig_standard_key(const loyalty_str_t *secret, u_char *out,
    size_t *out_len, loyalty_err_t *err);

/*
 * Returns LOYALTY_OK when any signature matches any key, LOYALTY_DECLINED
 * with err->msg telling why not (missing header, stale timestamp, ...).
 */
int loyalty_sig_standard_verify(loyalty_hmac_key_t *const *keys,
    size_t nkeys, const loyalty_sig_standard_t *in, loyalty_err_t *err);

/* HMAC of the raw body, hex or base64 encoded, one signature value */
int loyalty_sig_body_verify(loyalty_hmac_key_t *const *keys, size_t nkeys,
    loyalty_enc_e enc, const loyalty_str_t *signature,
    const loyalty_str_t *body, loyalty_err_t *err);


/*
 * Stripe: "Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>][,v0=<hex>]",
 * signed content "t.body", keyed with the whole "whsec_..." string.
 * Any v1 may match; v0 is ignored.  Like Stripe's SDKs, only timestamps
 * older than tolerance are refused (clock skew ahead is accepted).
 */
int loyalty_sig_stripe_verify(loyalty_hmac_key_t *const *keys, size_t nkeys,
    const loyalty_str_t *header, const loyalty_str_t *body, time_t now,
    time_t tolerance, loyalty_err_t *err);


#endif /* _LOYALTY_SIG_H_INCLUDED_ */
