/*
 * Copyright (C) loyalty-edge authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "loyalty_provider.h"
#include "loyalty_identity.h"
#include "loyalty_canon.h"


/* the registry: adding a sender is one line here and one file */
static const loyalty_provider_t  *loyalty_providers[] = {
    &loyalty_provider_standard,
    &loyalty_provider_generic,
    &loyalty_provider_shopify,
    &loyalty_provider_bigcommerce,
    &loyalty_provider_loyaltylion,
    &loyalty_provider_smile,
    &loyalty_provider_yotpo,
    &loyalty_provider_voyado,
    &loyalty_provider_stripe,
    &loyalty_provider_salesforce,
    NULL
};


const loyalty_provider_t *
loyalty_provider_find(const u_char *name, size_t len)
{
    const loyalty_provider_t  **p;

    for (p = loyalty_providers; *p != NULL; p++) {
        if (strlen((*p)->name) == len
            && memcmp((*p)->name, name, len) == 0)
        {
            return *p;
        }
    }

    return NULL;
}


const char *
loyalty_provider_names(void)
{
    size_t                      n;
    static char                 names[256];
    const loyalty_provider_t  **p;

    if (names[0] != '\0') {
        return names;
    }

    n = 0;

    for (p = loyalty_providers; *p != NULL; p++) {
        n += snprintf(names + n, sizeof(names) - n, "%s%s",
                      n ? ", " : "", (*p)->name);
        if (n >= sizeof(names)) {
            break;
        }
    }

    return names;
}


void
loyalty_provider_conf_init(loyalty_provider_conf_t *conf)
{
    memset(conf, 0, sizeof(loyalty_provider_conf_t));

    conf->tolerance = 300;
    conf->md = LOYALTY_MD_SHA256;
    conf->encoding = LOYALTY_ENC_HEX;
    conf->signature_header = "X-Signature";
}


void
loyalty_provider_conf_set(loyalty_provider_conf_t *conf,
    const loyalty_provider_t *provider)
{
    conf->provider = provider;

    if (provider->signature_header != NULL) {
        conf->signature_header = provider->signature_header;
        conf->encoding = provider->encoding;
    }
}


int
loyalty_provider_add_secret(loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_err_t *err)
{
    size_t                n;
    u_char               *copy;
    loyalty_str_t        *secrets;
    loyalty_hmac_key_t   *key, **keys;

    if (conf->provider == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "no sender configured");
        return LOYALTY_ERROR;
    }

    if (conf->provider->key(conf, secret, &key, err) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    if (conf->nkeys == conf->nalloc) {
        n = conf->nalloc ? conf->nalloc * 2 : 2;

        keys = realloc(conf->keys, n * sizeof(loyalty_hmac_key_t *));
        if (keys == NULL) {
            loyalty_hmac_key_free(key);
            loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
            return LOYALTY_ERROR;
        }

        conf->keys = keys;

        secrets = realloc(conf->secrets, n * sizeof(loyalty_str_t));
        if (secrets == NULL) {
            loyalty_hmac_key_free(key);
            loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
            return LOYALTY_ERROR;
        }

        conf->secrets = secrets;
        conf->nalloc = n;
    }

    /* token senders (yotpo) compare the secret itself */
    copy = malloc(secret->len + 1);
    if (copy == NULL) {
        loyalty_hmac_key_free(key);
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    memcpy(copy, secret->data, secret->len);
    copy[secret->len] = '\0';

    conf->secrets[conf->nkeys].data = copy;
    conf->secrets[conf->nkeys].len = secret->len;
    conf->keys[conf->nkeys++] = key;

    return LOYALTY_OK;
}


void
loyalty_provider_conf_free(loyalty_provider_conf_t *conf)
{
    size_t  i;

    for (i = 0; i < conf->nkeys; i++) {
        loyalty_hmac_key_free(conf->keys[i]);
        memset((u_char *) conf->secrets[i].data, 0, conf->secrets[i].len);
        free((u_char *) conf->secrets[i].data);
    }

    for (i = 0; i < conf->norgs; i++) {
        free((u_char *) conf->orgs[i].data);
    }

    free(conf->keys);
    free(conf->secrets);
    free(conf->orgs);

    conf->keys = NULL;
    conf->secrets = NULL;
    conf->orgs = NULL;
    conf->norgs = 0;
    conf->nkeys = 0;
    conf->nalloc = 0;
}


int
loyalty_provider_add_org(loyalty_provider_conf_t *conf,
    const loyalty_str_t *org, loyalty_err_t *err)
{
    size_t          i;
    u_char         *copy;
    loyalty_str_t  *orgs;

    if (org->len != 15 && org->len != 18) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "an organization id has 15 or 18 characters");
        return LOYALTY_ERROR;
    }

    for (i = 0; i < org->len; i++) {
        if (!((org->data[i] >= '0' && org->data[i] <= '9')
              || (org->data[i] >= 'A' && org->data[i] <= 'Z')
              || (org->data[i] >= 'a' && org->data[i] <= 'z')))
        {
            loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                            "an organization id is letters and digits");
            return LOYALTY_ERROR;
        }
    }

    orgs = realloc(conf->orgs, (conf->norgs + 1) * sizeof(loyalty_str_t));
    if (orgs == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    conf->orgs = orgs;

    copy = malloc(org->len);
    if (copy == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    memcpy(copy, org->data, org->len);

    conf->orgs[conf->norgs].data = copy;
    conf->orgs[conf->norgs].len = org->len;
    conf->norgs++;

    return LOYALTY_OK;
}


/*
 * An 18-character id is the 15-character, case-sensitive id plus a
 * checksum of its case: the first 15 characters decide.
 */

int
loyalty_provider_org_allowed(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *org)
{
    size_t  i;

    if (org->len != 15 && org->len != 18) {
        return 0;
    }

    for (i = 0; i < conf->norgs; i++) {
        if (memcmp(conf->orgs[i].data, org->data, 15) != 0) {
            continue;
        }

        if (org->len == 18 && conf->orgs[i].len == 18
            && memcmp(conf->orgs[i].data + 15, org->data + 15, 3) != 0)
        {
            continue;
        }

        return 1;
    }

    return 0;
}


int
loyalty_provider_set_country(loyalty_provider_conf_t *conf,
    const loyalty_str_t *country, loyalty_err_t *err)
{
    char  code[3];

    if (country->len != 2) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "a country is two letters (ISO 3166-1 alpha-2)");
        return LOYALTY_ERROR;
    }

    code[0] = (char) (country->data[0] & ~0x20);
    code[1] = (char) (country->data[1] & ~0x20);
    code[2] = '\0';

    if (!loyalty_identity_country_known(code)) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG,
                        "unknown country \"%.2s\"", code);
        return LOYALTY_ERROR;
    }

    memcpy(conf->default_country, code, 3);

    return LOYALTY_OK;
}


int
loyalty_provider_key_raw(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_hmac_key_t **key,
    loyalty_err_t *err)
{
    (void) conf;

    *key = loyalty_hmac_key_create(LOYALTY_MD_SHA256, secret->data,
                                   secret->len, err);

    return (*key != NULL) ? LOYALTY_OK : LOYALTY_ERROR;
}


int
loyalty_provider_key_whsec(const loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_hmac_key_t **key,
    loyalty_err_t *err)
{
    int      rc;
    size_t   len;
    u_char  *raw;

    (void) conf;

    raw = malloc(secret->len + 1);
    if (raw == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    rc = loyalty_sig_standard_key(secret, raw, &len, err);

    if (rc == LOYALTY_OK) {
        *key = loyalty_hmac_key_create(LOYALTY_MD_SHA256, raw, len, err);
        rc = (*key != NULL) ? LOYALTY_OK : LOYALTY_ERROR;
    }

    /* key material never lingers in freed memory */
    memset(raw, 0, secret->len + 1);
    free(raw);

    return rc;
}


/* headers: the id, timestamp and signature header names, in that order */

int
loyalty_provider_standard_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const char *const *headers,
    loyalty_err_t *err)
{
    size_t                  i;
    loyalty_str_t          *v[3];
    loyalty_sig_standard_t  in;

    memset(&in, 0, sizeof(loyalty_sig_standard_t));

    v[0] = &in.id;
    v[1] = &in.timestamp;
    v[2] = &in.signature;

    /* the sender's own header names in the message, not webhook-* */
    for (i = 0; i < 3; i++) {
        if (req->header(req, headers[i], v[i]) != LOYALTY_OK
            || v[i]->len == 0)
        {
            loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "missing %s header",
                            headers[i]);
            return LOYALTY_DECLINED;
        }
    }

    in.body = req->body;
    in.now = req->now;
    in.tolerance = conf->tolerance;

    return loyalty_sig_standard_verify(
               (loyalty_hmac_key_t *const *) conf->keys, conf->nkeys,
               &in, err);
}


int
loyalty_provider_body_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const char *header, loyalty_enc_e enc,
    loyalty_err_t *err)
{
    loyalty_str_t  sig;

    if (req->header(req, header, &sig) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "missing %s header",
                        header);
        return LOYALTY_DECLINED;
    }

    return loyalty_sig_body_verify(
               (loyalty_hmac_key_t *const *) conf->keys, conf->nkeys,
               enc, &sig, &req->body, err);
}


loyalty_event_t *
loyalty_provider_events(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const char *src, size_t n,
    loyalty_batch_t *out)
{
    size_t            i;
    loyalty_event_t  *ev;

    ev = a->alloc(a->ctx, n * sizeof(loyalty_event_t));
    if (ev == NULL) {
        return NULL;
    }

    memset(ev, 0, n * sizeof(loyalty_event_t));

    for (i = 0; i < n; i++) {
        ev[i].src.data = (const u_char *) src;
        ev[i].src.len = strlen(src);
        ev[i].received = req->now_ms;
    }

    out->events = ev;
    out->nevents = n;

    return ev;
}


int
loyalty_provider_digest(const loyalty_str_t *parts, size_t nparts,
    const loyalty_alloc_t *a, loyalty_str_t *out)
{
    int            rc;
    size_t         i;
    u_char        *p;
    u_char         md[EVP_MAX_MD_SIZE];
    unsigned int   len;
    EVP_MD_CTX    *ctx;

    if (nparts == 1) {
        /* the common case (a body) needs no context allocation */
        rc = EVP_Digest(parts[0].data, parts[0].len, md, &len, EVP_sha256(),
                        NULL);

    } else {
        ctx = EVP_MD_CTX_new();
        if (ctx == NULL) {
            return LOYALTY_ERROR;
        }

        rc = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);

        for (i = 0; i < nparts && rc == 1; i++) {
            rc = EVP_DigestUpdate(ctx, parts[i].data, parts[i].len);
        }

        if (rc == 1) {
            rc = EVP_DigestFinal_ex(ctx, md, &len);
        }

        EVP_MD_CTX_free(ctx);
    }

    if (rc != 1) {
        return LOYALTY_ERROR;
    }

    p = a->alloc(a->ctx, 2 * len + 1);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    out->len = loyalty_hex_encode(p, md, len);
    p[out->len] = '\0';
    out->data = p;

    return LOYALTY_OK;
}


loyalty_event_t *
loyalty_provider_event(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const char *src, loyalty_batch_t *out)
{
    return loyalty_provider_events(req, a, src, 1, out);
}


/* the event id of senders that give none: SHA-256 of the body, in hex */

int
loyalty_provider_body_digest(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_str_t *out)
{
    return loyalty_provider_digest(&req->body, 1, a, out);
}


/*
 * The event id of a sender without one of its own: the configured id
 * header (loyalty_id_header), or else the body's SHA-256.
 */

int
loyalty_provider_delivery_id(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_str_t *id, loyalty_err_t *err)
{
    if (conf->id_header == NULL) {
        if (loyalty_provider_digest(&req->body, 1, a, id) != LOYALTY_OK) {
            loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
            return LOYALTY_ERROR;
        }

        return LOYALTY_OK;
    }

    if (req->header(req, conf->id_header, id) != LOYALTY_OK
        || !loyalty_event_id_valid(id->data, id->len))
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "missing or invalid %s",
                        conf->id_header);
        return LOYALTY_DECLINED;
    }

    return LOYALTY_OK;
}


int
loyalty_provider_time(time_t t, const loyalty_alloc_t *a,
    loyalty_str_t *out)
{
    char           buf[32];
    size_t         len;
    const u_char  *p;

    len = loyalty_rfc3339(t, buf);
    if (len == 0) {
        return LOYALTY_DECLINED;
    }

    p = loyalty_alloc_copy(a, buf, len);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    out->data = p;
    out->len = len;

    return LOYALTY_OK;
}


/*
 * Identity keys of a payload that follows the canonical shape: on the
 * object itself or in its "customer".  Values that are not valid keys
 * are left out, never guessed.
 */

int
loyalty_provider_identity(const loyalty_provider_conf_t *conf,
    const loyalty_json_t *obj, const loyalty_alloc_t *a, loyalty_event_t *ev)
{
    const loyalty_json_t  *customer;
    loyalty_canon_keys_t   keys;

    customer = loyalty_json_object(obj, "customer");
    if (customer != NULL) {
        obj = customer;
    }

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));

    /* the tree lives in a already: keys point into it, no copy */
    (void) loyalty_json_scalar(obj, "email", &keys.email);
    (void) loyalty_json_scalar(obj, "phone", &keys.phone);
    (void) loyalty_json_scalar(obj, "ext_id", &keys.ext_id);
    (void) loyalty_json_scalar(obj, "store_cid", &keys.store_cid);

    return loyalty_canon_identity(conf, a, ev, &keys);
}
