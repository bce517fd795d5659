/*
 * Copyright (C) loyalty-edge authors
 *
 * A JSON writer for the canonical data normalisers build: values are
 * appended to one growing buffer in the caller's allocator, commas and
 * nesting are tracked here, and the first failure (memory, nesting)
 * sticks until loyalty_jw_finish() reports it, so callers write a whole
 * object without checking every call.
 *
 *     loyalty_jw_init(&w, a, 256);
 *     loyalty_jw_object(&w, NULL);
 *     loyalty_jw_cstr(&w, "id", "ord_1");
 *     loyalty_jw_int(&w, "total", 4990);
 *     loyalty_jw_end(&w);
 *     rc = loyalty_jw_finish(&w, &out);
 */

#ifndef _LOYALTY_JW_H_INCLUDED_
#define _LOYALTY_JW_H_INCLUDED_


#include "loyalty_core.h"


#define LOYALTY_JW_MAX_DEPTH  32


typedef struct {
    u_char                   *start;
    u_char                   *pos;
    u_char                   *end;
    const loyalty_alloc_t    *alloc;
    uint32_t                  array;     /* bit per level: an array */
    uint32_t                  more;      /* bit per level: not empty */
    unsigned                  depth;
    unsigned                  failed:1;
    unsigned                  named:1;   /* a name awaits its value */
} loyalty_jw_t;


void loyalty_jw_init(loyalty_jw_t *w, const loyalty_alloc_t *a,
    size_t hint);

/*
 * key is the member name inside an object and NULL inside an array or
 * for the top-level value; key is written as it is (callers pass
 * literals), string values are escaped.
 */
void loyalty_jw_object(loyalty_jw_t *w, const char *key);
void loyalty_jw_array(loyalty_jw_t *w, const char *key);
void loyalty_jw_end(loyalty_jw_t *w);

void loyalty_jw_str(loyalty_jw_t *w, const char *key,
    const loyalty_str_t *value);
void loyalty_jw_cstr(loyalty_jw_t *w, const char *key, const char *value);
void loyalty_jw_int(loyalty_jw_t *w, const char *key, int64_t value);
void loyalty_jw_bool(loyalty_jw_t *w, const char *key, int value);
/* an already valid JSON value (a dump, a number's text) */
void loyalty_jw_raw(loyalty_jw_t *w, const char *key,
    const loyalty_str_t *json);

/*
 * A member name that is not a literal (escaped); the next call writes
 * its value, with key NULL.
 */
void loyalty_jw_name(loyalty_jw_t *w, const loyalty_str_t *name);

/*
 * len bytes as the inside of a JSON string (quotes, backslashes and
 * control characters escaped) into dst, which has room for 6 * len;
 * returns the bytes written.  For callers that build JSON by hand.
 */
size_t loyalty_jw_escape(u_char *dst, const u_char *src, size_t len);

/* 1 when the object or array being written has no member yet */
int loyalty_jw_empty(const loyalty_jw_t *w);

/*
 * LOYALTY_OK with the text in out (NUL-terminated) when every call
 * succeeded and every object and array was closed, else LOYALTY_ERROR.
 */
int loyalty_jw_finish(loyalty_jw_t *w, loyalty_str_t *out);


#endif /* _LOYALTY_JW_H_INCLUDED_ */
