/*
 * Copyright (C) loyalty-edge authors
 *
 * Per-worker Redis client: connect, handshake (AUTH, SELECT, SCRIPT
 * LOAD), submit, progress timeout, reconnect with backoff.
 */


#include "ngx_http_loyalty_redis.h"


#define NGX_HTTP_LOYALTY_REDIS_BACKOFF_MIN   100
#define NGX_HTTP_LOYALTY_REDIS_BACKOFF_MAX   1000


typedef enum {
    NGX_HTTP_LOYALTY_REDIS_DISCONNECTED = 0,
    NGX_HTTP_LOYALTY_REDIS_CONNECTING,
    NGX_HTTP_LOYALTY_REDIS_READY
} ngx_http_loyalty_redis_state_e;


struct ngx_http_loyalty_redis_s {
    ngx_http_loyalty_redis_conf_t   *conf;
    redisAsyncContext               *ac;
    ngx_http_loyalty_redis_state_e   state;
    ngx_uint_t                       pending;
    ngx_msec_t                       backoff;
    ngx_event_t                      reconnect;
    ngx_log_t                       *log;
    unsigned                         exiting:1;
};


static void ngx_http_loyalty_redis_connect(ngx_http_loyalty_redis_t *rc);
static void ngx_http_loyalty_redis_schedule(ngx_http_loyalty_redis_t *rc);
static void ngx_http_loyalty_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_http_loyalty_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_http_loyalty_redis_on_disconnect(
    const redisAsyncContext *ac, int status);
static void ngx_http_loyalty_redis_handshake(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_loyalty_redis_ready(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_loyalty_redis_reply(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_loyalty_redis_timeout(void *data);
static void ngx_http_loyalty_redis_lost(ngx_http_loyalty_redis_t *rc);


ngx_http_loyalty_redis_t *
ngx_http_loyalty_redis_create(ngx_http_loyalty_redis_conf_t *conf,
    ngx_log_t *log)
{
    ngx_http_loyalty_redis_t  *rc;

    rc = ngx_calloc(sizeof(ngx_http_loyalty_redis_t), log);
    if (rc == NULL) {
        return NULL;
    }

    rc->conf = conf;
    rc->log = log;
    rc->backoff = NGX_HTTP_LOYALTY_REDIS_BACKOFF_MIN;

    rc->reconnect.handler = ngx_http_loyalty_redis_reconnect_handler;
    rc->reconnect.data = rc;
    rc->reconnect.log = log;
    rc->reconnect.cancelable = 1;      /* never holds a quitting worker */

    ngx_http_loyalty_redis_connect(rc);

    return rc;
}


void
ngx_http_loyalty_redis_destroy(ngx_http_loyalty_redis_t *rc)
{
    redisAsyncContext  *ac;

    rc->exiting = 1;

    if (rc->reconnect.timer_set) {
        ngx_del_timer(&rc->reconnect);
    }

    ac = rc->ac;

    if (ac != NULL) {
        rc->ac = NULL;
        rc->state = NGX_HTTP_LOYALTY_REDIS_DISCONNECTED;

        /* pending callbacks run with no reply, the fd's slot is freed */
        redisAsyncFree(ac);
    }

    ngx_free(rc);
}


ngx_int_t
ngx_http_loyalty_redis_submit(ngx_http_loyalty_redis_t *rc,
    ngx_http_loyalty_redis_cmd_t *cmd, int argc, const char **argv,
    const size_t *argvlen)
{
    /*
     * while connecting, hiredis queues the command behind the handshake:
     * a fresh worker (start, reload) does not refuse its first requests
     */
    if (rc->state == NGX_HTTP_LOYALTY_REDIS_DISCONNECTED) {
        return NGX_DECLINED;
    }

    if (rc->pending >= rc->conf->max_pending) {
        return NGX_BUSY;
    }

    /* binary safe: no request byte is ever a format string */
    if (redisAsyncCommandArgv(rc->ac, ngx_http_loyalty_redis_reply, cmd,
                              argc, argv, argvlen)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    if (rc->pending++ == 0) {
        ngx_http_loyalty_redis_adapter_timer(rc->ac, rc->conf->timeout);
    }

    return NGX_OK;
}


static void
ngx_http_loyalty_redis_connect(ngx_http_loyalty_redis_t *rc)
{
    size_t                          len[2];
    const char                     *argv[2];
    redisAsyncContext              *ac;
    ngx_http_loyalty_redis_conf_t  *conf;

    conf = rc->conf;

    if (conf->unix_path.len) {
        ac = redisAsyncConnectUnix((const char *) conf->unix_path.data);

    } else {
        /* a numeric address: hiredis does not reach for DNS */
        ac = redisAsyncConnect((const char *) conf->host.data,
                               (int) conf->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "loyalty redis: out of memory connecting to \"%V\"",
                      &conf->name);
        ngx_http_loyalty_redis_schedule(rc);
        return;
    }

    if (ac->err) {
        ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                      "loyalty redis: connect to \"%V\" failed: %s",
                      &conf->name, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_loyalty_redis_schedule(rc);
        return;
    }

    /* hooks first: setting the connect callback adds the write event */
    if (ngx_http_loyalty_redis_adapter_attach(ac, rc->log, conf->timeout,
                                              ngx_http_loyalty_redis_timeout,
                                              rc)
        != NGX_OK)
    {
        redisAsyncFree(ac);
        ngx_http_loyalty_redis_schedule(rc);
        return;
    }

    ac->data = rc;
    rc->ac = ac;
    rc->state = NGX_HTTP_LOYALTY_REDIS_CONNECTING;

    redisAsyncSetConnectCallback(ac, ngx_http_loyalty_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_http_loyalty_redis_on_disconnect);

    /* hiredis buffers the handshake until the socket is connected */
    if (conf->password.len) {
        argv[0] = "AUTH";
        len[0] = 4;
        argv[1] = (const char *) conf->password.data;
        len[1] = conf->password.len;

        (void) redisAsyncCommandArgv(ac, ngx_http_loyalty_redis_handshake,
                                     (void *) "AUTH", 2, argv, len);
    }

    if (conf->db) {
        (void) redisAsyncCommand(ac, ngx_http_loyalty_redis_handshake,
                                 (void *) "SELECT", "SELECT %d",
                                 (int) conf->db);
    }

    if (conf->script.len) {
        (void) redisAsyncCommand(ac, ngx_http_loyalty_redis_ready, NULL,
                                 "SCRIPT LOAD %b", conf->script.data,
                                 conf->script.len);
    } else {
        (void) redisAsyncCommand(ac, ngx_http_loyalty_redis_ready, NULL,
                                 "PING");
    }
}


static void
ngx_http_loyalty_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_http_loyalty_redis_t  *rc = ac->data;

    if (status == REDIS_OK) {
        ngx_http_loyalty_redis_adapter_connected((redisAsyncContext *) ac);

        /* the handshake's replies are owed from now on */
        ngx_http_loyalty_redis_adapter_timer((redisAsyncContext *) ac,
                                             rc->conf->timeout);
        return;
    }

    /* hiredis frees the context when we return; no disconnect follows */
    ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                  "loyalty redis: connect to \"%V\" failed: %s",
                  &rc->conf->name, ac->errstr);

    if (rc->ac == ac) {
        ngx_http_loyalty_redis_lost(rc);
    }
}


static void
ngx_http_loyalty_redis_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_http_loyalty_redis_t  *rc = ac->data;

    if (rc->ac != ac) {
        return;                       /* we dropped it ourselves */
    }

    if (!rc->exiting) {
        ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                      "loyalty redis: connection to \"%V\" lost: %s",
                      &rc->conf->name,
                      status == REDIS_OK ? "closed" : ac->errstr);
    }

    ngx_http_loyalty_redis_lost(rc);
}


static void
ngx_http_loyalty_redis_handshake(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                *reply = r;
    ngx_http_loyalty_redis_t  *rc = ac->data;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                  "loyalty redis: %s on \"%V\" failed: %*s",
                  (char *) privdata, &rc->conf->name,
                  (size_t) reply->len, reply->str);

    /* the disconnect callback schedules the next attempt */
    redisAsyncDisconnect(ac);
}


static void
ngx_http_loyalty_redis_ready(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                *reply = r;
    ngx_http_loyalty_redis_t  *rc = ac->data;

    if (reply == NULL || rc->ac != ac) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, rc->log, 0,
                      "loyalty redis: handshake with \"%V\" failed: %*s",
                      &rc->conf->name, (size_t) reply->len, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }

    if (rc->state == NGX_HTTP_LOYALTY_REDIS_CONNECTING) {
        ngx_log_error(NGX_LOG_INFO, rc->log, 0,
                      "loyalty redis: connected to \"%V\"", &rc->conf->name);
    }

    rc->state = NGX_HTTP_LOYALTY_REDIS_READY;
    rc->backoff = NGX_HTTP_LOYALTY_REDIS_BACKOFF_MIN;

    ngx_http_loyalty_redis_adapter_timer(ac, rc->pending
                                             ? rc->conf->timeout : 0);
}


static void
ngx_http_loyalty_redis_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_loyalty_redis_t      *rc = ac->data;
    ngx_http_loyalty_redis_cmd_t  *cmd = privdata;

    rc->pending--;

    /* progress made: the timer now bounds the wait for the next reply */
    if (r != NULL && rc->ac == ac) {
        ngx_http_loyalty_redis_adapter_timer(ac, rc->pending
                                                 ? rc->conf->timeout : 0);
    }

    cmd->handler(cmd, r);
}


static void
ngx_http_loyalty_redis_timeout(void *data)
{
    ngx_http_loyalty_redis_t  *rc = data;

    redisAsyncContext  *ac;

    ac = rc->ac;

    ngx_log_error(NGX_LOG_WARN, rc->log, 0,
                  "loyalty redis: \"%V\" timed out %s, reconnecting",
                  &rc->conf->name,
                  rc->state == NGX_HTTP_LOYALTY_REDIS_READY
                  ? "waiting for replies" : "connecting");

    ngx_http_loyalty_redis_lost(rc);

    /* every pending command now gets its NULL reply */
    redisAsyncFree(ac);
}


/* the context is going away: forget it and plan the next attempt */

static void
ngx_http_loyalty_redis_lost(ngx_http_loyalty_redis_t *rc)
{
    rc->ac = NULL;
    rc->state = NGX_HTTP_LOYALTY_REDIS_DISCONNECTED;

    ngx_http_loyalty_redis_schedule(rc);
}


static void
ngx_http_loyalty_redis_schedule(ngx_http_loyalty_redis_t *rc)
{
    ngx_msec_t  delay;

    if (rc->exiting || rc->reconnect.timer_set) {
        return;
    }

    /* jitter keeps many workers from reconnecting in lockstep */
    delay = rc->backoff / 2 + (ngx_msec_t) ngx_random() % (rc->backoff / 2 + 1);

    ngx_add_timer(&rc->reconnect, delay);

    rc->backoff *= 2;
    if (rc->backoff > NGX_HTTP_LOYALTY_REDIS_BACKOFF_MAX) {
        rc->backoff = NGX_HTTP_LOYALTY_REDIS_BACKOFF_MAX;
    }
}


static void
ngx_http_loyalty_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_loyalty_redis_t  *rc = ev->data;

    if (rc->exiting || rc->ac != NULL) {
        return;
    }

    ngx_http_loyalty_redis_connect(rc);
}
