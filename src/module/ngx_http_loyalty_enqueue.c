/*
 * Copyright (C) loyalty-edge authors
 *
 * One Redis round trip per delivery: a Lua script does the dedupe, the
 * backpressure check and the append atomically.  The request waits for
 * the reply; the op outlives the request if the client goes away.
 */


#include "ngx_http_loyalty_module.h"

#include <openssl/evp.h>


typedef struct {
    ngx_http_loyalty_redis_cmd_t   cmd;         /* first: the client's */
    ngx_http_request_t            *request;     /* NULL once it is gone */
    ngx_pool_cleanup_t            *cleanup;
    int                            argc;
    const char                   **argv;
    size_t                        *argvlen;
    unsigned                       eval:1;
} ngx_http_loyalty_op_t;


static ngx_int_t ngx_http_loyalty_submit(ngx_http_request_t *r,
    ngx_http_loyalty_op_t *op);
static void ngx_http_loyalty_reply(ngx_http_loyalty_redis_cmd_t *cmd,
    redisReply *reply);
static ngx_http_loyalty_result_e ngx_http_loyalty_outcome(
    ngx_http_request_t *r, ngx_http_loyalty_ctx_t *ctx, redisReply *reply);
static void ngx_http_loyalty_op_cancel(void *data);


/*
 * KEYS[1] stream, KEYS[2] dedupe key; ARGV[1] window (s), ARGV[2] cap,
 * ARGV[3..] field/value pairs.  Never XADD MAXLEN: trimming drops
 * entries no consumer has finished, so a full stream refuses instead,
 * and a refused event leaves no dedupe key behind.
 */
ngx_str_t  ngx_http_loyalty_enqueue_script = ngx_string(
    "if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[2]) then\n"
    "  if redis.call('EXISTS', KEYS[2]) == 1 then return {'dup'} end\n"
    "  return {'full'}\n"
    "end\n"
    "if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then\n"
    "  return {'dup'}\n"
    "end\n"
    "return {'ok', redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))}\n"
);


/* SHA-1 of the script above, checked against SCRIPT LOAD's answer */
static u_char  ngx_http_loyalty_script_sha[41];


ngx_int_t
ngx_http_loyalty_enqueue(ngx_http_request_t *r, ngx_http_loyalty_ctx_t *ctx,
    loyalty_batch_t *batch)
{
    int                           i, argc;
    u_char                       *p;
    size_t                       *argvlen;
    ngx_int_t                     rc;
    const char                  **argv;
    loyalty_str_t                 fields[2 * LOYALTY_ENVELOPE_FIELDS];
    loyalty_event_t              *ev;
    ngx_pool_cleanup_t           *cln;
    ngx_http_loyalty_op_t        *op;
    ngx_http_loyalty_loc_conf_t  *llcf;

    static const char  seen[] = "}:seen:";

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loyalty_module);

    /* one event per delivery so far; batch senders extend the script */
    ev = &batch->events[0];

    argc = 7 + (int) loyalty_envelope_encode(ev, fields);

    argv = ngx_palloc(r->pool, argc * sizeof(char *));
    argvlen = ngx_palloc(r->pool, argc * sizeof(size_t));
    p = ngx_pnalloc(r->pool, sizeof("loyalty:{") - 1 + ctx->store.len
                             + sizeof(seen) - 1 + ev->id.len
                             + 2 * NGX_INT_T_LEN);
    if (argv == NULL || argvlen == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "EVALSHA";
    argvlen[0] = sizeof("EVALSHA") - 1;
    argv[1] = (const char *) ngx_http_loyalty_script_sha;
    argvlen[1] = 40;
    argv[2] = "2";
    argvlen[2] = 1;
    argv[3] = (const char *) ctx->stream_key.data;
    argvlen[3] = ctx->stream_key.len;

    argv[4] = (const char *) p;
    p = ngx_sprintf(p, "loyalty:{%V%s", &ctx->store, seen);
    p = ngx_cpymem(p, ev->id.data, ev->id.len);
    argvlen[4] = p - (u_char *) argv[4];

    argv[5] = (const char *) p;
    p = ngx_sprintf(p, "%T", llcf->dedupe_window);
    argvlen[5] = p - (u_char *) argv[5];

    argv[6] = (const char *) p;
    p = ngx_sprintf(p, "%ui", llcf->stream_cap);
    argvlen[6] = p - (u_char *) argv[6];

    for (i = 7; i < argc; i++) {
        argv[i] = (const char *) fields[i - 7].data;
        argvlen[i] = fields[i - 7].len;
    }

    op = ngx_alloc(sizeof(ngx_http_loyalty_op_t), r->connection->log);
    if (op == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        ngx_free(op);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    op->cmd.handler = ngx_http_loyalty_reply;
    op->request = r;
    op->cleanup = cln;
    op->argc = argc;
    op->argv = argv;
    op->argvlen = argvlen;
    op->eval = 0;

    cln->handler = ngx_http_loyalty_op_cancel;
    cln->data = op;

    rc = ngx_http_loyalty_submit(r, op);

    if (rc != NGX_OK) {
        cln->handler = NULL;
        ngx_free(op);
        ngx_http_loyalty_finish(r, ctx, NGX_HTTP_LOYALTY_UNAVAILABLE,
                                rc == NGX_BUSY ? "too many events in flight"
                                               : "event store unavailable");
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loyalty_submit(ngx_http_request_t *r, ngx_http_loyalty_op_t *op)
{
    ngx_http_loyalty_main_conf_t  *lmcf;

    lmcf = ngx_http_get_module_main_conf(r, ngx_http_loyalty_module);

    if (lmcf->client == NULL) {
        /*
         * a cycle built by a reload in single-process mode never ran
         * init_process: connect now, answer 503 until ready
         */
        if (ngx_process == NGX_PROCESS_SINGLE) {
            lmcf->client = ngx_http_loyalty_redis_create(&lmcf->redis,
                                                         ngx_cycle->log);
        }

        return NGX_DECLINED;
    }

    return ngx_http_loyalty_redis_submit(lmcf->client, &op->cmd, op->argc,
                                         op->argv, op->argvlen);
}


static void
ngx_http_loyalty_reply(ngx_http_loyalty_redis_cmd_t *cmd, redisReply *reply)
{
    ngx_http_loyalty_op_t *op = (ngx_http_loyalty_op_t *) cmd;

    ngx_connection_t           *c;
    ngx_http_request_t         *r;
    ngx_http_loyalty_ctx_t     *ctx;
    ngx_http_loyalty_result_e   result;

    r = op->request;

    if (r == NULL) {
        /* the client is gone; if the event landed, a retry is deduped */
        ngx_free(op);
        return;
    }

    c = r->connection;
    ctx = ngx_http_get_module_ctx(r, ngx_http_loyalty_module);

    /* Redis lost its script cache (restart, SCRIPT FLUSH): send it whole */
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && !op->eval
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        op->eval = 1;
        op->argv[0] = "EVAL";
        op->argvlen[0] = sizeof("EVAL") - 1;
        op->argv[1] = (const char *) ngx_http_loyalty_enqueue_script.data;
        op->argvlen[1] = ngx_http_loyalty_enqueue_script.len;

        if (ngx_http_loyalty_submit(r, op) == NGX_OK) {
            return;
        }

        reply = NULL;
    }

    op->cleanup->handler = NULL;
    ngx_free(op);

    ngx_http_set_log_request(c->log, r);

    result = ngx_http_loyalty_outcome(r, ctx, reply);

    ngx_http_loyalty_finish(r, ctx, result, NULL);

    /* we run on the Redis connection's event: nobody else will */
    ngx_http_run_posted_requests(c);
}


static ngx_http_loyalty_result_e
ngx_http_loyalty_outcome(ngx_http_request_t *r, ngx_http_loyalty_ctx_t *ctx,
    redisReply *reply)
{
    redisReply  *status;

    if (reply == NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "loyalty: redis did not take the event, corr=%V",
                      &ctx->corr);
        return NGX_HTTP_LOYALTY_UNAVAILABLE;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "loyalty: redis error: %*s, corr=%V",
                      (size_t) reply->len, reply->str, &ctx->corr);
        return NGX_HTTP_LOYALTY_UNAVAILABLE;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "loyalty: unexpected redis reply type %d, corr=%V",
                      reply->type, &ctx->corr);
        return NGX_HTTP_LOYALTY_UNAVAILABLE;
    }

    status = reply->element[0];

    if (status->len == 2 && ngx_strncmp(status->str, "ok", 2) == 0) {
        return NGX_HTTP_LOYALTY_ACCEPTED;
    }

    if (status->len == 3 && ngx_strncmp(status->str, "dup", 3) == 0) {
        return NGX_HTTP_LOYALTY_DUPLICATE;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "loyalty: stream \"%V\" is at its cap, corr=%V",
                  &ctx->stream_key, &ctx->corr);

    return NGX_HTTP_LOYALTY_BACKPRESSURE;
}


static void
ngx_http_loyalty_op_cancel(void *data)
{
    ngx_http_loyalty_op_t  *op = data;

    op->request = NULL;
}



/* the script's SHA-1 for EVALSHA, once per configuration */

ngx_int_t
ngx_http_loyalty_enqueue_init(ngx_conf_t *cf)
{
    u_char        md[EVP_MAX_MD_SIZE];
    unsigned int  len;

    if (EVP_Digest(ngx_http_loyalty_enqueue_script.data,
                   ngx_http_loyalty_enqueue_script.len, md, &len,
                   EVP_sha1(), NULL)
        != 1 || len != 20)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "loyalty: SHA-1 of the enqueue script failed");
        return NGX_ERROR;
    }

    *ngx_hex_dump(ngx_http_loyalty_script_sha, md, len) = '\0';

    return NGX_OK;
}
