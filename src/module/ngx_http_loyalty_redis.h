/*
 * Copyright (C) loyalty-edge authors
 *
 * Per-worker Redis client on nginx's event loop: one persistent
 * connection, commands pipelined on it, reconnect with backoff, a
 * progress timeout.  It knows nothing of HTTP.
 */

#ifndef _NGX_HTTP_LOYALTY_REDIS_H_INCLUDED_
#define _NGX_HTTP_LOYALTY_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>


typedef struct ngx_http_loyalty_redis_cmd_s  ngx_http_loyalty_redis_cmd_t;

/* reply is NULL when the command failed: connection lost, timed out */
typedef void (*ngx_http_loyalty_redis_handler_pt)(
    ngx_http_loyalty_redis_cmd_t *cmd, redisReply *reply);


/* callers embed this in their own per-command state */
struct ngx_http_loyalty_redis_cmd_s {
    ngx_http_loyalty_redis_handler_pt   handler;
};


typedef struct {
    ngx_str_t                  host;          /* numeric, NUL-terminated */
    ngx_int_t                  port;
    ngx_str_t                  unix_path;     /* NUL-terminated */
    ngx_str_t                  password;
    ngx_int_t                  db;
    ngx_msec_t                 timeout;
    ngx_uint_t                 max_pending;
    ngx_str_t                  script;        /* loaded on every connect */
    ngx_str_t                  name;          /* address, for logs */
} ngx_http_loyalty_redis_conf_t;


typedef struct ngx_http_loyalty_redis_s  ngx_http_loyalty_redis_t;


ngx_http_loyalty_redis_t *ngx_http_loyalty_redis_create(
    ngx_http_loyalty_redis_conf_t *conf, ngx_log_t *log);
void ngx_http_loyalty_redis_destroy(ngx_http_loyalty_redis_t *rc);

/*
 * NGX_OK: submitted, the handler runs exactly once later;
 * NGX_DECLINED: not connected; NGX_BUSY: too many commands pending;
 * NGX_ERROR: hiredis refused the command.
 */
ngx_int_t ngx_http_loyalty_redis_submit(ngx_http_loyalty_redis_t *rc,
    ngx_http_loyalty_redis_cmd_t *cmd, int argc, const char **argv,
    const size_t *argvlen);


/* the hiredis <-> nginx event glue (ngx_http_loyalty_redis_adapter.c) */

ngx_int_t ngx_http_loyalty_redis_adapter_attach(redisAsyncContext *ac,
    ngx_log_t *log, ngx_msec_t connect_timeout,
    void (*timeout)(void *data), void *data);
void ngx_http_loyalty_redis_adapter_connected(redisAsyncContext *ac);
void ngx_http_loyalty_redis_adapter_timer(redisAsyncContext *ac,
    ngx_msec_t timer);


#endif /* _NGX_HTTP_LOYALTY_REDIS_H_INCLUDED_ */
