/*
 * Copyright (C) loyalty-edge authors
 *
 * JSON for normalisers: a strict RFC 8259 parser (syntax, UTF-8,
 * numbers, I-JSON surrogates) that builds a small tree in the caller's
 * allocator, so a request pays no malloc per node and nothing needs
 * freeing.  Numbers
 * keep the text the sender wrote: ids and money never pass through a
 * double, and integers of any size survive unchanged.
 */

#ifndef _LOYALTY_JSON_H_INCLUDED_
#define _LOYALTY_JSON_H_INCLUDED_


#include "loyalty_core.h"


#define LOYALTY_JSON_MAX_DEPTH  64


typedef enum {
    LOYALTY_JSON_NULL = 0,
    LOYALTY_JSON_TRUE,
    LOYALTY_JSON_FALSE,
    LOYALTY_JSON_NUMBER,
    LOYALTY_JSON_STRING,
    LOYALTY_JSON_ARRAY,
    LOYALTY_JSON_OBJECT
} loyalty_json_type_e;


typedef struct loyalty_json_s  loyalty_json_t;

struct loyalty_json_s {
    loyalty_json_type_e   type;
    loyalty_str_t         key;       /* member name, inside an object */
    loyalty_str_t         text;      /* string (decoded) or number text */
    loyalty_json_t       *child;     /* first member or element */
    loyalty_json_t       *last;
    loyalty_json_t       *next;      /* next sibling */
    loyalty_json_t       *parent;
    size_t                n;         /* members or elements */
    unsigned              plain:1;      /* text had no escape */
    unsigned              key_plain:1;  /* key had no escape */
};


/*
 * The whole buffer must be exactly one JSON value (white space around
 * it allowed).  Nodes and strings come from a; nothing to free.
 * LOYALTY_DECLINED with err->code LOYALTY_ERR_JSON for bad JSON.
 */
int loyalty_json_parse(const loyalty_str_t *text, const loyalty_alloc_t *a,
    loyalty_json_t **out, loyalty_err_t *err);

/* compact serialisation into memory from a; numbers as written */
int loyalty_json_dump(const loyalty_json_t *v, const loyalty_alloc_t *a,
    loyalty_str_t *out);

/* a member by name; the first one if a sender repeats a name */
loyalty_json_t *loyalty_json_get(const loyalty_json_t *obj, const char *key);

/* a member that is an object, or NULL */
loyalty_json_t *loyalty_json_object(const loyalty_json_t *obj,
    const char *key);

/* a string member, or a number member as its text; empty declines */
int loyalty_json_scalar(const loyalty_json_t *obj, const char *key,
    loyalty_str_t *out);

/* an integer number (no fraction, no exponent) that fits in int64 */
int loyalty_json_int64(const loyalty_json_t *v, int64_t *out);

/*
 * The value at a dotted path of member names and array indexes
 * ("customer.email", "items.0.sku"); NULL when any step is missing.
 */
loyalty_json_t *loyalty_json_path(const loyalty_json_t *root,
    const char *path);


#endif /* _LOYALTY_JSON_H_INCLUDED_ */
