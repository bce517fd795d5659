/*
 * Copyright (C) loyalty-edge authors
 *
 * Salesforce field types: a value taken from an event is validated and
 * coerced into the one form a field of that type accepts, before any
 * write, so a value Salesforce would refuse is caught here with a clear
 * reason (and dead-lettered) instead of failing in the org.  The
 * canonical text is also what the delta hashes compare.
 *
 * Plain C like src/core: no I/O, no hiredis, libevent or curl types.
 */

#ifndef _LOYALTY_SF_FIELD_H_INCLUDED_
#define _LOYALTY_SF_FIELD_H_INCLUDED_


#include "loyalty_core.h"
#include "loyalty_json.h"
#include "loyalty_jw.h"


typedef enum {
    LOYALTY_SF_TEXT = 1,
    LOYALTY_SF_INTEGER,
    LOYALTY_SF_DECIMAL,
    LOYALTY_SF_BOOLEAN,
    LOYALTY_SF_DATE,
    LOYALTY_SF_DATETIME,
    LOYALTY_SF_PICKLIST,
    LOYALTY_SF_EMAIL,
    LOYALTY_SF_PHONE
} loyalty_sf_type_e;


/* how the canonical text goes into the request body */
typedef enum {
    LOYALTY_SF_JSON_NULL = 0,
    LOYALTY_SF_JSON_STRING,
    LOYALTY_SF_JSON_NUMBER,
    LOYALTY_SF_JSON_BOOL
} loyalty_sf_json_e;


typedef struct {
    loyalty_sf_type_e     type;
    unsigned              max_length;   /* characters; 0: the type's */
    unsigned              precision;    /* digits in all; 0: 18 */
    unsigned              scale;        /* decimal: digits after '.' */
    unsigned              minor_units:1;  /* decimal: value in 10^-scale */
    unsigned              nullable:1;     /* JSON null clears the field */
    const char *const    *allowed;      /* picklist values, exact case */
    size_t                n_allowed;
    const char           *country;      /* phone: for national numbers */
} loyalty_sf_field_type_t;


typedef struct {
    loyalty_sf_json_e     json;
    loyalty_str_t         text;         /* canonical; "true" / "false" */
} loyalty_sf_value_t;


/* "text", "integer", ... (as in the worker's field map); DECLINED else */
int loyalty_sf_type_parse(const char *name, loyalty_sf_type_e *out);
const char *loyalty_sf_type_name(loyalty_sf_type_e type);

/*
 * in (a JSON value of the event) into out, in memory from a.
 * LOYALTY_DECLINED with err->msg naming the problem ("27 characters,
 * the field takes 20") when the value cannot be written to a field of
 * type t; LOYALTY_ERROR when memory runs out.
 */
int loyalty_sf_coerce(const loyalty_sf_field_type_t *t,
    const loyalty_json_t *in, const loyalty_alloc_t *a,
    loyalty_sf_value_t *out, loyalty_err_t *err);

/* the member "name": value, as the type wants it */
void loyalty_sf_value_write(loyalty_jw_t *w, const loyalty_str_t *name,
    const loyalty_sf_value_t *v);


#endif /* _LOYALTY_SF_FIELD_H_INCLUDED_ */
