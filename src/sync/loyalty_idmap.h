/*
 * Copyright (C) loyalty-edge authors
 *
 * The identity map's plain C: match rules (store_cid, ext_id, email,
 * phone), the map fields of an event's keys in rule order ("cid:42",
 * "email:ada@example.com"), the id a new person gets (stable: derived
 * from its highest-priority key), and the reason of an ambiguous match
 * (key kinds and person ids, never the keys' values).
 */

#ifndef _LOYALTY_IDMAP_H_INCLUDED_
#define _LOYALTY_IDMAP_H_INCLUDED_


#include "loyalty_core.h"
#include "loyalty_envelope.h"


enum {
    LOYALTY_IDMAP_CID = 0,          /* store customer id, per store */
    LOYALTY_IDMAP_EXT,              /* external id, global */
    LOYALTY_IDMAP_EMAIL,            /* normalized e-mail, global */
    LOYALTY_IDMAP_PHONE,            /* E.164, global */
    LOYALTY_IDMAP_KINDS
};

#define LOYALTY_IDMAP_PERSON_LEN  26    /* "p_" and 24 hex digits */
#define LOYALTY_IDMAP_VALUE_MAX   254   /* longer values are no key */


/* "store_cid" -> LOYALTY_IDMAP_CID ...; -1 when unknown */
int loyalty_idmap_kind(const char *rule);

/* the rule name ("store_cid") and the map field prefix ("cid") */
const char *loyalty_idmap_rule(unsigned kind);
const char *loyalty_idmap_prefix(unsigned kind);

/* the kind of a map field prefix ("email"), -1 when unknown */
int loyalty_idmap_prefix_kind(const u_char *p, size_t len);

/*
 * The map fields of ev's keys, in the order of rules (kinds), into a;
 * absent, empty and over-long values are left out.  out holds nrules.
 */
int loyalty_idmap_fields(const loyalty_event_t *ev, const unsigned *rules,
    size_t nrules, const loyalty_alloc_t *a, loyalty_str_t *out,
    size_t *nout);

/*
 * The id of a new person whose highest-priority key is field ("cid:42"
 * of store, "email:..."): "p_" and 24 hex digits of SHA-256, the same
 * on every worker and every retry.  out holds LOYALTY_IDMAP_PERSON_LEN
 * + 1 bytes.
 */
int loyalty_idmap_person(const char *store, const loyalty_str_t *field,
    char *out);

/* 1 when s looks like a person id of ours ([A-Za-z0-9_], 1-64) */
int loyalty_idmap_person_valid(const u_char *s, size_t len);

/*
 * An ambiguous match: pairs (map prefix, person) in rule order become
 * "identity: ambiguous match: ext_id -> p_..., email -> p_...".
 */
size_t loyalty_idmap_reason(const loyalty_str_t *pairs, size_t npairs,
    char *buf, size_t len);


#endif /* _LOYALTY_IDMAP_H_INCLUDED_ */
