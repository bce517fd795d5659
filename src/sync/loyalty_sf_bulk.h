/*
 * Copyright (C) loyalty-edge authors
 *
 * What Bulk API 2.0 ingest answers, apart from any transport
 * (apis.md §11.6): the job info of create, close and poll, the
 * sf__Error cell of a failed result row, and the /limits resource the
 * daily budget guard polls (§11.8).
 */

#ifndef _LOYALTY_SF_BULK_H_INCLUDED_
#define _LOYALTY_SF_BULK_H_INCLUDED_


#include "loyalty_core.h"
#include "loyalty_sf_api.h"


#define LOYALTY_SF_BULK_MAX      10000               /* records per job */
#define LOYALTY_SF_BULK_BYTES    (100 * 1024 * 1024) /* CSV per job */


typedef enum {
    LOYALTY_SF_JOB_UNKNOWN = 0,
    LOYALTY_SF_JOB_OPEN,
    LOYALTY_SF_JOB_UPLOAD_COMPLETE,
    LOYALTY_SF_JOB_IN_PROGRESS,
    LOYALTY_SF_JOB_COMPLETE,
    LOYALTY_SF_JOB_FAILED,
    LOYALTY_SF_JOB_ABORTED
} loyalty_sf_job_state_e;


typedef struct {
    loyalty_str_t           id;            /* 750... */
    loyalty_sf_job_state_e  state;
    int64_t                 processed;     /* numberRecordsProcessed */
    int64_t                 failed;        /* numberRecordsFailed */
    loyalty_str_t           error;         /* errorMessage (Failed) */
} loyalty_sf_job_t;


/* a terminal state: the results can be read */
#define loyalty_sf_job_done(s)                                               \
    ((s) == LOYALTY_SF_JOB_COMPLETE || (s) == LOYALTY_SF_JOB_FAILED          \
     || (s) == LOYALTY_SF_JOB_ABORTED)


/* job info JSON into out (strings from a); DECLINED without an id */
int loyalty_sf_job_parse(const loyalty_str_t *body, const loyalty_alloc_t *a,
    loyalty_sf_job_t *out, loyalty_err_t *err);

/*
 * "CODE:message:fields --" (fields comma-separated, may be empty) into
 * out's code, message and fields (slices of e) and its class; a cell
 * without a code is a permanent UNKNOWN_BULK_ERROR with e as message.
 */
void loyalty_sf_bulk_error_parse(const loyalty_str_t *e,
    loyalty_sf_result_t *out);

/* {"DailyApiRequests":{"Max":N,"Remaining":M}} into used = N - M */
int loyalty_sf_limits_parse(const loyalty_str_t *body,
    const loyalty_alloc_t *a, loyalty_sf_usage_t *out, loyalty_err_t *err);


#endif /* _LOYALTY_SF_BULK_H_INCLUDED_ */
