/*
 * Copyright (C) loyalty-edge authors
 *
 * Bulk API 2.0 answers: job info, sf__Error cells, /limits.
 */

#include <string.h>

#include "loyalty_json.h"
#include "loyalty_sf_bulk.h"


static const struct {
    const char              *name;
    loyalty_sf_job_state_e   state;
} loyalty_sf_job_states[] = {
    { "Open", LOYALTY_SF_JOB_OPEN },
    { "UploadComplete", LOYALTY_SF_JOB_UPLOAD_COMPLETE },
    { "InProgress", LOYALTY_SF_JOB_IN_PROGRESS },
    { "JobComplete", LOYALTY_SF_JOB_COMPLETE },
    { "Failed", LOYALTY_SF_JOB_FAILED },
    { "Aborted", LOYALTY_SF_JOB_ABORTED },
    { NULL, LOYALTY_SF_JOB_UNKNOWN }
};


int
loyalty_sf_job_parse(const loyalty_str_t *body, const loyalty_alloc_t *a,
    loyalty_sf_job_t *out, loyalty_err_t *err)
{
    size_t           i;
    loyalty_json_t  *v, *n;
    loyalty_str_t    state;

    memset(out, 0, sizeof(*out));
    v = NULL;

    if (loyalty_json_parse(body, a, &v, err) != LOYALTY_OK) {
        return LOYALTY_DECLINED;
    }

    if (v->type != LOYALTY_JSON_OBJECT
        || loyalty_json_scalar(v, "id", &out->id) != LOYALTY_OK
        || out->id.len > 32)
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "job info without an id");
        return LOYALTY_DECLINED;
    }

    if (loyalty_json_scalar(v, "state", &state) == LOYALTY_OK) {
        for (i = 0; loyalty_sf_job_states[i].name != NULL; i++) {
            if (loyalty_str_eq(&state, loyalty_sf_job_states[i].name)) {
                out->state = loyalty_sf_job_states[i].state;
                break;
            }
        }
    }

    n = loyalty_json_get(v, "numberRecordsProcessed");
    if (n != NULL) {
        (void) loyalty_json_int64(n, &out->processed);
    }

    n = loyalty_json_get(v, "numberRecordsFailed");
    if (n != NULL) {
        (void) loyalty_json_int64(n, &out->failed);
    }

    (void) loyalty_json_scalar(v, "errorMessage", &out->error);

    return LOYALTY_OK;
}


void
loyalty_sf_bulk_error_parse(const loyalty_str_t *e, loyalty_sf_result_t *out)
{
    size_t          len, i, colon, last;
    const u_char   *p;
    static const loyalty_str_t  unknown = loyalty_string("UNKNOWN_BULK_ERROR");

    memset(out, 0, sizeof(*out));

    p = e->data;
    len = e->len;

    /* Salesforce ends the cell with " --" (several errors: joined) */
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '-')) {
        len--;
    }

    colon = len;
    for (i = 0; i < len; i++) {
        if (p[i] == ':') {
            colon = i;
            break;
        }
    }

    /* a code is upper case letters, digits and underscores */
    for (i = 0; i < colon; i++) {
        if (!((p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9')
              || p[i] == '_'))
        {
            break;
        }
    }

    if (colon == 0 || colon == len || i < colon) {
        out->code = unknown;
        out->message.data = p;
        out->message.len = len;
        out->cls = LOYALTY_SF_PERMANENT;
        return;
    }

    out->code.data = p;
    out->code.len = colon;

    last = len;
    for (i = len; i > colon + 1; i--) {
        if (p[i - 1] == ':') {
            last = i - 1;
            break;
        }
    }

    out->message.data = p + colon + 1;

    if (last < len) {
        out->message.len = last - colon - 1;
        out->fields.data = p + last + 1;
        out->fields.len = len - last - 1;

    } else {
        out->message.len = len - colon - 1;
    }

    out->cls = loyalty_sf_classify(&out->code, &out->message);
}


int
loyalty_sf_limits_parse(const loyalty_str_t *body, const loyalty_alloc_t *a,
    loyalty_sf_usage_t *out, loyalty_err_t *err)
{
    int64_t          max, remaining;
    loyalty_json_t  *v, *d, *n, *r;

    v = NULL;

    if (loyalty_json_parse(body, a, &v, err) != LOYALTY_OK) {
        return LOYALTY_DECLINED;
    }

    d = (v->type == LOYALTY_JSON_OBJECT)
        ? loyalty_json_object(v, "DailyApiRequests") : NULL;
    n = d ? loyalty_json_get(d, "Max") : NULL;
    r = d ? loyalty_json_get(d, "Remaining") : NULL;

    if (n == NULL || r == NULL
        || loyalty_json_int64(n, &max) != LOYALTY_OK
        || loyalty_json_int64(r, &remaining) != LOYALTY_OK
        || max <= 0 || remaining > max)
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "no DailyApiRequests Max "
                        "and Remaining");
        return LOYALTY_DECLINED;
    }

    out->limit = max;
    out->used = max - (remaining < 0 ? 0 : remaining);

    return LOYALTY_OK;
}
