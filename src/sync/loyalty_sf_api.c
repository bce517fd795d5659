/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include "loyalty_sf_api.h"


typedef struct {
    const char          *code;
    loyalty_sf_class_e   cls;
} loyalty_sf_code_t;


/* codes that are not plain permanent failures (apis.md §11.4, §11.8) */
static const loyalty_sf_code_t  loyalty_sf_codes[] = {
    { "OPERATION_ENQUEUED",                LOYALTY_SF_SUCCESS },
    { "UNABLE_TO_LOCK_ROW",                LOYALTY_SF_TRANSIENT },
    { "ALL_OR_NONE_OPERATION_ROLLED_BACK", LOYALTY_SF_TRANSIENT },
    { "SERVER_UNAVAILABLE",                LOYALTY_SF_TRANSIENT },
    { "UNKNOWN_EXCEPTION",                 LOYALTY_SF_TRANSIENT },
    { "REQUEST_RUNNING_TOO_LONG",          LOYALTY_SF_TRANSIENT },
    { "QUERY_TIMEOUT",                     LOYALTY_SF_TRANSIENT },
    { "PROCESSING_HALTED",                 LOYALTY_SF_TRANSIENT },
    { "DUPLICATE_VALUE",                   LOYALTY_SF_CONFLICT },
    { "DUPLICATES_DETECTED",               LOYALTY_SF_CONFLICT },
    { "DUPLICATE_EXTERNAL_ID",             LOYALTY_SF_CONFLICT },
    { "MULTIPLE_CHOICES",                  LOYALTY_SF_CONFLICT },
    { "INVALID_SESSION_ID",                LOYALTY_SF_AUTH },
    { "REQUEST_LIMIT_EXCEEDED",            LOYALTY_SF_LIMIT },
    { NULL, 0 }
};


static int loyalty_sf_error_parse(const loyalty_json_t *errors,
    const char *code_key, const loyalty_alloc_t *a, loyalty_sf_result_t *r);
static int loyalty_sf_result_parse(const loyalty_json_t *v,
    const loyalty_alloc_t *a, loyalty_sf_result_t *r);
static int loyalty_sf_parse(const loyalty_str_t *body,
    const loyalty_alloc_t *a, loyalty_json_t **v, loyalty_err_t *err);
static int loyalty_sf_contains(const loyalty_str_t *s, const char *needle);


loyalty_sf_class_e
loyalty_sf_classify(const loyalty_str_t *code, const loyalty_str_t *message)
{
    const loyalty_sf_code_t  *c;

    for (c = loyalty_sf_codes; c->code != NULL; c++) {
        if (loyalty_str_eq(code, c->code)) {
            return c->cls;
        }
    }

    /*
     * A lookup by external id to a record that is not there yet (the
     * customer's own event is behind this one, or still retried):
     * INVALID_FIELD "Foreign key external ID: v not found for field F
     * in entity Contact".  Retried: the record may come; max_attempts
     * ends it with this message.
     */
    if (message != NULL && loyalty_str_eq(code, "INVALID_FIELD")
        && loyalty_sf_contains(message, "Foreign key external ID"))
    {
        return LOYALTY_SF_TRANSIENT;
    }

    /* a lock inside a flow or trigger comes wrapped in another code */
    if (message != NULL && loyalty_sf_contains(message, "UNABLE_TO_LOCK_ROW"))
    {
        return LOYALTY_SF_TRANSIENT;
    }

    return LOYALTY_SF_PERMANENT;
}


const char *
loyalty_sf_class_name(loyalty_sf_class_e cls)
{
    static const char  *names[] = { "success", "transient", "permanent",
                                    "conflict", "auth", "limit" };

    return (unsigned) cls < sizeof(names) / sizeof(names[0])
           ? names[cls] : "unknown";
}


static int
loyalty_sf_contains(const loyalty_str_t *s, const char *needle)
{
    size_t  n, i;

    n = strlen(needle);

    for (i = 0; s->data != NULL && i + n <= s->len; i++) {
        if (memcmp(s->data + i, needle, n) == 0) {
            return 1;
        }
    }

    return 0;
}


void
loyalty_sf_collection_begin(loyalty_jw_t *w, int all_or_none)
{
    loyalty_jw_object(w, NULL);
    loyalty_jw_bool(w, "allOrNone", all_or_none);
    loyalty_jw_array(w, "records");
}


void
loyalty_sf_record_begin(loyalty_jw_t *w, const loyalty_str_t *object)
{
    loyalty_jw_object(w, NULL);
    loyalty_jw_object(w, "attributes");
    loyalty_jw_str(w, "type", object);
    loyalty_jw_end(w);
}


void
loyalty_sf_record_end(loyalty_jw_t *w)
{
    loyalty_jw_end(w);
}


void
loyalty_sf_collection_end(loyalty_jw_t *w)
{
    loyalty_jw_end(w);
    loyalty_jw_end(w);
}


static int
loyalty_sf_parse(const loyalty_str_t *body, const loyalty_alloc_t *a,
    loyalty_json_t **v, loyalty_err_t *err)
{
    if (body->len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "empty answer");
        return LOYALTY_DECLINED;
    }

    if (loyalty_json_parse(body, a, v, err) != LOYALTY_OK) {
        return err->code == LOYALTY_ERR_NOMEM ? LOYALTY_ERROR
                                              : LOYALTY_DECLINED;
    }

    return LOYALTY_OK;
}


int
loyalty_sf_results_parse(const loyalty_str_t *body, size_t n,
    const loyalty_alloc_t *a, loyalty_sf_result_t *out, loyalty_err_t *err)
{
    int              rc;
    size_t           i;
    loyalty_json_t  *v, *e;

    rc = loyalty_sf_parse(body, a, &v, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (v->type != LOYALTY_JSON_ARRAY || v->n != n) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "expected an array of %zu results", n);
        return LOYALTY_DECLINED;
    }

    for (i = 0, e = v->child; e != NULL; i++, e = e->next) {
        rc = loyalty_sf_result_parse(e, a, &out[i]);
        if (rc != LOYALTY_OK) {
            loyalty_err_set(err, LOYALTY_ERR_INPUT,
                            "result %zu is not an upsert result", i);
            return rc;
        }
    }

    return LOYALTY_OK;
}


/* {"id","success","errors":[...],"created"} */

static int
loyalty_sf_result_parse(const loyalty_json_t *v, const loyalty_alloc_t *a,
    loyalty_sf_result_t *r)
{
    loyalty_json_t  *success, *created, *id, *errors;

    memset(r, 0, sizeof(*r));

    success = loyalty_json_get(v, "success");
    if (success == NULL || (success->type != LOYALTY_JSON_TRUE
                            && success->type != LOYALTY_JSON_FALSE))
    {
        return LOYALTY_DECLINED;
    }

    id = loyalty_json_get(v, "id");
    if (id != NULL && id->type == LOYALTY_JSON_STRING) {
        r->id = id->text;
    }

    created = loyalty_json_get(v, "created");
    r->created = (created != NULL && created->type == LOYALTY_JSON_TRUE);

    errors = loyalty_json_get(v, "errors");

    if (success->type == LOYALTY_JSON_TRUE) {
        /* OPERATION_ENQUEUED comes as an "error" of a success */
        r->cls = LOYALTY_SF_SUCCESS;
        if (errors != NULL && errors->n > 0) {
            (void) loyalty_sf_error_parse(errors, "statusCode", a, r);
            r->cls = LOYALTY_SF_SUCCESS;
        }
        return LOYALTY_OK;
    }

    if (errors == NULL || errors->type != LOYALTY_JSON_ARRAY
        || errors->n == 0)
    {
        return LOYALTY_DECLINED;
    }

    return loyalty_sf_error_parse(errors, "statusCode", a, r);
}


/* the first error of [{code_key, "message", "fields":[...]}, ...] */

static int
loyalty_sf_error_parse(const loyalty_json_t *errors, const char *code_key,
    const loyalty_alloc_t *a, loyalty_sf_result_t *r)
{
    u_char          *p;
    size_t           len;
    loyalty_json_t  *e, *code, *msg, *fields, *f;

    e = errors->child;
    if (e == NULL || e->type != LOYALTY_JSON_OBJECT) {
        return LOYALTY_DECLINED;
    }

    code = loyalty_json_get(e, code_key);
    if (code == NULL || code->type != LOYALTY_JSON_STRING) {
        return LOYALTY_DECLINED;
    }

    r->code = code->text;

    msg = loyalty_json_get(e, "message");
    if (msg != NULL && msg->type == LOYALTY_JSON_STRING) {
        r->message = msg->text;
    }

    fields = loyalty_json_get(e, "fields");

    if (fields != NULL && fields->type == LOYALTY_JSON_ARRAY
        && fields->n > 0)
    {
        len = 0;
        for (f = fields->child; f != NULL; f = f->next) {
            len += f->text.len + 1;
        }

        p = a->alloc(a->ctx, len);
        if (p == NULL) {
            return LOYALTY_ERROR;
        }

        r->fields.data = p;

        for (f = fields->child; f != NULL; f = f->next) {
            if (f->type != LOYALTY_JSON_STRING) {
                continue;
            }
            if (p != r->fields.data) {
                *p++ = ',';
            }
            memcpy(p, f->text.data, f->text.len);
            p += f->text.len;
        }

        r->fields.len = (size_t) (p - r->fields.data);
    }

    r->cls = loyalty_sf_classify(&r->code, &r->message);

    return LOYALTY_OK;
}


int
loyalty_sf_answer_parse(int status, const loyalty_str_t *body,
    const loyalty_alloc_t *a, loyalty_sf_result_t *out, loyalty_err_t *err)
{
    int              rc;
    loyalty_json_t  *v;

    memset(out, 0, sizeof(*out));

    if (status == 204 || (status >= 200 && status < 300 && body->len == 0))
    {
        out->cls = LOYALTY_SF_SUCCESS;     /* upsert before API 46.0 */
        return LOYALTY_OK;
    }

    if (status == 300) {
        out->cls = LOYALTY_SF_CONFLICT;
        out->code.data = (const u_char *) "MULTIPLE_CHOICES";
        out->code.len = sizeof("MULTIPLE_CHOICES") - 1;
        out->message.data = (const u_char *)
                            "the external id matches several records";
        out->message.len = strlen((const char *) out->message.data);
        return LOYALTY_OK;
    }

    rc = loyalty_sf_parse(body, a, &v, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (status >= 200 && status < 300) {
        if (v->type != LOYALTY_JSON_OBJECT
            || loyalty_sf_result_parse(v, a, out) != LOYALTY_OK)
        {
            loyalty_err_set(err, LOYALTY_ERR_INPUT,
                            "HTTP %d without a result object", status);
            return LOYALTY_DECLINED;
        }
        return LOYALTY_OK;
    }

    if (v->type != LOYALTY_JSON_ARRAY
        || loyalty_sf_error_parse(v, "errorCode", a, out) != LOYALTY_OK)
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "HTTP %d without an error array", status);
        return LOYALTY_DECLINED;
    }

    /* the server's trouble is never the record's fault */
    if (status >= 500 && out->cls == LOYALTY_SF_PERMANENT) {
        out->cls = LOYALTY_SF_TRANSIENT;
    }

    return LOYALTY_OK;
}


int
loyalty_sf_usage_parse(const loyalty_str_t *header, loyalty_sf_usage_t *out)
{
    static const char   key[] = "api-usage=";
    const u_char       *p, *end;
    int64_t             v[2];
    int                 i, digits;

    if (header->len < sizeof(key) - 1) {
        return LOYALTY_DECLINED;
    }

    p = header->data;
    end = p + header->len;

    /* the key may follow other parts: find it */
    for ( ;; ) {
        if ((size_t) (end - p) < sizeof(key) - 1) {
            return LOYALTY_DECLINED;
        }
        if (memcmp(p, key, sizeof(key) - 1) == 0) {
            break;
        }
        p++;
    }

    p += sizeof(key) - 1;

    for (i = 0; i < 2; i++) {
        v[i] = 0;
        digits = 0;

        while (p < end && *p >= '0' && *p <= '9' && digits < 15) {
            v[i] = v[i] * 10 + (*p++ - '0');
            digits++;
        }

        if (digits == 0 || (p < end && *p >= '0' && *p <= '9')) {
            return LOYALTY_DECLINED;
        }

        if (i == 0) {
            if (p == end || *p != '/') {
                return LOYALTY_DECLINED;
            }
            p++;
        }
    }

    if (p < end && *p != ';' && *p != ' ' && *p != ',') {
        return LOYALTY_DECLINED;
    }

    out->used = v[0];
    out->limit = v[1];

    return LOYALTY_OK;
}
