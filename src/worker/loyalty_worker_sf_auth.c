/*
 * Copyright (C) loyalty-edge authors
 *
 * Salesforce access tokens, shared by every worker through Redis:
 * loyalty:sf:{<dest>}:token is a hash (access_token, instance_url,
 * issued).  A worker without a token runs one script that answers the
 * cached token or takes loyalty:sf:{<dest>}:lock (SET NX PX): the
 * holder asks the token endpoint (client credentials or a JWT bearer
 * assertion, RS256, exp in seconds) and stores the answer, the others
 * poll the cache on a timer; the loop never blocks.  A 401 invalidates
 * the token only if the cache still holds the one that failed (compare
 * and delete), so a worker late with its 401 cannot throw away the
 * token another one just fetched.  Token endpoint errors are logged and
 * retried with backoff; the records wait (nothing is dead-lettered for
 * an auth failure).  Secrets and tokens are never logged.
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <hiredis/hiredis.h>

#include "loyalty_worker_sf.h"
#include "loyalty_sf_jwt.h"


#define LOYALTY_SF_POLL_MS       200
#define LOYALTY_SF_BACKOFF_MS    1000
#define LOYALTY_SF_BACKOFF_MAX   60000
#define LOYALTY_SF_JWT_EXP_S     180


/* KEYS: token, lock; ARGV: consumer, lock ms.
 * {1, token, url, user}: cached; {2}: locked, fetch it; {0}: someone
 * else is.  A token cached without its user (an older worker's) is
 * fetched again once: the pull needs the user to see its echoes */
static const char  loyalty_sf_get_script[] =
    "local t = redis.call('HMGET', KEYS[1], 'access_token', "
    "                     'instance_url', 'user_id') "
    "if t[1] and t[2] and t[3] then return {1, t[1], t[2], t[3]} end "
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then "
    "  return {2} end "
    "return {0}";

/* KEYS: token, lock; ARGV: token, url, consumer, issued, user id */
static const char  loyalty_sf_store_script[] =
    "redis.call('HSET', KEYS[1], 'access_token', ARGV[1], "
    "           'instance_url', ARGV[2], 'issued', ARGV[4], "
    "           'user_id', ARGV[5]) "
    "if redis.call('GET', KEYS[2]) == ARGV[3] then "
    "  redis.call('DEL', KEYS[2]) end "
    "return 1";

/* KEYS: lock; ARGV: consumer */
static const char  loyalty_sf_unlock_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then "
    "  return redis.call('DEL', KEYS[1]) end "
    "return 0";

/* KEYS: token; ARGV: the token that failed */
static const char  loyalty_sf_invalidate_script[] =
    "if redis.call('HGET', KEYS[1], 'access_token') == ARGV[1] then "
    "  return redis.call('DEL', KEYS[1]) end "
    "return 0";


static void loyalty_sf_auth_lookup(loyalty_sf_t *sf);
static void loyalty_sf_auth_got(void *r, void *data);
static void loyalty_sf_auth_later(loyalty_sf_t *sf, unsigned ms);
static void loyalty_sf_auth_timer(evutil_socket_t fd, short what,
    void *arg);
static void loyalty_sf_auth_fetch(loyalty_sf_t *sf);
static void loyalty_sf_auth_answer(loyalty_http_req_t *r,
    const loyalty_http_res_t *res);
static void loyalty_sf_auth_retry(loyalty_sf_t *sf);
static int loyalty_sf_read_file(const char *path, char *buf, size_t len);
static size_t loyalty_sf_form(char *dst, const char *name,
    const char *value);
static void loyalty_sf_user_id(loyalty_sf_t *sf, const loyalty_str_t *id);


int
loyalty_sf_auth_init(loyalty_sf_t *sf)
{
    FILE                 *fp;
    EVP_PKEY             *key;
    loyalty_err_t         err;
    loyalty_dest_conf_t  *d;
    u_char                pem[16384];
    size_t                n;

    d = sf->dest;

    /* one hash tag: the scripts use token and lock together */
    snprintf(sf->key_token, sizeof(sf->key_token), "loyalty:sf:{%s}:token",
             d->name);
    snprintf(sf->key_lock, sizeof(sf->key_lock), "loyalty:sf:{%s}:lock",
             d->name);
    snprintf(sf->key_usage, sizeof(sf->key_usage), "loyalty:sf:{%s}:usage",
             d->name);

    sf->auth_timer = evtimer_new(loyalty_cycle.base, loyalty_sf_auth_timer,
                                 sf);
    if (sf->auth_timer == NULL) {
        return LOYALTY_ERROR;
    }

    if (strcmp(d->auth, "client_credentials") == 0) {
        return loyalty_sf_read_file(d->client_secret_file, sf->secret,
                                    sizeof(sf->secret));
    }

    fp = fopen(d->private_key_file, "r");
    if (fp == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, d->name, -1, -1,
                    "private_key_file \"%s\": %s", d->private_key_file,
                    strerror(errno));
        return LOYALTY_ERROR;
    }

    n = fread(pem, 1, sizeof(pem), fp);
    fclose(fp);

    memset(&err, 0, sizeof(err));
    key = loyalty_sf_jwt_key(pem, n, &err);
    memset(pem, 0, sizeof(pem));

    if (key == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, d->name, -1, -1,
                    "private_key_file \"%s\": %s", d->private_key_file,
                    err.msg);
        return LOYALTY_ERROR;
    }

    sf->pkey = key;

    return LOYALTY_OK;
}


/* the first line of a secret file, without its line end */

static int
loyalty_sf_read_file(const char *path, char *buf, size_t len)
{
    FILE    *fp;
    size_t   n;

    fp = fopen(path, "r");
    if (fp == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1, "\"%s\": %s", path,
                    strerror(errno));
        return LOYALTY_ERROR;
    }

    if (fgets(buf, (int) len, fp) == NULL) {
        buf[0] = '\0';
    }

    fclose(fp);

    n = strlen(buf);
    while (n > 0 && isspace((u_char) buf[n - 1])) {
        buf[--n] = '\0';
    }

    return n > 0 ? LOYALTY_OK : LOYALTY_ERROR;
}


/* calls wait for a token: find one in Redis or fetch it (once) */

void
loyalty_sf_auth_need(loyalty_sf_t *sf)
{
    if (sf->token[0] != '\0' || sf->auth_busy || loyalty_cycle.stopping) {
        return;
    }

    sf->auth_busy = 1;
    loyalty_sf_auth_lookup(sf);
}


static void
loyalty_sf_auth_lookup(loyalty_sf_t *sf)
{
    const char  *args[4];
    char         px[24];

    snprintf(px, sizeof(px), "%u", sf->dest->timeout_ms + 5000);

    args[0] = sf->key_token;
    args[1] = sf->key_lock;
    args[2] = loyalty_cycle.consumer;
    args[3] = px;

    if (loyalty_consumer_eval("salesforce token", loyalty_sf_get_script, 2,
                              args, 4, loyalty_sf_auth_got, sf)
        != LOYALTY_OK)
    {
        /* Redis is away: ask again soon */
        loyalty_sf_auth_later(sf, LOYALTY_SF_BACKOFF_MS);
    }
}


static void
loyalty_sf_auth_got(void *r, void *data)
{
    redisReply    *reply;
    loyalty_sf_t  *sf;

    reply = r;
    sf = data;

    if (loyalty_cycle.stopping) {
        sf->auth_busy = 0;
        return;
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements < 1
        || reply->element[0]->type != REDIS_REPLY_INTEGER)
    {
        loyalty_sf_auth_later(sf, LOYALTY_SF_BACKOFF_MS);
        return;
    }

    switch (reply->element[0]->integer) {

    case 1:
        if (reply->elements != 4
            || reply->element[1]->type != REDIS_REPLY_STRING
            || reply->element[2]->type != REDIS_REPLY_STRING
            || reply->element[3]->type != REDIS_REPLY_STRING
            || reply->element[3]->len >= sizeof(sf->user_id)
            || reply->element[1]->len >= sizeof(sf->token)
            || reply->element[2]->len >= sizeof(sf->instance_url))
        {
            loyalty_sf_auth_later(sf, LOYALTY_SF_BACKOFF_MS);
            return;
        }

        memcpy(sf->token, reply->element[1]->str, reply->element[1]->len);
        sf->token[reply->element[1]->len] = '\0';
        memcpy(sf->instance_url, reply->element[2]->str,
               reply->element[2]->len);
        sf->instance_url[reply->element[2]->len] = '\0';
        memcpy(sf->user_id, reply->element[3]->str, reply->element[3]->len);
        sf->user_id[reply->element[3]->len] = '\0';

        sf->auth_busy = 0;
        sf->auth_backoff_ms = 0;

        loyalty_log(LOYALTY_LOG_DEBUG, NULL, sf->dest->name, -1, -1,
                    "salesforce token from the shared cache");
        loyalty_sf_token_ready(sf);
        return;

    case 2:
        sf->auth_locked = 1;
        loyalty_sf_auth_fetch(sf);
        return;

    default:
        /* another worker fetches it: look again shortly */
        loyalty_sf_auth_later(sf, LOYALTY_SF_POLL_MS);
        return;
    }
}


static void
loyalty_sf_auth_later(loyalty_sf_t *sf, unsigned ms)
{
    struct timeval  tv;

    if (loyalty_cycle.stopping) {
        sf->auth_busy = 0;
        return;
    }

    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(sf->auth_timer, &tv);
}


static void
loyalty_sf_auth_timer(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;

    loyalty_sf_auth_lookup(arg);
}


static size_t
loyalty_sf_form(char *dst, const char *name, const char *value)
{
    char                 *p;
    const u_char         *v;
    static const char     hex[] = "0123456789ABCDEF";

    p = dst;
    p += sprintf(p, "%s=", name);

    for (v = (const u_char *) value; *v; v++) {
        if (isalnum(*v) || *v == '-' || *v == '.' || *v == '_'
            || *v == '~')
        {
            *p++ = (char) *v;

        } else {
            *p++ = '%';
            *p++ = hex[*v >> 4];
            *p++ = hex[*v & 0xf];
        }
    }

    *p = '\0';

    return (size_t) (p - dst);
}


/* we hold the lock: POST <url>/services/oauth2/token */

static void
loyalty_sf_auth_fetch(loyalty_sf_t *sf)
{
    char                 *p;
    size_t                size;
    loyalty_err_t         err;
    loyalty_str_t         jwt;
    loyalty_sf_pool_t     pool;
    loyalty_dest_conf_t  *d;
    struct curl_slist    *h;

    d = sf->dest;
    jwt.len = 0;
    jwt.data = NULL;
    loyalty_sf_pool_init(&pool);

    if (sf->pkey != NULL) {
        memset(&err, 0, sizeof(err));

        if (loyalty_sf_jwt_sign(d->client_id, d->username, d->audience,
                                (int64_t) time(NULL) + LOYALTY_SF_JWT_EXP_S,
                                sf->pkey, &pool.alloc, &jwt, &err)
            != LOYALTY_OK)
        {
            loyalty_log(LOYALTY_LOG_ERR, NULL, d->name, -1, -1,
                        "salesforce: cannot sign the JWT assertion: %s",
                        err.msg);
            loyalty_sf_pool_free(&pool);
            loyalty_sf_auth_retry(sf);
            return;
        }
    }

    size = 3 * (strlen(d->client_id) + strlen(sf->secret) + jwt.len) + 256;

    free(sf->auth_body);
    sf->auth_body = malloc(size);
    if (sf->auth_body == NULL) {
        loyalty_sf_pool_free(&pool);
        loyalty_sf_auth_retry(sf);
        return;
    }

    p = sf->auth_body;

    if (sf->pkey != NULL) {
        p += loyalty_sf_form(p, "grant_type",
                             "urn:ietf:params:oauth:grant-type:jwt-bearer");
        *p++ = '&';
        p += loyalty_sf_form(p, "assertion", (const char *) jwt.data);

    } else {
        p += loyalty_sf_form(p, "grant_type", "client_credentials");
        *p++ = '&';
        p += loyalty_sf_form(p, "client_id", d->client_id);
        *p++ = '&';
        p += loyalty_sf_form(p, "client_secret", sf->secret);
    }

    loyalty_sf_pool_free(&pool);

    snprintf(sf->auth_url, sizeof(sf->auth_url), "%s/services/oauth2/token",
             d->url);

    h = curl_slist_append(NULL,
                          "Content-Type: application/x-www-form-urlencoded");
    if (h == NULL) {
        loyalty_sf_auth_retry(sf);
        return;
    }

    memset(&sf->auth_req, 0, sizeof(sf->auth_req));
    sf->auth_req.dest = d;
    sf->auth_req.url = sf->auth_url;
    sf->auth_req.headers = h;
    sf->auth_req.body = sf->auth_body;
    sf->auth_req.body_len = (size_t) (p - sf->auth_body);
    sf->auth_req.body_max = 16384;
    sf->auth_req.handler = loyalty_sf_auth_answer;
    sf->auth_req.data = sf;

    loyalty_log(LOYALTY_LOG_INFO, NULL, d->name, -1, -1,
                "salesforce: requesting a token (%s)", d->auth);

    loyalty_http_send(&sf->auth_req);
}


static void
loyalty_sf_auth_answer(loyalty_http_req_t *r, const loyalty_http_res_t *res)
{
    loyalty_sf_t       *sf;
    loyalty_err_t       err;
    loyalty_str_t       body, token, url, e, desc, id;
    loyalty_json_t     *json;
    loyalty_sf_pool_t   pool;
    const char         *args[8];
    char                issued[24];

    sf = r->data;

    curl_slist_free_all(r->headers);
    r->headers = NULL;

    /* the secret or assertion is in the body: gone with it */
    if (sf->auth_body != NULL) {
        memset(sf->auth_body, 0, r->body_len);
        free(sf->auth_body);
        sf->auth_body = NULL;
    }

    if (res->abandoned) {
        sf->auth_busy = 0;
        return;
    }

    if (res->error != NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, sf->dest->name, -1,
                    (long) (res->us / 1000), "salesforce token endpoint: %s",
                    res->error);
        loyalty_sf_auth_retry(sf);
        return;
    }

    loyalty_sf_pool_init(&pool);
    memset(&err, 0, sizeof(err));
    body.data = (u_char *) res->body;
    body.len = res->body_len;
    json = NULL;

    if (loyalty_json_parse(&body, &pool.alloc, &json, &err) != LOYALTY_OK
        || json->type != LOYALTY_JSON_OBJECT)
    {
        json = NULL;
    }

    if (res->status != 200 || json == NULL
        || loyalty_json_scalar(json, "access_token", &token) != LOYALTY_OK
        || loyalty_json_scalar(json, "instance_url", &url) != LOYALTY_OK
        || token.len >= sizeof(sf->token)
        || url.len >= sizeof(sf->instance_url))
    {
        e.len = 0;
        desc.len = 0;

        if (json != NULL) {
            (void) loyalty_json_scalar(json, "error", &e);
            (void) loyalty_json_scalar(json, "error_description", &desc);
        }

        /* OAuth's error and description name the problem, not secrets */
        loyalty_log(LOYALTY_LOG_ERR, NULL, sf->dest->name,
                    (int) res->status, (long) (res->us / 1000),
                    "salesforce token endpoint refused (%s): HTTP %ld "
                    "%.*s: %.*s; retrying, events wait", sf->dest->auth,
                    res->status, (int) (e.len > 60 ? 60 : e.len),
                    e.len ? (const char *) e.data : "",
                    (int) (desc.len > 120 ? 120 : desc.len),
                    desc.len ? (const char *) desc.data : "");
        loyalty_sf_pool_free(&pool);
        loyalty_sf_auth_retry(sf);
        return;
    }

    memcpy(sf->token, token.data, token.len);
    sf->token[token.len] = '\0';
    memcpy(sf->instance_url, url.data, url.len);
    sf->instance_url[url.len] = '\0';

    id.len = 0;
    (void) loyalty_json_scalar(json, "id", &id);
    loyalty_sf_user_id(sf, &id);
    loyalty_sf_pool_free(&pool);

    snprintf(issued, sizeof(issued), "%lld", (long long) time(NULL));

    args[0] = sf->key_token;
    args[1] = sf->key_lock;
    args[2] = sf->token;
    args[3] = sf->instance_url;
    args[4] = loyalty_cycle.consumer;
    args[5] = issued;
    args[6] = sf->user_id;

    (void) loyalty_consumer_eval("salesforce token store",
                                 loyalty_sf_store_script, 2, args, 7, NULL,
                                 NULL);

    sf->auth_locked = 0;
    sf->auth_busy = 0;
    sf->auth_backoff_ms = 0;

    loyalty_log(LOYALTY_LOG_INFO, NULL, sf->dest->name, 200,
                (long) (res->us / 1000), "salesforce: new token, shared");

    if (!loyalty_cycle.stopping) {
        loyalty_sf_token_ready(sf);
    }
}


/*
 * The user the token acts as: the identity URL "id" of the answer ends
 * in /<org id>/<user id>.  Its writes are the pull's echoes.  "" when
 * the answer has none (the pull then refuses to run).
 */

static void
loyalty_sf_user_id(loyalty_sf_t *sf, const loyalty_str_t *id)
{
    size_t         i, n;
    const u_char  *p;

    sf->user_id[0] = '\0';

    for (n = 0; n < id->len && id->data[id->len - 1 - n] != '/'; n++) {
        /* void */
    }

    p = id->data + id->len - n;

    if (n != 15 && n != 18) {
        return;
    }

    for (i = 0; i < n; i++) {
        if (!isalnum(p[i])) {
            return;
        }
    }

    memcpy(sf->user_id, p, n);
    sf->user_id[n] = '\0';
}


/* the token endpoint failed: free the lock, back off, start over */

static void
loyalty_sf_auth_retry(loyalty_sf_t *sf)
{
    const char  *args[2];

    if (sf->auth_locked) {
        args[0] = sf->key_lock;
        args[1] = loyalty_cycle.consumer;
        (void) loyalty_consumer_eval("salesforce token unlock",
                                     loyalty_sf_unlock_script, 1, args, 2,
                                     NULL, NULL);
        sf->auth_locked = 0;
    }

    sf->auth_backoff_ms = sf->auth_backoff_ms
                          ? sf->auth_backoff_ms * 2 : LOYALTY_SF_BACKOFF_MS;
    if (sf->auth_backoff_ms > LOYALTY_SF_BACKOFF_MAX) {
        sf->auth_backoff_ms = LOYALTY_SF_BACKOFF_MAX;
    }

    loyalty_sf_auth_later(sf, sf->auth_backoff_ms);
}


/* a 401 with token: drop it here, and in Redis if it is still there */

void
loyalty_sf_auth_failed(loyalty_sf_t *sf, const char *token)
{
    const char  *args[2];

    if (strcmp(sf->token, token) == 0) {
        sf->token[0] = '\0';

        loyalty_log(LOYALTY_LOG_INFO, NULL, sf->dest->name, 401, -1,
                    "salesforce: token refused (INVALID_SESSION_ID), "
                    "refreshing");

        args[0] = sf->key_token;
        args[1] = token;
        (void) loyalty_consumer_eval("salesforce token invalidate",
                                     loyalty_sf_invalidate_script, 1, args,
                                     2, NULL, NULL);
    }
}


void
loyalty_sf_auth_stop(loyalty_sf_t *sf)
{
    const char  *args[2];

    if (sf->auth_timer != NULL && evtimer_pending(sf->auth_timer, NULL)) {
        evtimer_del(sf->auth_timer);
        sf->auth_busy = 0;
    }

    if (sf->auth_locked && sf->auth_req.easy == NULL) {
        args[0] = sf->key_lock;
        args[1] = loyalty_cycle.consumer;
        (void) loyalty_consumer_eval("salesforce token unlock",
                                     loyalty_sf_unlock_script, 1, args, 2,
                                     NULL, NULL);
        sf->auth_locked = 0;
    }
}


void
loyalty_sf_auth_cleanup(loyalty_sf_t *sf)
{
    if (sf->auth_timer != NULL) {
        event_free(sf->auth_timer);
        sf->auth_timer = NULL;
    }

    if (sf->auth_body != NULL) {
        free(sf->auth_body);
        sf->auth_body = NULL;
    }

    curl_slist_free_all(sf->auth_req.headers);
    sf->auth_req.headers = NULL;

    if (sf->pkey != NULL) {
        EVP_PKEY_free(sf->pkey);
        sf->pkey = NULL;
    }

    memset(sf->secret, 0, sizeof(sf->secret));
    memset(sf->token, 0, sizeof(sf->token));
}
