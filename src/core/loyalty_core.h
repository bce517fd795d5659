/*
 * Copyright (C) loyalty-edge authors
 *
 * Plain C shared by the nginx module and loyalty-worker: no nginx,
 * hiredis or libevent types may appear in src/core.
 */

#ifndef _LOYALTY_CORE_H_INCLUDED_
#define _LOYALTY_CORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <sys/types.h>


#define LOYALTY_OK          0
#define LOYALTY_ERROR      -1
#define LOYALTY_DECLINED   -5


/* loyalty_err_t codes: what kind of input was refused */
#define LOYALTY_ERR_SIGNATURE   1
#define LOYALTY_ERR_JSON        2
#define LOYALTY_ERR_INPUT       3
#define LOYALTY_ERR_CONFIG      4
#define LOYALTY_ERR_NOMEM       5


typedef struct {
    size_t          len;
    const u_char   *data;
} loyalty_str_t;

#define loyalty_string(s)     { sizeof(s) - 1, (const u_char *) s }
#define loyalty_null_string   { 0, NULL }


/*
 * Errors are returned, never logged, by core code: the caller decides
 * the level and adds its own context (hiredis errstr pattern).
 */

typedef struct {
    int             code;
    char            msg[128];
} loyalty_err_t;


/* caller-supplied allocator: nginx passes its request pool */

typedef struct {
    void         *(*alloc)(void *ctx, size_t size);
    void           *ctx;
} loyalty_alloc_t;


void loyalty_err_set(loyalty_err_t *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

u_char *loyalty_alloc_copy(const loyalty_alloc_t *a, const void *src,
    size_t len);
int loyalty_str_eq(const loyalty_str_t *s, const char *cstr);


#endif /* _LOYALTY_CORE_H_INCLUDED_ */
