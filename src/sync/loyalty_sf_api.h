/*
 * Copyright (C) loyalty-edge authors
 *
 * The Salesforce REST API's own formats, apart from any transport: the
 * sObject Collections request body, its per-record results, top-level
 * error arrays, what each error code means for the event (retry, dead
 * letter, conflict, new token, pause) and the Sforce-Limit-Info header.
 * Facts: apis.md §11.
 */

#ifndef _LOYALTY_SF_API_H_INCLUDED_
#define _LOYALTY_SF_API_H_INCLUDED_


#include "loyalty_core.h"
#include "loyalty_json.h"
#include "loyalty_jw.h"


#define LOYALTY_SF_COLLECTION_MAX  200     /* records per call */


typedef enum {
    LOYALTY_SF_SUCCESS = 0,
    LOYALTY_SF_TRANSIENT,      /* retry with backoff: lock, rollback, 5xx */
    LOYALTY_SF_PERMANENT,      /* dead letter with the error */
    LOYALTY_SF_CONFLICT,       /* duplicates: the conflicts stream */
    LOYALTY_SF_AUTH,           /* INVALID_SESSION_ID: refresh, retry once */
    LOYALTY_SF_LIMIT           /* REQUEST_LIMIT_EXCEEDED: pause */
} loyalty_sf_class_e;


typedef struct {
    loyalty_sf_class_e    cls;
    unsigned              created:1;
    loyalty_str_t         id;          /* record id, empty on failure */
    loyalty_str_t         code;        /* first error's code */
    loyalty_str_t         message;
    loyalty_str_t         fields;      /* "Email,Phone" */
} loyalty_sf_result_t;


typedef struct {
    int64_t               used;
    int64_t               limit;
} loyalty_sf_usage_t;


/* an error code (and its message, for wrapped codes) into its class */
loyalty_sf_class_e loyalty_sf_classify(const loyalty_str_t *code,
    const loyalty_str_t *message);

const char *loyalty_sf_class_name(loyalty_sf_class_e cls);

/*
 * {"allOrNone":false,"records":[ ... ]}: begin, then per record
 * loyalty_sf_record_begin(), its fields (loyalty_sf_value_write), and
 * loyalty_sf_record_end(); then loyalty_sf_collection_end().
 */
void loyalty_sf_collection_begin(loyalty_jw_t *w, int all_or_none);
void loyalty_sf_record_begin(loyalty_jw_t *w, const loyalty_str_t *object);
void loyalty_sf_record_end(loyalty_jw_t *w);
void loyalty_sf_collection_end(loyalty_jw_t *w);

/*
 * The 200 answer of a Collections call: exactly n results, in the order
 * of the records sent.  LOYALTY_DECLINED with err when the body is not
 * that (a transient failure for the caller: never guess which record a
 * result belongs to).
 */
int loyalty_sf_results_parse(const loyalty_str_t *body, size_t n,
    const loyalty_alloc_t *a, loyalty_sf_result_t *out, loyalty_err_t *err);

/*
 * A single-record answer (upsert, create, publish): the result object
 * of a 2xx, or the [{"message","errorCode","fields"}] array of a 4xx/5xx;
 * status 300 (several records match an external id) is a conflict.
 */
int loyalty_sf_answer_parse(int status, const loyalty_str_t *body,
    const loyalty_alloc_t *a, loyalty_sf_result_t *out, loyalty_err_t *err);

/* "api-usage=18/15000; api-bursts=..." into out; DECLINED otherwise */
int loyalty_sf_usage_parse(const loyalty_str_t *header,
    loyalty_sf_usage_t *out);


#endif /* _LOYALTY_SF_API_H_INCLUDED_ */
