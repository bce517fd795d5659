/*
 * Copyright (C) loyalty-edge authors
 *
 * The content handler: method and store checks, body, signature,
 * normalisation, then the hand-off to Redis (ngx_http_loyalty_enqueue.c).
 */


#include "ngx_http_loyalty_module.h"


static void ngx_http_loyalty_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_loyalty_body(ngx_http_request_t *r,
    ngx_http_loyalty_ctx_t *ctx, loyalty_str_t *body);
#if (NGX_THREADS)
static ngx_int_t ngx_http_loyalty_thread_handler(ngx_thread_task_t *task,
    ngx_file_t *file);
static void ngx_http_loyalty_thread_event_handler(ngx_event_t *ev);
#endif
static ngx_int_t ngx_http_loyalty_correlation(ngx_http_request_t *r,
    ngx_http_loyalty_ctx_t *ctx);
static int ngx_http_loyalty_header(const loyalty_request_t *req,
    const char *name, loyalty_str_t *value);
static void *ngx_http_loyalty_palloc(void *ctx, size_t size);


ngx_int_t
ngx_http_loyalty_handler(ngx_http_request_t *r)
{
    u_char                       *p;
    ngx_int_t                     rc;
    ngx_str_t                     store;
    ngx_http_loyalty_ctx_t       *ctx;
    ngx_http_loyalty_loc_conf_t  *llcf;

    static const char  prefix[] = "loyalty:{";
    static const char  suffix[] = "}:in";

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_loyalty_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_loyalty_module);

    if (ngx_http_loyalty_correlation(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (r->method != NGX_HTTP_POST) {
        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_loyalty_respond(r, ctx, NGX_HTTP_LOYALTY_BAD_METHOD,
                                        "only POST is accepted");
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loyalty_module);

    if (ngx_http_complex_value(r, llcf->store, &store) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* a store becomes part of a Redis key: never let a client invent one */
    if (!loyalty_store_valid(store.data, store.len)) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "loyalty: invalid store name, corr=%V", &ctx->corr);

        rc = ngx_http_discard_request_body(r);
        if (rc != NGX_OK) {
            return rc;
        }

        return ngx_http_loyalty_respond(r, ctx, NGX_HTTP_LOYALTY_BAD_STORE,
                                        "store name is not valid");
    }

    ctx->store = store;

    p = ngx_pnalloc(r->pool, sizeof(prefix) - 1 + store.len
                             + sizeof(suffix) - 1);
    if (p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->stream_key.data = p;
    p = ngx_cpymem(p, prefix, sizeof(prefix) - 1);
    p = ngx_cpymem(p, store.data, store.len);
    p = ngx_cpymem(p, suffix, sizeof(suffix) - 1);
    ctx->stream_key.len = p - ctx->stream_key.data;

    rc = ngx_http_read_client_request_body(r, ngx_http_loyalty_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_http_loyalty_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_uint_t                    i;
    ngx_time_t                   *tp;
    loyalty_err_t                 err;
    loyalty_alloc_t               alloc;
    loyalty_batch_t               batch;
    loyalty_event_t              *ev;
    loyalty_request_t             req;
    ngx_http_loyalty_ctx_t       *ctx;
    ngx_http_loyalty_loc_conf_t  *llcf;
    ngx_http_loyalty_result_e     result;

    ctx = ngx_http_get_module_ctx(r, ngx_http_loyalty_module);
    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loyalty_module);

    ngx_memzero(&req, sizeof(loyalty_request_t));
    ngx_memzero(&batch, sizeof(loyalty_batch_t));
    err.code = 0;
    err.msg[0] = '\0';

    rc = ngx_http_loyalty_body(r, ctx, &req.body);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    tp = ngx_timeofday();
    req.now = tp->sec;
    req.now_ms = (int64_t) tp->sec * 1000 + tp->msec;
    req.header = ngx_http_loyalty_header;
    req.data = r;

    /* signature first: nothing unverified is parsed or sent to Redis */
    if (llcf->pc.provider->verify(&llcf->pc, &req, &err) != LOYALTY_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "loyalty: %s signature rejected: %s, corr=%V",
                      llcf->pc.provider->name, err.msg, &ctx->corr);

        ngx_http_loyalty_finish(r, ctx, NGX_HTTP_LOYALTY_BAD_SIGNATURE,
                                err.msg);
        return;
    }

    alloc.alloc = ngx_http_loyalty_palloc;
    alloc.ctx = r->pool;

    rc = llcf->pc.provider->normalize(&llcf->pc, &req, &alloc, &batch, &err);

    if (rc != LOYALTY_OK) {
        /* a verified id is worth logging even when the payload is bad */
        if (batch.nevents && batch.events[0].id.len
            && loyalty_event_id_valid(batch.events[0].id.data,
                                      batch.events[0].id.len))
        {
            ctx->event_id.data = (u_char *) batch.events[0].id.data;
            ctx->event_id.len = batch.events[0].id.len;
        }

        if (rc == LOYALTY_ERROR) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "loyalty: normalisation failed: %s, corr=%V",
                          err.msg, &ctx->corr);
            result = NGX_HTTP_LOYALTY_INTERNAL;

        } else {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "loyalty: payload rejected: %s, corr=%V",
                          err.msg, &ctx->corr);
            /* a sender proven by its payload (Salesforce's org id) */
            result = (err.code == LOYALTY_ERR_JSON)
                     ? NGX_HTTP_LOYALTY_BAD_JSON
                     : (err.code == LOYALTY_ERR_SIGNATURE)
                       ? NGX_HTTP_LOYALTY_BAD_SIGNATURE
                       : NGX_HTTP_LOYALTY_BAD_REQUEST;
        }

        ngx_http_loyalty_finish(r, ctx, result, err.msg);
        return;
    }

    if (batch.nevents == 0) {
        ngx_http_loyalty_finish(r, ctx, NGX_HTTP_LOYALTY_IGNORED, NULL);
        return;
    }

    for (i = 0; i < batch.nevents; i++) {
        ev = &batch.events[i];

        /* the dedupe keys become Redis key names: never trust blindly */
        if (!loyalty_event_id_valid(ev->id.data, ev->id.len)
            || (ev->alt_id.len
                && !loyalty_event_id_valid(ev->alt_id.data, ev->alt_id.len)))
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "loyalty: %s gave an invalid event id, corr=%V",
                          llcf->pc.provider->name, &ctx->corr);
            ngx_http_loyalty_finish(r, ctx, NGX_HTTP_LOYALTY_INTERNAL, NULL);
            return;
        }

        ev->store.data = ctx->store.data;
        ev->store.len = ctx->store.len;
        ev->corr.data = ctx->corr.data;
        ev->corr.len = ctx->corr.len;

        /* a delivery of many events keeps its body once */
        if (llcf->keep_raw && i == 0) {
            ev->raw = req.body;
        }
    }

    ctx->event_id.data = (u_char *) batch.events[0].id.data;
    ctx->event_id.len = batch.events[0].id.len;

    rc = ngx_http_loyalty_enqueue(r, ctx, &batch);

    if (rc != NGX_OK) {
        ngx_http_finalize_request(r, rc);
    }

    /* NGX_OK: the Redis reply finalizes the request */
}


/*
 * The raw body as one contiguous buffer, whether in memory or in the
 * temp file nginx wrote.  File parts are read on a thread pool when the
 * location has "aio threads"; NGX_AGAIN means a read is under way and
 * the body handler runs again when it completes.
 */

static ngx_int_t
ngx_http_loyalty_body(ngx_http_request_t *r, ngx_http_loyalty_ctx_t *ctx,
    loyalty_str_t *body)
{
    off_t                      len;
    size_t                     size;
    ssize_t                    n;
    ngx_buf_t                 *b;
    ngx_chain_t               *cl;
#if (NGX_THREADS)
    ngx_http_core_loc_conf_t  *clcf;
#endif

    if (r->request_body == NULL || r->request_body->bufs == NULL) {
        body->data = (const u_char *) "";
        body->len = 0;
        return NGX_OK;
    }

    cl = r->request_body->bufs;

    if (cl->next == NULL && !cl->buf->in_file) {
        body->data = cl->buf->pos;
        body->len = cl->buf->last - cl->buf->pos;
        return NGX_OK;
    }

    if (ctx->body == NULL) {
        len = 0;

        for ( /* void */ ; cl; cl = cl->next) {
            len += ngx_buf_size(cl->buf);
        }

        ctx->body = ngx_pnalloc(r->pool, (size_t) len + 1);
        if (ctx->body == NULL) {
            return NGX_ERROR;
        }

        ctx->body_pos = ctx->body;
        ctx->body_buf = r->request_body->bufs;
    }

    for (cl = ctx->body_buf; cl; cl = cl->next) {
        b = cl->buf;

        if (!b->in_file) {
            ctx->body_pos = ngx_cpymem(ctx->body_pos, b->pos,
                                       b->last - b->pos);
            continue;
        }

        size = (size_t) (b->file_last - b->file_pos);

#if (NGX_THREADS)
        clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

        if (clcf->aio == NGX_HTTP_AIO_THREADS) {
            b->file->thread_handler = ngx_http_loyalty_thread_handler;
            b->file->thread_ctx = r;

            n = ngx_thread_read(b->file, ctx->body_pos, size, b->file_pos,
                                r->pool);
            if (n == NGX_AGAIN) {
                ctx->body_buf = cl;
                return NGX_AGAIN;
            }

        } else
#endif
        {
            /* warned about at configuration time */
            n = ngx_read_file(b->file, ctx->body_pos, size, b->file_pos);
        }

        if (n == NGX_ERROR || (size_t) n != size) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "loyalty: reading the buffered body failed");
            return NGX_ERROR;
        }

        ctx->body_pos += n;
    }

    ctx->body_buf = NULL;

    body->data = ctx->body;
    body->len = ctx->body_pos - ctx->body;

    return NGX_OK;
}


#if (NGX_THREADS)

static ngx_int_t
ngx_http_loyalty_thread_handler(ngx_thread_task_t *task, ngx_file_t *file)
{
    ngx_str_t                  name;
    ngx_thread_pool_t         *tp;
    ngx_http_request_t        *r;
    ngx_http_core_loc_conf_t  *clcf;

    r = file->thread_ctx;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);
    tp = clcf->thread_pool;

    if (tp == NULL) {
        if (ngx_http_complex_value(r, clcf->thread_pool_value, &name)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        tp = ngx_thread_pool_get((ngx_cycle_t *) ngx_cycle, &name);

        if (tp == NULL) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "thread pool \"%V\" not found", &name);
            return NGX_ERROR;
        }
    }

    task->event.data = r;
    task->event.handler = ngx_http_loyalty_thread_event_handler;

    if (ngx_thread_task_post(tp, task) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the thread writes into request memory: keep the request alive */
    r->main->blocked++;
    r->aio = 1;

    return NGX_OK;
}


static void
ngx_http_loyalty_thread_event_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    r->main->blocked--;
    r->aio = 0;

    ngx_http_loyalty_body_handler(r);
    ngx_http_run_posted_requests(c);
}

#endif


/* a valid incoming X-Request-ID is kept, otherwise nginx's $request_id */

static ngx_int_t
ngx_http_loyalty_correlation(ngx_http_request_t *r,
    ngx_http_loyalty_ctx_t *ctx)
{
    loyalty_str_t                  v;
    loyalty_request_t              req;
    ngx_http_variable_value_t     *vv;
    ngx_http_loyalty_main_conf_t  *lmcf;

    req.data = r;

    if (ngx_http_loyalty_header(&req, "X-Request-ID", &v) == LOYALTY_OK
        && loyalty_corr_valid(v.data, v.len))
    {
        ctx->corr.data = (u_char *) v.data;
        ctx->corr.len = v.len;
        return NGX_OK;
    }

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_loyalty_module);

    vv = ngx_http_get_indexed_variable(r, lmcf->request_id_index);
    if (vv == NULL || vv->not_found) {
        return NGX_ERROR;
    }

    ctx->corr.data = vv->data;
    ctx->corr.len = vv->len;

    return NGX_OK;
}


static int
ngx_http_loyalty_header(const loyalty_request_t *req, const char *name,
    loyalty_str_t *value)
{
    size_t               len;
    ngx_uint_t           i;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r;

    r = req->data;
    len = ngx_strlen(name);

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (h[i].key.len == len
            && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0)
        {
            value->data = h[i].value.data;
            value->len = h[i].value.len;
            return LOYALTY_OK;
        }
    }

    value->data = NULL;
    value->len = 0;

    return LOYALTY_DECLINED;
}


static void *
ngx_http_loyalty_palloc(void *ctx, size_t size)
{
    return ngx_palloc(ctx, size);
}
