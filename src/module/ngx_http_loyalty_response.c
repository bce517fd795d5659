/*
 * Copyright (C) loyalty-edge authors
 *
 * Every answer of the handler: status, small JSON body, X-Correlation-ID,
 * Retry-After where the sender should come back later.
 */


#include "ngx_http_loyalty_module.h"


typedef struct {
    ngx_uint_t   status;
    ngx_str_t    name;           /* $loyalty_result and the "error" code */
    ngx_uint_t   retry;          /* send Retry-After */
} ngx_http_loyalty_answer_t;


static ngx_http_loyalty_answer_t  ngx_http_loyalty_answers[] = {
    { NGX_HTTP_ACCEPTED, ngx_string("accepted"), 0 },
    { NGX_HTTP_OK, ngx_string("duplicate"), 0 },
    { NGX_HTTP_OK, ngx_string("ignored"), 0 },
    { NGX_HTTP_UNAUTHORIZED, ngx_string("bad_signature"), 0 },
    { NGX_HTTP_BAD_REQUEST, ngx_string("bad_json"), 0 },
    { NGX_HTTP_BAD_REQUEST, ngx_string("bad_store"), 0 },
    { NGX_HTTP_BAD_REQUEST, ngx_string("bad_request"), 0 },
    { NGX_HTTP_NOT_ALLOWED, ngx_string("method_not_allowed"), 0 },
    { NGX_HTTP_SERVICE_UNAVAILABLE, ngx_string("unavailable"), 1 },
    { NGX_HTTP_SERVICE_UNAVAILABLE, ngx_string("backpressure"), 1 },
    { NGX_HTTP_INTERNAL_SERVER_ERROR, ngx_string("internal"), 0 }
};


static ngx_int_t ngx_http_loyalty_respond_ack(ngx_http_request_t *r,
    ngx_http_loyalty_ctx_t *ctx, const loyalty_provider_t *provider);
static ngx_int_t ngx_http_loyalty_add_header(ngx_http_request_t *r,
    ngx_str_t *key, ngx_str_t *value);


ngx_int_t
ngx_http_loyalty_respond(ngx_http_request_t *r, ngx_http_loyalty_ctx_t *ctx,
    ngx_http_loyalty_result_e result, const char *message)
{
    u_char                       *p;
    size_t                        len, mlen;
    ngx_int_t                     rc;
    ngx_buf_t                    *b;
    ngx_str_t                     value;
    ngx_chain_t                   out;
    ngx_http_loyalty_answer_t    *a;
    ngx_http_loyalty_loc_conf_t  *llcf;

    static ngx_str_t  corr_header = ngx_string("X-Correlation-ID");
    static ngx_str_t  retry_header = ngx_string("Retry-After");
    static ngx_str_t  allow_header = ngx_string("Allow");
    static ngx_str_t  post = ngx_string("POST");

    a = &ngx_http_loyalty_answers[result];

    ctx->result = a->name;

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loyalty_module);

    /* senders with their own acknowledgement (Salesforce's SOAP Ack) */
    if ((result == NGX_HTTP_LOYALTY_ACCEPTED
         || result == NGX_HTTP_LOYALTY_DUPLICATE)
        && llcf->pc.provider != NULL && llcf->pc.provider->ack != NULL)
    {
        return ngx_http_loyalty_respond_ack(r, ctx, llcf->pc.provider);
    }

    mlen = message ? ngx_strlen(message) : 0;

    /* ids and corr are validated printable ASCII without quotes... */
    len = sizeof("{\"status\":\"\",\"id\":\"\",\"corr\":\"\"}\n") - 1
          + a->name.len + ctx->event_id.len + ctx->corr.len
          + sizeof(",\"message\":\"\"") - 1
          /* ...a message is escaped */
          + mlen + ngx_escape_json(NULL, (u_char *) message, mlen)
          + sizeof(",\"events\":,\"accepted\":") - 1 + 2 * NGX_INT_T_LEN;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    switch (result) {

    case NGX_HTTP_LOYALTY_ACCEPTED:
        p = ngx_sprintf(p, "{\"id\":\"%V\",\"corr\":\"%V\"",
                        &ctx->event_id, &ctx->corr);
        if (ctx->nevents > 1) {
            p = ngx_sprintf(p, ",\"events\":%ui,\"accepted\":%ui",
                            ctx->nevents, ctx->accepted);
        }
        *p++ = '}';
        *p++ = '\n';
        break;

    case NGX_HTTP_LOYALTY_DUPLICATE:
    case NGX_HTTP_LOYALTY_IGNORED:
        p = ngx_sprintf(p, "{\"status\":\"%V\",\"id\":\"%V\",\"corr\":\"%V\"}"
                        "\n", &a->name, &ctx->event_id, &ctx->corr);
        break;

    default:
        p = ngx_sprintf(p, "{\"error\":\"%V\"", &a->name);

        if (mlen) {
            p = ngx_cpymem(p, ",\"message\":\"", sizeof(",\"message\":\"") - 1);
            p = (u_char *) ngx_escape_json(p, (u_char *) message, mlen);
            *p++ = '"';
        }

        p = ngx_sprintf(p, ",\"corr\":\"%V\"}\n", &ctx->corr);
    }

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    if (ngx_http_loyalty_add_header(r, &corr_header, &ctx->corr) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (a->retry) {
        value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
        if (value.data == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        value.len = ngx_sprintf(value.data, "%T", llcf->retry_after)
                    - value.data;

        if (ngx_http_loyalty_add_header(r, &retry_header, &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (result == NGX_HTTP_LOYALTY_BAD_METHOD
        && ngx_http_loyalty_add_header(r, &allow_header, &post) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = a->status;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_loyalty_respond_ack(ngx_http_request_t *r,
    ngx_http_loyalty_ctx_t *ctx, const loyalty_provider_t *provider)
{
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    static ngx_str_t  corr_header = ngx_string("X-Correlation-ID");

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = (u_char *) provider->ack->data;
    b->last = b->pos + provider->ack->len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    if (ngx_http_loyalty_add_header(r, &corr_header, &ctx->corr) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = provider->ack->len;
    r->headers_out.content_type.data = (u_char *) provider->ack_type;
    r->headers_out.content_type.len = ngx_strlen(provider->ack_type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


void
ngx_http_loyalty_finish(ngx_http_request_t *r, ngx_http_loyalty_ctx_t *ctx,
    ngx_http_loyalty_result_e result, const char *message)
{
    ngx_http_finalize_request(r,
                              ngx_http_loyalty_respond(r, ctx, result,
                                                       message));
}


static ngx_int_t
ngx_http_loyalty_add_header(ngx_http_request_t *r, ngx_str_t *key,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key = *key;
    h->value = *value;

    return NGX_OK;
}
