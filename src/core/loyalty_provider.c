/*
 * Copyright (C) loyalty-edge authors
 */


#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

#include "loyalty_provider.h"
#include "loyalty_identity.h"


/* the registry: adding a sender is one line here and one file */
static const loyalty_provider_t  *loyalty_providers[] = {
    &loyalty_provider_standard,
    &loyalty_provider_generic,
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


int
loyalty_provider_add_secret(loyalty_provider_conf_t *conf,
    const loyalty_str_t *secret, loyalty_err_t *err)
{
    size_t                n;
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
        conf->nalloc = n;
    }

    conf->keys[conf->nkeys++] = key;

    return LOYALTY_OK;
}


void
loyalty_provider_conf_free(loyalty_provider_conf_t *conf)
{
    size_t  i;

    for (i = 0; i < conf->nkeys; i++) {
        loyalty_hmac_key_free(conf->keys[i]);
    }

    free(conf->keys);

    conf->keys = NULL;
    conf->nkeys = 0;
    conf->nalloc = 0;
}


loyalty_event_t *
loyalty_provider_event(const loyalty_request_t *req,
    const loyalty_alloc_t *a, const char *src, loyalty_batch_t *out)
{
    loyalty_event_t  *ev;

    ev = a->alloc(a->ctx, sizeof(loyalty_event_t));
    if (ev == NULL) {
        return NULL;
    }

    memset(ev, 0, sizeof(loyalty_event_t));

    ev->src.data = (const u_char *) src;
    ev->src.len = strlen(src);
    ev->received = req->now_ms;

    out->events = ev;
    out->nevents = 1;

    return ev;
}


/* the event id of senders that give none: SHA-256 of the body, in hex */

int
loyalty_provider_body_digest(const loyalty_request_t *req,
    const loyalty_alloc_t *a, loyalty_str_t *out)
{
    u_char        *p;
    u_char         md[EVP_MAX_MD_SIZE];
    unsigned int   len;

    if (EVP_Digest(req->body.data, req->body.len, md, &len, EVP_sha256(),
                   NULL)
        != 1)
    {
        return LOYALTY_ERROR;
    }

    p = a->alloc(a->ctx, 2 * len + 1);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    out->len = loyalty_hex_encode(p, md, len);
    out->data = p;

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


typedef struct {
    const char  *name;
    size_t       field;              /* offset of a loyalty_str_t */
} loyalty_key_t;


static const loyalty_key_t  loyalty_identity_keys[] = {
    { "ext_id", offsetof(loyalty_event_t, ext_id) },
    { "store_cid", offsetof(loyalty_event_t, store_cid) },
    { "phone", offsetof(loyalty_event_t, phone) },
    { NULL, 0 }
};


/*
 * Identity keys of a payload that follows the canonical shape: on the
 * object itself or in its "customer".  Values that are not valid keys
 * are left out, never guessed.
 */

int
loyalty_provider_identity(const loyalty_json_t *obj, const loyalty_alloc_t *a,
    loyalty_event_t *ev)
{
    int                     rc;
    loyalty_str_t           v;
    const loyalty_json_t   *customer;
    const loyalty_key_t    *k;

    customer = loyalty_json_object(obj, "customer");
    if (customer != NULL) {
        obj = customer;
    }

    if (loyalty_json_scalar(obj, "email", &v) == LOYALTY_OK) {
        rc = loyalty_identity_email(&v, a, &ev->email);
        if (rc == LOYALTY_ERROR) {
            return LOYALTY_ERROR;
        }
    }

    /* the tree lives in a already: keys point into it, no copy */
    for (k = loyalty_identity_keys; k->name != NULL; k++) {
        if (loyalty_json_scalar(obj, k->name, &v) == LOYALTY_OK
            && loyalty_event_id_valid(v.data, v.len))
        {
            *(loyalty_str_t *) ((u_char *) ev + k->field) = v;
        }
    }

    return LOYALTY_OK;
}
