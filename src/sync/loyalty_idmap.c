/*
 * Copyright (C) loyalty-edge authors
 *
 * The identity map's plain C (see loyalty_idmap.h); the map itself is
 * in Redis (src/worker/loyalty_worker_identity.c).
 */

#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "loyalty_idmap.h"


static const char  *loyalty_idmap_rules[] = { "store_cid", "ext_id",
    "email", "phone" };

static const char  *loyalty_idmap_prefixes[] = { "cid", "ext", "email",
    "phone" };


int
loyalty_idmap_kind(const char *rule)
{
    unsigned  i;

    for (i = 0; i < LOYALTY_IDMAP_KINDS; i++) {
        if (strcmp(rule, loyalty_idmap_rules[i]) == 0) {
            return (int) i;
        }
    }

    return -1;
}


const char *
loyalty_idmap_rule(unsigned kind)
{
    return kind < LOYALTY_IDMAP_KINDS ? loyalty_idmap_rules[kind] : "?";
}


const char *
loyalty_idmap_prefix(unsigned kind)
{
    return kind < LOYALTY_IDMAP_KINDS ? loyalty_idmap_prefixes[kind] : "?";
}


int
loyalty_idmap_prefix_kind(const u_char *p, size_t len)
{
    unsigned  i;

    for (i = 0; i < LOYALTY_IDMAP_KINDS; i++) {
        if (len == strlen(loyalty_idmap_prefixes[i])
            && memcmp(p, loyalty_idmap_prefixes[i], len) == 0)
        {
            return (int) i;
        }
    }

    return -1;
}


int
loyalty_idmap_fields(const loyalty_event_t *ev, const unsigned *rules,
    size_t nrules, const loyalty_alloc_t *a, loyalty_str_t *out,
    size_t *nout)
{
    size_t                i, n, plen;
    u_char               *p;
    const char           *prefix;
    const loyalty_str_t  *v;

    n = 0;

    for (i = 0; i < nrules; i++) {
        switch (rules[i]) {
        case LOYALTY_IDMAP_CID:
            v = &ev->store_cid;
            break;
        case LOYALTY_IDMAP_EXT:
            v = &ev->ext_id;
            break;
        case LOYALTY_IDMAP_EMAIL:
            v = &ev->email;
            break;
        case LOYALTY_IDMAP_PHONE:
            v = &ev->phone;
            break;
        default:
            continue;
        }

        if (v->len == 0 || v->len > LOYALTY_IDMAP_VALUE_MAX) {
            continue;
        }

        prefix = loyalty_idmap_prefixes[rules[i]];
        plen = strlen(prefix);

        p = a->alloc(a->ctx, plen + 1 + v->len + 1);
        if (p == NULL) {
            return LOYALTY_ERROR;
        }

        memcpy(p, prefix, plen);
        p[plen] = ':';
        memcpy(p + plen + 1, v->data, v->len);
        p[plen + 1 + v->len] = '\0';

        out[n].data = p;
        out[n].len = plen + 1 + v->len;
        n++;
    }

    *nout = n;

    return LOYALTY_OK;
}


int
loyalty_idmap_person(const char *store, const loyalty_str_t *field,
    char *out)
{
    size_t        i, n, slen;
    unsigned int  mdlen;
    u_char        md[EVP_MAX_MD_SIZE];
    u_char        in[LOYALTY_STORE_MAX + LOYALTY_IDMAP_VALUE_MAX + 16];

    static const char  hex[] = "0123456789abcdef";

    slen = strlen(store);

    if (field->len == 0 || field->len > LOYALTY_IDMAP_VALUE_MAX + 8
        || slen > LOYALTY_STORE_MAX)
    {
        return LOYALTY_ERROR;
    }

    /* a store customer id is only unique in its store: "cid:eu:42" */
    if (field->len > 4 && memcmp(field->data, "cid:", 4) == 0) {
        memcpy(in, "cid:", 4);
        memcpy(in + 4, store, slen);
        memcpy(in + 4 + slen, field->data + 3, field->len - 3);
        n = 4 + slen + field->len - 3;

    } else {
        memcpy(in, field->data, field->len);
        n = field->len;
    }

    if (EVP_Digest(in, n, md, &mdlen, EVP_sha256(), NULL) != 1) {
        return LOYALTY_ERROR;
    }

    out[0] = 'p';
    out[1] = '_';

    for (i = 0; i < (LOYALTY_IDMAP_PERSON_LEN - 2) / 2; i++) {
        out[2 + 2 * i] = hex[md[i] >> 4];
        out[3 + 2 * i] = hex[md[i] & 0xf];
    }

    out[LOYALTY_IDMAP_PERSON_LEN] = '\0';

    return LOYALTY_OK;
}


int
loyalty_idmap_person_valid(const u_char *s, size_t len)
{
    size_t  i;

    if (len == 0 || len > 64) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z')
              || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        {
            return 0;
        }
    }

    return 1;
}


size_t
loyalty_idmap_reason(const loyalty_str_t *pairs, size_t npairs, char *buf,
    size_t len)
{
    int     kind;
    size_t  i, off;

    if (len == 0) {
        return 0;
    }

    off = (size_t) snprintf(buf, len, "identity: ambiguous match:");

    for (i = 0; i + 1 < npairs && off < len; i += 2) {
        kind = loyalty_idmap_prefix_kind(pairs[i].data, pairs[i].len);

        /* only our own ids: anything else is not copied out */
        off += (size_t) snprintf(buf + off, len - off, "%s %s -> %.*s",
                    i ? "," : "",
                    kind >= 0 ? loyalty_idmap_rule((unsigned) kind) : "?",
                    loyalty_idmap_person_valid(pairs[i + 1].data,
                                               pairs[i + 1].len)
                    ? (int) pairs[i + 1].len : 1,
                    loyalty_idmap_person_valid(pairs[i + 1].data,
                                               pairs[i + 1].len)
                    ? (const char *) pairs[i + 1].data : "?");
    }

    return off < len ? off : len - 1;
}
