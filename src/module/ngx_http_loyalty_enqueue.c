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
 * One round trip for every event of a delivery (Salesforce sends up to
 * 100).  KEYS[1] stream, KEYS[2] the store's stats hash, then each
 * event's dedupe keys (its id, and a second key when the sender has
 * one).  ARGV[1] window (s), ARGV[2] cap, ARGV[3] number of events, then
 * per event: its number of keys, the stats field to count it under ("" for
 * none), its number of envelope strings, and those strings.
 *
 * Never XADD MAXLEN: trimming drops entries no consumer has finished, so
 * a full stream refuses instead, and a refused event leaves no dedupe key
 * behind.  The reply is one status per event: ok, dup or full.
 */
ngx_str_t  ngx_http_loyalty_enqueue_script = ngx_string(
    "local free = tonumber(ARGV[2]) - redis.call('XLEN', KEYS[1])\n"
    "local out, a, k = {}, 4, 3\n"
    "for i = 1, tonumber(ARGV[3]) do\n"
    "  local nk, stat, nf = tonumber(ARGV[a]), ARGV[a + 1], "
    "tonumber(ARGV[a + 2])\n"
    "  local new\n"
    "  if nk == 1 and free > 0 then\n"
    "    new = redis.call('SET', KEYS[k], '1', 'NX', 'EX', ARGV[1])\n"
    "  else\n"
    "    new = true\n"
    "    for j = k, k + nk - 1 do\n"
    "      if redis.call('EXISTS', KEYS[j]) == 1 then new = false end\n"
    "    end\n"
    "    if new and free > 0 then\n"
    "      for j = k, k + nk - 1 do\n"
    "        redis.call('SET', KEYS[j], '1', 'EX', ARGV[1])\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  if not new then\n"
    "    out[i] = 'dup'\n"
    "  elseif free <= 0 then\n"
    "    out[i] = 'full'\n"
    "  else\n"
    "    redis.call('XADD', KEYS[1], '*', unpack(ARGV, a + 3, a + 2 + nf))\n"
    "    if stat ~= '' then redis.call('HINCRBY', KEYS[2], stat, 1) end\n"
    "    free = free - 1\n"
    "    out[i] = 'ok'\n"
    "  end\n"
    "  a, k = a + 3 + nf, k + nk\n"
    "end\n"
    "return out\n"
);


/* SHA-1 of the script above, checked against SCRIPT LOAD's answer */
static u_char  ngx_http_loyalty_script_sha[41];


ngx_int_t
ngx_http_loyalty_enqueue(ngx_http_request_t *r, ngx_http_loyalty_ctx_t *ctx,
    loyalty_batch_t *batch)
{
    int                           argc, nkeys, nf, *nfields;
    u_char                       *p;
    size_t                       *argvlen, len, i, j;
    ngx_int_t                     rc;
    const char                  **argv;
    loyalty_str_t                *fields;
    loyalty_event_t              *ev;
    ngx_pool_cleanup_t           *cln;
    ngx_http_loyalty_op_t        *op;
    ngx_http_loyalty_loc_conf_t  *llcf;

    static const char  seen[] = "}:seen:";
    static const char  stats[] = "}:stats";
    static const char  unknown[] = "unknown:";

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_loyalty_module);

    fields = ngx_palloc(r->pool, batch->nevents * 2
                                 * LOYALTY_ENVELOPE_FIELDS
                                 * sizeof(loyalty_str_t));
    nfields = ngx_palloc(r->pool, batch->nevents * sizeof(int));
    if (fields == NULL || nfields == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* sizes first: keys and numbers go into one buffer */
    argc = 8;
    nkeys = 2;
    len = sizeof("loyalty:{") - 1 + ctx->store.len + sizeof(stats) - 1
          + 4 * NGX_INT_T_LEN;

    for (i = 0; i < batch->nevents; i++) {
        ev = &batch->events[i];

        nf = (int) loyalty_envelope_encode(ev,
                                           &fields[i * 2
                                                   * LOYALTY_ENVELOPE_FIELDS]);
        nfields[i] = nf;
        argc += 3 + nf + 1 + (ev->alt_id.len ? 1 : 0);
        nkeys += 1 + (ev->alt_id.len ? 1 : 0);

        len += 2 * (sizeof("loyalty:{") - 1 + ctx->store.len
                    + sizeof(seen) - 1)
               + ev->id.len + ev->alt_id.len + 2 * NGX_INT_T_LEN
               + sizeof(unknown) - 1 + ev->src.len;
    }

    argv = ngx_palloc(r->pool, argc * sizeof(char *));
    argvlen = ngx_palloc(r->pool, argc * sizeof(size_t));
    p = ngx_pnalloc(r->pool, len);
    if (argv == NULL || argvlen == NULL || p == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    argv[0] = "EVALSHA";
    argvlen[0] = sizeof("EVALSHA") - 1;
    argv[1] = (const char *) ngx_http_loyalty_script_sha;
    argvlen[1] = 40;

    argv[2] = (const char *) p;
    p = ngx_sprintf(p, "%d", nkeys);
    argvlen[2] = p - (u_char *) argv[2];

    argv[3] = (const char *) ctx->stream_key.data;
    argvlen[3] = ctx->stream_key.len;

    argv[4] = (const char *) p;
    p = ngx_sprintf(p, "loyalty:{%V%s", &ctx->store, stats);
    argvlen[4] = p - (u_char *) argv[4];

    /* the events' keys follow KEYS[2]; their arguments follow the keys */
    argc = 5;

    for (i = 0; i < batch->nevents; i++) {
        ev = &batch->events[i];

        argv[argc] = (const char *) p;
        p = ngx_sprintf(p, "loyalty:{%V%s", &ctx->store, seen);
        p = ngx_cpymem(p, ev->id.data, ev->id.len);
        argvlen[argc] = p - (u_char *) argv[argc];
        argc++;

        if (ev->alt_id.len) {
            argv[argc] = (const char *) p;
            p = ngx_sprintf(p, "loyalty:{%V%s", &ctx->store, seen);
            p = ngx_cpymem(p, ev->alt_id.data, ev->alt_id.len);
            argvlen[argc] = p - (u_char *) argv[argc];
            argc++;
        }
    }

    argv[argc] = (const char *) p;
    p = ngx_sprintf(p, "%T", llcf->dedupe_window);
    argvlen[argc] = p - (u_char *) argv[argc];
    argc++;

    argv[argc] = (const char *) p;
    p = ngx_sprintf(p, "%ui", llcf->stream_cap);
    argvlen[argc] = p - (u_char *) argv[argc];
    argc++;

    argv[argc] = (const char *) p;
    p = ngx_sprintf(p, "%uz", batch->nevents);
    argvlen[argc] = p - (u_char *) argv[argc];
    argc++;

    for (i = 0; i < batch->nevents; i++) {
        ev = &batch->events[i];

        argv[argc] = ev->alt_id.len ? "2" : "1";
        argvlen[argc] = 1;
        argc++;

        /* unknown topics are queued, and counted so nobody misses them */
        argv[argc] = (const char *) p;
        if (ev->type.len == sizeof("unknown") - 1
            && ngx_strncmp(ev->type.data, "unknown", ev->type.len) == 0)
        {
            p = ngx_cpymem(p, unknown, sizeof(unknown) - 1);
            p = ngx_cpymem(p, ev->src.data, ev->src.len);
        }
        argvlen[argc] = p - (u_char *) argv[argc];
        argc++;

        nf = nfields[i];

        argv[argc] = (const char *) p;
        p = ngx_sprintf(p, "%d", nf);
        argvlen[argc] = p - (u_char *) argv[argc];
        argc++;

        for (j = 0; j < (size_t) nf; j++) {
            argv[argc] = (const char *)
                         fields[i * 2 * LOYALTY_ENVELOPE_FIELDS + j].data;
            argvlen[argc] = fields[i * 2 * LOYALTY_ENVELOPE_FIELDS + j].len;
            argc++;
        }
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

    ctx->nevents = batch->nevents;

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
    size_t       i;
    ngx_uint_t   dup, full;
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

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "loyalty: unexpected redis reply type %d, corr=%V",
                      reply->type, &ctx->corr);
        return NGX_HTTP_LOYALTY_UNAVAILABLE;
    }

    full = 0;
    dup = 0;
    ctx->accepted = 0;

    for (i = 0; i < reply->elements; i++) {
        status = reply->element[i];

        if (status->type != REDIS_REPLY_STRING) {
            continue;
        }

        if (status->len == 2 && ngx_strncmp(status->str, "ok", 2) == 0) {
            ctx->accepted++;

        } else if (status->len == 3
                   && ngx_strncmp(status->str, "dup", 3) == 0)
        {
            dup++;

        } else {
            full++;
        }
    }

    if (ctx->accepted + dup + full != ctx->nevents) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "loyalty: redis answered %uz statuses for %ui "
                      "events, corr=%V", reply->elements, ctx->nevents,
                      &ctx->corr);
        return NGX_HTTP_LOYALTY_UNAVAILABLE;
    }

    /*
     * Any event refused: the sender must retry the delivery; the events
     * that did land are deduped then.
     */
    if (full) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "loyalty: stream \"%V\" is at its cap, %ui of %ui "
                      "events refused, corr=%V", &ctx->stream_key, full,
                      ctx->nevents, &ctx->corr);
        return NGX_HTTP_LOYALTY_BACKPRESSURE;
    }

    return ctx->accepted ? NGX_HTTP_LOYALTY_ACCEPTED
                         : NGX_HTTP_LOYALTY_DUPLICATE;
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
