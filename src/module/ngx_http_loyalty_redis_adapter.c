/*
 * Copyright (C) loyalty-edge authors
 *
 * hiredis' async context driven by nginx events.  hiredis owns the
 * socket and closes it; we borrow a connection slot for the fd so the
 * event module can watch it.  Level-triggered, because hiredis reads at
 * most 16 KB per call and an edge-triggered fd would stall with a
 * larger burst of pipelined replies waiting in the kernel.
 */


#include "ngx_http_loyalty_redis.h"


#define NGX_HTTP_LOYALTY_REDIS_EVENT  NGX_LEVEL_EVENT


typedef struct {
    redisAsyncContext      *ac;
    ngx_connection_t       *connection;
    void                  (*timeout)(void *data);
    void                   *data;
    unsigned                entered:1;     /* inside redisAsyncHandle*() */
    unsigned                deleted:1;     /* cleanup ran meanwhile */
} ngx_http_loyalty_redis_adapter_t;


static void ngx_http_loyalty_redis_read_handler(ngx_event_t *rev);
static void ngx_http_loyalty_redis_write_handler(ngx_event_t *wev);
static void ngx_http_loyalty_redis_add_read(void *privdata);
static void ngx_http_loyalty_redis_del_read(void *privdata);
static void ngx_http_loyalty_redis_add_write(void *privdata);
static void ngx_http_loyalty_redis_del_write(void *privdata);
static void ngx_http_loyalty_redis_cleanup(void *privdata);
static void ngx_http_loyalty_redis_add(ngx_event_t *ev, ngx_int_t event);
static void ngx_http_loyalty_redis_del(ngx_event_t *ev, ngx_int_t event);


ngx_int_t
ngx_http_loyalty_redis_adapter_attach(redisAsyncContext *ac, ngx_log_t *log,
    ngx_msec_t connect_timeout, void (*timeout)(void *data), void *data)
{
    ngx_connection_t                  *c;
    ngx_http_loyalty_redis_adapter_t  *a;

    a = ngx_calloc(sizeof(ngx_http_loyalty_redis_adapter_t), log);
    if (a == NULL) {
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, log);
    if (c == NULL) {
        ngx_free(a);
        return NGX_ERROR;
    }

    /* ngx_get_connection() zeroes the events: fill in what it leaves */
    c->log = log;
    c->read->log = log;
    c->write->log = log;
    c->read->handler = ngx_http_loyalty_redis_read_handler;
    c->write->handler = ngx_http_loyalty_redis_write_handler;
    c->data = a;
    c->number = ngx_atomic_fetch_add(ngx_connection_counter, 1);

    a->ac = ac;
    a->connection = c;
    a->timeout = timeout;
    a->data = data;

    ac->ev.data = a;
    ac->ev.addRead = ngx_http_loyalty_redis_add_read;
    ac->ev.delRead = ngx_http_loyalty_redis_del_read;
    ac->ev.addWrite = ngx_http_loyalty_redis_add_write;
    ac->ev.delWrite = ngx_http_loyalty_redis_del_write;
    ac->ev.cleanup = ngx_http_loyalty_redis_cleanup;

    /* the connect is complete when the socket becomes writable */
    ngx_add_timer(c->write, connect_timeout);

    return NGX_OK;
}


void
ngx_http_loyalty_redis_adapter_connected(redisAsyncContext *ac)
{
    ngx_http_loyalty_redis_adapter_t  *a = ac->ev.data;

    if (a != NULL && a->connection->write->timer_set) {
        ngx_del_timer(a->connection->write);
    }
}


/* the progress timer: armed while replies are owed, 0 removes it */

void
ngx_http_loyalty_redis_adapter_timer(redisAsyncContext *ac, ngx_msec_t timer)
{
    ngx_event_t                       *rev;
    ngx_http_loyalty_redis_adapter_t  *a = ac->ev.data;

    if (a == NULL) {
        return;
    }

    rev = a->connection->read;

    if (timer) {
        ngx_add_timer(rev, timer);

    } else if (rev->timer_set) {
        ngx_del_timer(rev);
    }
}


static void
ngx_http_loyalty_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t                  *c;
    ngx_http_loyalty_redis_adapter_t  *a;

    c = rev->data;
    a = c->data;

    if (rev->timedout) {
        rev->timedout = 0;
        a->timeout(a->data);         /* frees the context and us */
        return;
    }

    a->entered = 1;

    /* may run reply callbacks, which may free the context */
    redisAsyncHandleRead(a->ac);

    if (a->deleted) {
        ngx_free(a);
        return;
    }

    a->entered = 0;
}


static void
ngx_http_loyalty_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t                  *c;
    ngx_http_loyalty_redis_adapter_t  *a;

    c = wev->data;
    a = c->data;

    if (wev->timedout) {
        wev->timedout = 0;
        a->timeout(a->data);         /* connect timed out */
        return;
    }

    a->entered = 1;

    redisAsyncHandleWrite(a->ac);

    if (a->deleted) {
        ngx_free(a);
        return;
    }

    a->entered = 0;
}


static void
ngx_http_loyalty_redis_add_read(void *privdata)
{
    ngx_http_loyalty_redis_adapter_t  *a = privdata;

    ngx_http_loyalty_redis_add(a->connection->read, NGX_READ_EVENT);
}


static void
ngx_http_loyalty_redis_del_read(void *privdata)
{
    ngx_http_loyalty_redis_adapter_t  *a = privdata;

    ngx_http_loyalty_redis_del(a->connection->read, NGX_READ_EVENT);
}


static void
ngx_http_loyalty_redis_add_write(void *privdata)
{
    ngx_http_loyalty_redis_adapter_t  *a = privdata;

    ngx_http_loyalty_redis_add(a->connection->write, NGX_WRITE_EVENT);
}


static void
ngx_http_loyalty_redis_del_write(void *privdata)
{
    ngx_http_loyalty_redis_adapter_t  *a = privdata;

    ngx_http_loyalty_redis_del(a->connection->write, NGX_WRITE_EVENT);
}


/* hiredis calls add/del after every read and command: be idempotent */

static void
ngx_http_loyalty_redis_add(ngx_event_t *ev, ngx_int_t event)
{
    if (ev->active) {
        return;
    }

    if (ngx_add_event(ev, event, NGX_HTTP_LOYALTY_REDIS_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "loyalty redis: cannot add event");
    }
}


static void
ngx_http_loyalty_redis_del(ngx_event_t *ev, ngx_int_t event)
{
    if (!ev->active) {
        return;
    }

    if (ngx_del_event(ev, event, NGX_HTTP_LOYALTY_REDIS_EVENT) != NGX_OK) {
        ngx_log_error(NGX_LOG_ALERT, ev->log, 0,
                      "loyalty redis: cannot delete event");
    }
}


/*
 * hiredis closes the fd itself after this hook, so give the slot back
 * without closing it: ngx_close_connection() would close the number
 * twice, the second time perhaps a new connection's socket.
 */

static void
ngx_http_loyalty_redis_cleanup(void *privdata)
{
    ngx_connection_t                  *c;
    ngx_http_loyalty_redis_adapter_t  *a = privdata;

    if (a == NULL) {
        return;
    }

    c = a->connection;

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    if (c->write->timer_set) {
        ngx_del_timer(c->write);
    }

    if (c->read->posted) {
        ngx_delete_posted_event(c->read);
    }

    if (c->write->posted) {
        ngx_delete_posted_event(c->write);
    }

    ngx_http_loyalty_redis_del(c->read, NGX_READ_EVENT);
    ngx_http_loyalty_redis_del(c->write, NGX_WRITE_EVENT);

    ngx_free_connection(c);
    c->fd = (ngx_socket_t) -1;

    a->ac->ev.data = NULL;
    a->connection = NULL;

    if (a->entered) {
        a->deleted = 1;
        return;
    }

    ngx_free(a);
}
