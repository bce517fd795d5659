/*
 * Copyright (C) loyalty-edge authors
 */

#ifndef _NGX_HTTP_LOYALTY_MODULE_H_INCLUDED_
#define _NGX_HTTP_LOYALTY_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "loyalty_provider.h"
#include "ngx_http_loyalty_redis.h"


#define NGX_HTTP_LOYALTY_DEDUPE_WINDOW   (96 * 3600)
#define NGX_HTTP_LOYALTY_STREAM_CAP      1000000
#define NGX_HTTP_LOYALTY_RETRY_AFTER     5
#define NGX_HTTP_LOYALTY_REDIS_TIMEOUT   1000
#define NGX_HTTP_LOYALTY_MAX_PENDING     10000


typedef struct {
    ngx_http_loyalty_redis_conf_t    redis;
    ngx_flag_t                       redis_set;
    ngx_flag_t                       enabled;      /* a location uses us */
    ngx_int_t                        request_id_index;
    ngx_http_loyalty_redis_t        *client;       /* per worker process */
} ngx_http_loyalty_main_conf_t;


typedef struct {
    loyalty_provider_conf_t          pc;
    ngx_array_t                     *secrets;      /* of ngx_str_t */
    ngx_http_complex_value_t        *store;
    time_t                           dedupe_window;
    ngx_uint_t                       stream_cap;
    ngx_flag_t                       keep_raw;
    time_t                           tolerance;
    time_t                           retry_after;
    ngx_uint_t                       algorithm;
    ngx_uint_t                       encoding;
    ngx_str_t                        signature_header;
    ngx_str_t                        id_header;
    ngx_str_t                        default_country;
    ngx_array_t                     *orgs;         /* of ngx_str_t */
} ngx_http_loyalty_loc_conf_t;


typedef struct {
    ngx_str_t                        corr;
    ngx_str_t                        event_id;
    ngx_str_t                        result;
    ngx_str_t                        store;
    ngx_str_t                        stream_key;
    ngx_uint_t                       nevents;
    ngx_uint_t                       accepted;     /* of nevents */
    u_char                          *body;        /* assembled copy */
    u_char                          *body_pos;
    ngx_chain_t                     *body_buf;    /* next part to copy */
} ngx_http_loyalty_ctx_t;


/* every answer the handler gives; see ngx_http_loyalty_response.c */
typedef enum {
    NGX_HTTP_LOYALTY_ACCEPTED = 0,
    NGX_HTTP_LOYALTY_DUPLICATE,
    NGX_HTTP_LOYALTY_IGNORED,
    NGX_HTTP_LOYALTY_BAD_SIGNATURE,
    NGX_HTTP_LOYALTY_BAD_JSON,
    NGX_HTTP_LOYALTY_BAD_STORE,
    NGX_HTTP_LOYALTY_BAD_REQUEST,
    NGX_HTTP_LOYALTY_BAD_METHOD,
    NGX_HTTP_LOYALTY_UNAVAILABLE,
    NGX_HTTP_LOYALTY_BACKPRESSURE,
    NGX_HTTP_LOYALTY_INTERNAL
} ngx_http_loyalty_result_e;


extern ngx_module_t  ngx_http_loyalty_module;


char *ngx_http_loyalty_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_loyalty_webhook_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_loyalty_secret_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_loyalty_secret_file_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_loyalty_org_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_loyalty_make_keys(ngx_conf_t *cf,
    ngx_http_loyalty_loc_conf_t *llcf);

ngx_int_t ngx_http_loyalty_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_loyalty_enqueue(ngx_http_request_t *r,
    ngx_http_loyalty_ctx_t *ctx, loyalty_batch_t *batch);
ngx_int_t ngx_http_loyalty_enqueue_init(ngx_conf_t *cf);
extern ngx_str_t  ngx_http_loyalty_enqueue_script;

ngx_int_t ngx_http_loyalty_respond(ngx_http_request_t *r,
    ngx_http_loyalty_ctx_t *ctx, ngx_http_loyalty_result_e result,
    const char *message);
void ngx_http_loyalty_finish(ngx_http_request_t *r,
    ngx_http_loyalty_ctx_t *ctx, ngx_http_loyalty_result_e result,
    const char *message);

ngx_int_t ngx_http_loyalty_add_variables(ngx_conf_t *cf);


#endif /* _NGX_HTTP_LOYALTY_MODULE_H_INCLUDED_ */
