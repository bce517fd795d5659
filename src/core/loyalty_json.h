/*
 * Copyright (C) loyalty-edge authors
 *
 * Thin helpers over json-c.  Numbers keep their original text when
 * serialised again, so ids and money never pass through a double.
 */

#ifndef _LOYALTY_JSON_H_INCLUDED_
#define _LOYALTY_JSON_H_INCLUDED_


#include <json-c/json.h>

#include "loyalty_core.h"


#define LOYALTY_JSON_MAX_DEPTH  64


/* the whole buffer must be exactly one JSON value (whitespace allowed) */
int loyalty_json_parse(const loyalty_str_t *text, json_object **out,
    loyalty_err_t *err);

/* compact serialisation copied into memory from a */
int loyalty_json_dump(json_object *obj, const loyalty_alloc_t *a,
    loyalty_str_t *out);

/* a string member, or a number member as its original text */
int loyalty_json_scalar(json_object *obj, const char *key,
    loyalty_str_t *out);

json_object *loyalty_json_object(json_object *obj, const char *key);


#endif /* _LOYALTY_JSON_H_INCLUDED_ */
