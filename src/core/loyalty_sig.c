/*
 * Copyright (C) loyalty-edge authors
 *
 * Webhook signature schemes.  The HMAC implementation is fetched once per
 * process; every key owns one EVP_MAC_CTX keyed once at configuration
 * time and re-initialised per message with EVP_MAC_init(ctx, NULL, 0,
 * NULL), which restarts the MAC with the key OpenSSL already holds.
 */


#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "loyalty_sig.h"


/* longest encoded signature accepted, and the buffer it decodes into */
#define LOYALTY_SIG_B64_MAX  loyalty_base64_encoded_len(LOYALTY_HMAC_MAX)
#define LOYALTY_SIG_HEX_MAX  (2 * LOYALTY_HMAC_MAX)
#define LOYALTY_SIG_BUF_LEN  loyalty_base64_decoded_len(LOYALTY_SIG_B64_MAX)

/* 18 decimal digits always fit a long long */
#define LOYALTY_SIG_TIME_DIGITS  18


struct loyalty_hmac_key_s {
    EVP_MAC_CTX    *ctx;
    size_t          size;
};


/* yields the next decoded candidate signature of a header, 0 when done */
typedef int (*loyalty_sig_next_pt)(loyalty_str_t *rest, u_char *sig,
    size_t *len);


static EVP_MAC *loyalty_hmac_fetch(void);
static int loyalty_base64_value(u_char c);
static int loyalty_hex_value(u_char c);
static void loyalty_sig_trim(loyalty_str_t *s);
static int loyalty_sig_parse_time(const loyalty_str_t *s, long long *t);
static int loyalty_sig_standard_next(loyalty_str_t *rest, u_char *sig,
    size_t *len);
static int loyalty_sig_stripe_next(loyalty_str_t *rest, u_char *sig,
    size_t *len);
static int loyalty_sig_match(loyalty_hmac_key_t *const *keys, size_t nkeys,
    const loyalty_str_t *parts, size_t nparts, loyalty_sig_next_pt next,
    const loyalty_str_t *header, loyalty_err_t *err);


/* one per process: fetching per request is what makes lookups slow */
static EVP_MAC  *loyalty_hmac_mac;

static const u_char  loyalty_base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const u_char  loyalty_hex_digits[] = "0123456789abcdef";


static EVP_MAC *
loyalty_hmac_fetch(void)
{
    if (loyalty_hmac_mac == NULL) {
        loyalty_hmac_mac = EVP_MAC_fetch(NULL, OSSL_MAC_NAME_HMAC, NULL);
    }

    return loyalty_hmac_mac;
}


loyalty_hmac_key_t *
loyalty_hmac_key_create(loyalty_md_e md, const u_char *key, size_t len,
    loyalty_err_t *err)
{
    char                *name;
    size_t               size;
    EVP_MAC             *mac;
    OSSL_PARAM           params[2];
    loyalty_hmac_key_t  *k;

    switch (md) {

    case LOYALTY_MD_SHA256:
        name = (char *) "SHA256";
        break;

    case LOYALTY_MD_SHA1:
        name = (char *) "SHA1";
        break;

    default:
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "unknown digest %d",
                        (int) md);
        return NULL;
    }

    if (key == NULL || len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "empty HMAC key");
        return NULL;
    }

    mac = loyalty_hmac_fetch();
    if (mac == NULL) {
        ERR_clear_error();
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "HMAC is not available from OpenSSL");
        return NULL;
    }

    k = OPENSSL_zalloc(sizeof(loyalty_hmac_key_t));
    if (k == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return NULL;
    }

    k->ctx = EVP_MAC_CTX_new(mac);
    if (k->ctx == NULL) {
        OPENSSL_free(k);
        ERR_clear_error();
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return NULL;
    }

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 name, 0);
    params[1] = OSSL_PARAM_construct_end();

    if (EVP_MAC_init(k->ctx, key, len, params) != 1) {
        loyalty_hmac_key_free(k);
        ERR_clear_error();
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "cannot initialise HMAC-%s", name);
        return NULL;
    }

    size = EVP_MAC_CTX_get_mac_size(k->ctx);
    if (size == 0 || size > LOYALTY_HMAC_MAX) {
        loyalty_hmac_key_free(k);
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "unexpected HMAC-%s size %zu", name, size);
        return NULL;
    }

    k->size = size;

    return k;
}


void
loyalty_hmac_key_free(loyalty_hmac_key_t *key)
{
    if (key == NULL) {
        return;
    }

    /* OpenSSL cleanses its copy of the key and the HMAC pads */
    EVP_MAC_CTX_free(key->ctx);

    OPENSSL_clear_free(key, sizeof(loyalty_hmac_key_t));
}


int
loyalty_hmac(loyalty_hmac_key_t *key, const loyalty_str_t *parts,
    size_t nparts, u_char *out)
{
    size_t  i, n;

    /* no key: restart with the key set by loyalty_hmac_key_create() */

    if (EVP_MAC_init(key->ctx, NULL, 0, NULL) != 1) {
        goto failed;
    }

    for (i = 0; i < nparts; i++) {
        if (parts[i].len == 0) {
            continue;
        }

        if (EVP_MAC_update(key->ctx, parts[i].data, parts[i].len) != 1) {
            goto failed;
        }
    }

    if (EVP_MAC_final(key->ctx, out, &n, LOYALTY_HMAC_MAX) != 1) {
        goto failed;
    }

    if (n != key->size) {
        OPENSSL_cleanse(out, n);
        return -1;
    }

    return (int) n;

failed:

    ERR_clear_error();

    return -1;
}


int
loyalty_sig_equal(const u_char *a, const u_char *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}


size_t
loyalty_base64_encode(u_char *dst, const u_char *src, size_t len)
{
    u_char  *d;

    d = dst;

    while (len > 2) {
        *d++ = loyalty_base64_alphabet[src[0] >> 2];
        *d++ = loyalty_base64_alphabet[((src[0] & 0x03) << 4) | (src[1] >> 4)];
        *d++ = loyalty_base64_alphabet[((src[1] & 0x0f) << 2) | (src[2] >> 6)];
        *d++ = loyalty_base64_alphabet[src[2] & 0x3f];

        src += 3;
        len -= 3;
    }

    if (len) {
        *d++ = loyalty_base64_alphabet[src[0] >> 2];

        if (len == 1) {
            *d++ = loyalty_base64_alphabet[(src[0] & 0x03) << 4];
            *d++ = '=';

        } else {
            *d++ = loyalty_base64_alphabet[((src[0] & 0x03) << 4)
                                           | (src[1] >> 4)];
            *d++ = loyalty_base64_alphabet[(src[1] & 0x0f) << 2];
        }

        *d++ = '=';
    }

    return d - dst;
}


static int
loyalty_base64_value(u_char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '+') {
        return 62;
    }

    if (c == '/') {
        return 63;
    }

    return -1;
}


int
loyalty_base64_decode(u_char *dst, size_t *dst_len, const u_char *src,
    size_t len)
{
    int        v;
    size_t     i, n, pad;
    u_char    *d;
    uint32_t   acc;

    pad = 0;

    while (len > 0 && pad < 2 && src[len - 1] == '=') {
        len--;
        pad++;
    }

    /* one leftover character cannot encode a byte */

    if (len % 4 == 1) {
        return LOYALTY_ERROR;
    }

    /* padding, when present, must be complete */

    if (pad && (len + pad) % 4 != 0) {
        return LOYALTY_ERROR;
    }

    d = dst;
    acc = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        v = loyalty_base64_value(src[i]);
        if (v < 0) {
            return LOYALTY_ERROR;
        }

        acc = (acc << 6) | (uint32_t) v;

        if (++n == 4) {
            *d++ = (u_char) (acc >> 16);
            *d++ = (u_char) (acc >> 8);
            *d++ = (u_char) acc;
            acc = 0;
            n = 0;
        }
    }

    /* the unused low bits of the last character must be zero */

    if (n == 2) {
        if (acc & 0x0f) {
            return LOYALTY_ERROR;
        }

        *d++ = (u_char) (acc >> 4);

    } else if (n == 3) {
        if (acc & 0x03) {
            return LOYALTY_ERROR;
        }

        *d++ = (u_char) (acc >> 10);
        *d++ = (u_char) (acc >> 2);
    }

    *dst_len = d - dst;

    return LOYALTY_OK;
}


size_t
loyalty_hex_encode(u_char *dst, const u_char *src, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        *dst++ = loyalty_hex_digits[src[i] >> 4];
        *dst++ = loyalty_hex_digits[src[i] & 0x0f];
    }

    return 2 * len;
}


static int
loyalty_hex_value(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    c |= 0x20;

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


int
loyalty_hex_decode(u_char *dst, size_t *dst_len, const u_char *src,
    size_t len)
{
    int     hi, lo;
    size_t  i;

    if (len % 2) {
        return LOYALTY_ERROR;
    }

    for (i = 0; i < len; i += 2) {
        hi = loyalty_hex_value(src[i]);
        lo = loyalty_hex_value(src[i + 1]);

        if (hi < 0 || lo < 0) {
            return LOYALTY_ERROR;
        }

        dst[i / 2] = (u_char) ((hi << 4) | lo);
    }

    *dst_len = len / 2;

    return LOYALTY_OK;
}


static void
loyalty_sig_trim(loyalty_str_t *s)
{
    while (s->len > 0
           && (s->data[0] == ' ' || s->data[0] == '\t'
               || s->data[0] == '\r' || s->data[0] == '\n'))
    {
        s->data++;
        s->len--;
    }

    while (s->len > 0
           && (s->data[s->len - 1] == ' ' || s->data[s->len - 1] == '\t'
               || s->data[s->len - 1] == '\r'
               || s->data[s->len - 1] == '\n'))
    {
        s->len--;
    }
}


/* unix seconds: 1 to 18 decimal digits, nothing else */

static int
loyalty_sig_parse_time(const loyalty_str_t *s, long long *t)
{
    size_t     i;
    long long  v;

    if (s->len == 0 || s->len > LOYALTY_SIG_TIME_DIGITS) {
        return LOYALTY_ERROR;
    }

    v = 0;

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < '0' || s->data[i] > '9') {
            return LOYALTY_ERROR;
        }

        v = v * 10 + (s->data[i] - '0');
    }

    *t = v;

    return LOYALTY_OK;
}


int
loyalty_sig_standard_key(const loyalty_str_t *secret, u_char *out,
    size_t *out_len, loyalty_err_t *err)
{
    loyalty_str_t  s;

    s = *secret;

    if (s.len >= sizeof("whsec_") - 1
        && memcmp(s.data, "whsec_", sizeof("whsec_") - 1) == 0)
    {
        s.data += sizeof("whsec_") - 1;
        s.len -= sizeof("whsec_") - 1;
    }

    if (s.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "empty webhook secret");
        return LOYALTY_ERROR;
    }

    if (loyalty_base64_decode(out, out_len, s.data, s.len) != LOYALTY_OK) {
        OPENSSL_cleanse(out, s.len);
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "webhook secret is not valid base64");
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}


/*
 * The next "v1,<base64>" entry of a space-separated Standard Webhooks
 * list, decoded; other versions ("v1a,", "v2,") and entries that do not
 * decode are skipped.
 */

static int
loyalty_sig_standard_next(loyalty_str_t *rest, u_char *sig, size_t *len)
{
    size_t         n;
    const u_char  *p, *last, *start;

    if (rest->len == 0) {
        return 0;
    }

    p = rest->data;
    last = p + rest->len;

    while (p < last) {

        while (p < last && (*p == ' ' || *p == '\t')) {
            p++;
        }

        start = p;

        while (p < last && *p != ' ' && *p != '\t') {
            p++;
        }

        n = p - start;

        if (n <= 3 || start[0] != 'v' || start[1] != '1' || start[2] != ',') {
            continue;
        }

        n -= 3;

        if (n > LOYALTY_SIG_B64_MAX
            || loyalty_base64_decode(sig, len, start + 3, n) != LOYALTY_OK)
        {
            continue;
        }

        rest->data = p;
        rest->len = last - p;

        return 1;
    }

    rest->len = 0;

    return 0;
}


/* the next "v1=<hex>" item of a Stripe-Signature header, decoded */

static int
loyalty_sig_stripe_next(loyalty_str_t *rest, u_char *sig, size_t *len)
{
    const u_char   *p, *last, *comma;
    loyalty_str_t   item;

    if (rest->len == 0) {
        return 0;
    }

    p = rest->data;
    last = p + rest->len;

    while (p < last) {
        comma = memchr(p, ',', last - p);
        if (comma == NULL) {
            comma = last;
        }

        item.data = p;
        item.len = comma - p;

        p = (comma < last) ? comma + 1 : last;

        loyalty_sig_trim(&item);

        if (item.len <= 3 || memcmp(item.data, "v1=", 3) != 0) {
            continue;
        }

        item.data += 3;
        item.len -= 3;

        if (item.len > LOYALTY_SIG_HEX_MAX
            || loyalty_hex_decode(sig, len, item.data, item.len)
               != LOYALTY_OK)
        {
            continue;
        }

        rest->data = p;
        rest->len = last - p;

        return 1;
    }

    rest->len = 0;

    return 0;
}


/*
 * Any candidate from the header equal to the MAC of parts under any key.
 * Keys are the outer loop: one HMAC per key however many candidates the
 * sender (or an attacker) put into the header.
 */

static int
loyalty_sig_match(loyalty_hmac_key_t *const *keys, size_t nkeys,
    const loyalty_str_t *parts, size_t nparts, loyalty_sig_next_pt next,
    const loyalty_str_t *header, loyalty_err_t *err)
{
    int            n, rc;
    size_t         i, len;
    u_char         mac[LOYALTY_HMAC_MAX], sig[LOYALTY_SIG_BUF_LEN];
    loyalty_str_t  rest;

    rest = *header;

    if (!next(&rest, sig, &len)) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "no matching signature");
        return LOYALTY_DECLINED;
    }

    rc = LOYALTY_DECLINED;

    for (i = 0; i < nkeys && rc == LOYALTY_DECLINED; i++) {
        n = loyalty_hmac(keys[i], parts, nparts, mac);
        if (n < 0) {
            rc = LOYALTY_ERROR;
            break;
        }

        rest = *header;

        while (next(&rest, sig, &len)) {
            if (len == (size_t) n && loyalty_sig_equal(mac, sig, len)) {
                rc = LOYALTY_OK;
                break;
            }
        }
    }

    OPENSSL_cleanse(mac, sizeof(mac));

    if (rc == LOYALTY_ERROR) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "HMAC computation failed");

    } else if (rc == LOYALTY_DECLINED) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "no matching signature");
    }

    return rc;
}


int
loyalty_sig_standard_verify(loyalty_hmac_key_t *const *keys,
    size_t nkeys, const loyalty_sig_standard_t *in, loyalty_err_t *err)
{
    long long      ts, age;
    loyalty_str_t  parts[5];

    if (nkeys == 0) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "no signing keys");
        return LOYALTY_ERROR;
    }

    if (in->id.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        "missing webhook-id header");
        return LOYALTY_DECLINED;
    }

    if (in->timestamp.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        "missing webhook-timestamp header");
        return LOYALTY_DECLINED;
    }

    if (in->signature.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        "missing webhook-signature header");
        return LOYALTY_DECLINED;
    }

    if (memchr(in->id.data, '.', in->id.len) != NULL) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "malformed webhook-id");
        return LOYALTY_DECLINED;
    }

    if (loyalty_sig_parse_time(&in->timestamp, &ts) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "malformed timestamp");
        return LOYALTY_DECLINED;
    }

    age = (long long) in->now - ts;

    if (age > (long long) in->tolerance) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "timestamp too old");
        return LOYALTY_DECLINED;
    }

    if (age < -(long long) in->tolerance) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "timestamp too new");
        return LOYALTY_DECLINED;
    }

    /* "id.timestamp.body" without copying the body */

    parts[0] = in->id;
    parts[1].data = (const u_char *) ".";
    parts[1].len = 1;
    parts[2] = in->timestamp;
    parts[3] = parts[1];
    parts[4] = in->body;

    return loyalty_sig_match(keys, nkeys, parts, 5,
                             loyalty_sig_standard_next, &in->signature, err);
}


int
loyalty_sig_body_verify(loyalty_hmac_key_t *const *keys, size_t nkeys,
    loyalty_enc_e enc, const loyalty_str_t *signature,
    const loyalty_str_t *body, loyalty_err_t *err)
{
    int            n, rc, lenok;
    size_t         i, len;
    u_char         mac[LOYALTY_HMAC_MAX], sig[LOYALTY_SIG_BUF_LEN];
    loyalty_str_t  s;

    if (nkeys == 0) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "no signing keys");
        return LOYALTY_ERROR;
    }

    if (enc != LOYALTY_ENC_BASE64 && enc != LOYALTY_ENC_HEX) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "unknown encoding %d",
                        (int) enc);
        return LOYALTY_ERROR;
    }

    s.len = 0;
    s.data = NULL;

    if (signature != NULL && signature->data != NULL) {
        s = *signature;
        loyalty_sig_trim(&s);
    }

    if (s.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "missing signature");
        return LOYALTY_DECLINED;
    }

    if (s.len > (enc == LOYALTY_ENC_HEX ? LOYALTY_SIG_HEX_MAX
                                        : LOYALTY_SIG_B64_MAX))
    {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        "wrong signature length");
        return LOYALTY_DECLINED;
    }

    if (enc == LOYALTY_ENC_HEX) {
        rc = loyalty_hex_decode(sig, &len, s.data, s.len);

    } else {
        rc = loyalty_base64_decode(sig, &len, s.data, s.len);
    }

    if (rc != LOYALTY_OK || len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "malformed signature");
        return LOYALTY_DECLINED;
    }

    rc = LOYALTY_DECLINED;
    lenok = 0;

    for (i = 0; i < nkeys; i++) {
        n = loyalty_hmac(keys[i], body, 1, mac);
        if (n < 0) {
            rc = LOYALTY_ERROR;
            break;
        }

        if ((size_t) n != len) {
            continue;
        }

        lenok = 1;

        if (loyalty_sig_equal(mac, sig, len)) {
            rc = LOYALTY_OK;
            break;
        }
    }

    OPENSSL_cleanse(mac, sizeof(mac));

    if (rc == LOYALTY_ERROR) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "HMAC computation failed");

    } else if (rc == LOYALTY_DECLINED) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        lenok ? "no matching signature"
                              : "wrong signature length");
    }

    return rc;
}


int
loyalty_sig_stripe_verify(loyalty_hmac_key_t *const *keys, size_t nkeys,
    const loyalty_str_t *header, const loyalty_str_t *body, time_t now,
    time_t tolerance, loyalty_err_t *err)
{
    long long       ts;
    const u_char   *p, *last, *comma;
    loyalty_str_t   item, t, parts[3];

    if (nkeys == 0) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "no signing keys");
        return LOYALTY_ERROR;
    }

    if (header == NULL || header->len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        "missing Stripe-Signature header");
        return LOYALTY_DECLINED;
    }

    /* the first "t=" item, as Stripe's SDKs do */

    t.len = 0;
    t.data = NULL;

    p = header->data;
    last = p + header->len;

    while (p < last) {
        comma = memchr(p, ',', last - p);
        if (comma == NULL) {
            comma = last;
        }

        item.data = p;
        item.len = comma - p;

        p = (comma < last) ? comma + 1 : last;

        loyalty_sig_trim(&item);

        if (item.len >= 2 && item.data[0] == 't' && item.data[1] == '=') {
            t.data = item.data + 2;
            t.len = item.len - 2;
            break;
        }
    }

    if (t.data == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "missing timestamp");
        return LOYALTY_DECLINED;
    }

    if (loyalty_sig_parse_time(&t, &ts) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "malformed timestamp");
        return LOYALTY_DECLINED;
    }

    if ((long long) now - ts > (long long) tolerance) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "timestamp too old");
        return LOYALTY_DECLINED;
    }

    /* "t.body" without copying the body */

    parts[0] = t;
    parts[1].data = (const u_char *) ".";
    parts[1].len = 1;
    parts[2] = *body;

    return loyalty_sig_match(keys, nkeys, parts, 3, loyalty_sig_stripe_next,
                             header, err);
}
