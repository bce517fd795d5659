/*
 * Copyright (C) loyalty-edge authors
 *
 * Directives that need more than a stock slot: the Redis address and
 * its options, the sender, and secrets (inline or from files).
 */


#include "ngx_http_loyalty_module.h"


static ngx_int_t ngx_http_loyalty_read_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *content);
static ngx_int_t ngx_http_loyalty_add_secret(ngx_conf_t *cf,
    ngx_http_loyalty_loc_conf_t *llcf, u_char *data, size_t len);
static void ngx_http_loyalty_free_keys(void *data);


char *
ngx_http_loyalty_redis_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_loyalty_main_conf_t *lmcf = conf;

    u_char      *p;
    ngx_str_t   *value, s, password;
    ngx_int_t    n;
    ngx_url_t    u;
    ngx_uint_t   i;
    ngx_msec_t   ms;

    if (lmcf->redis_set) {
        return "is duplicate";
    }

    value = cf->args->elts;

    lmcf->redis.name = value[1];

    if (ngx_strncmp(value[1].data, "unix:", 5) == 0) {
        if (value[1].len <= 5) {
            return "has an empty unix socket path";
        }

        lmcf->redis.unix_path.len = value[1].len - 5;
        lmcf->redis.unix_path.data = ngx_pnalloc(cf->pool, value[1].len - 4);
        if (lmcf->redis.unix_path.data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_cpystrn(lmcf->redis.unix_path.data, value[1].data + 5,
                    value[1].len - 4);

    } else {
        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url = value[1];
        u.default_port = 6379;
        u.no_resolve = 0;       /* resolved now, never in a request */

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid redis address \"%V\": %s",
                               &value[1], u.err ? u.err : "bad address");
            return NGX_CONF_ERROR;
        }

        if (u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "redis address \"%V\" resolves to nothing",
                               &value[1]);
            return NGX_CONF_ERROR;
        }

        p = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (p == NULL) {
            return NGX_CONF_ERROR;
        }

        /* first address, numeric, so hiredis never calls the resolver */
        n = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen, p,
                          NGX_SOCKADDR_STRLEN, 0);
        p[n] = '\0';

        lmcf->redis.host.data = p;
        lmcf->redis.host.len = n;
        lmcf->redis.port = ngx_inet_get_port(u.addrs[0].sockaddr);
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "password_file=", 14) == 0) {
            s.data = value[i].data + 14;
            s.len = value[i].len - 14;

            if (ngx_http_loyalty_read_file(cf, &s, &password) != NGX_OK) {
                return NGX_CONF_ERROR;
            }

            /* first line only */
            p = ngx_strlchr(password.data, password.data + password.len,
                            '\n');
            if (p != NULL) {
                password.len = p - password.data;
            }

            while (password.len
                   && (password.data[password.len - 1] == '\r'
                       || password.data[password.len - 1] == ' '))
            {
                password.len--;
            }

            if (password.len == 0) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "redis password file \"%V\" is empty",
                                   &s);
                return NGX_CONF_ERROR;
            }

            lmcf->redis.password = password;
            continue;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            n = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (n == NGX_ERROR || n > 65535) {
                goto invalid;
            }

            lmcf->redis.db = n;
            continue;
        }

        if (ngx_strncmp(value[i].data, "timeout=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            lmcf->redis.timeout = ms;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_pending=", 12) == 0) {
            n = ngx_atoi(value[i].data + 12, value[i].len - 12);
            if (n == NGX_ERROR || n == 0) {
                goto invalid;
            }

            lmcf->redis.max_pending = n;
            continue;
        }

        goto invalid;
    }

    lmcf->redis_set = 1;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


/* loyalty_salesforce_org ID ...; repeatable, checked at merge */

char *
ngx_http_loyalty_org_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_loyalty_loc_conf_t *llcf = conf;

    ngx_str_t   *value, *org;
    ngx_uint_t   i;

    if (llcf->orgs == NULL) {
        llcf->orgs = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (llcf->orgs == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        org = ngx_array_push(llcf->orgs);
        if (org == NULL) {
            return NGX_CONF_ERROR;
        }

        *org = value[i];
    }

    return NGX_CONF_OK;
}


char *
ngx_http_loyalty_webhook_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_loyalty_loc_conf_t *llcf = conf;

    ngx_str_t                     *value;
    ngx_http_core_loc_conf_t      *clcf;
    ngx_http_loyalty_main_conf_t  *lmcf;

    if (llcf->pc.provider != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    llcf->pc.provider = loyalty_provider_find(value[1].data, value[1].len);

    if (llcf->pc.provider == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown sender \"%V\", known senders: %s",
                           &value[1], loyalty_provider_names());
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_loyalty_handler;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_loyalty_module);
    lmcf->enabled = 1;

    return NGX_CONF_OK;
}


char *
ngx_http_loyalty_secret_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_loyalty_loc_conf_t *llcf = conf;

    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_http_loyalty_add_secret(cf, llcf, value[1].data, value[1].len)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* one secret per line; blank lines and "#" comments are skipped */

char *
ngx_http_loyalty_secret_file_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_loyalty_loc_conf_t *llcf = conf;

    u_char      *p, *last, *eol, *s, *e;
    ngx_str_t   *value, content;
    ngx_uint_t   n;

    value = cf->args->elts;

    if (ngx_http_loyalty_read_file(cf, &value[1], &content) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    n = 0;
    p = content.data;
    last = content.data + content.len;

    while (p < last) {
        eol = ngx_strlchr(p, last, '\n');
        if (eol == NULL) {
            eol = last;
        }

        s = p;
        e = eol;
        p = eol + 1;

        while (s < e && (*s == ' ' || *s == '\t')) {
            s++;
        }

        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) {
            e--;
        }

        if (s == e || *s == '#') {
            continue;
        }

        if (ngx_http_loyalty_add_secret(cf, llcf, s, e - s) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

        n++;
    }

    /* the buffer held secrets: do not leave them in the pool */
    ngx_explicit_memzero(content.data, content.len);

    if (n == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%V\" holds no secret", &value[1]);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_loyalty_add_secret(ngx_conf_t *cf, ngx_http_loyalty_loc_conf_t *llcf,
    u_char *data, size_t len)
{
    ngx_str_t  *secret;

    if (len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "empty secret");
        return NGX_ERROR;
    }

    if (llcf->secrets == NULL) {
        llcf->secrets = ngx_array_create(cf->pool, 2, sizeof(ngx_str_t));
        if (llcf->secrets == NULL) {
            return NGX_ERROR;
        }
    }

    secret = ngx_array_push(llcf->secrets);
    if (secret == NULL) {
        return NGX_ERROR;
    }

    secret->data = ngx_pnalloc(cf->pool, len);
    if (secret->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(secret->data, data, len);
    secret->len = len;

    return NGX_OK;
}


/*
 * Keys are made when the location's settings are all known (the digest
 * of a generic sender may come after its secrets), once per
 * configuration; every worker reuses them.
 */

ngx_int_t
ngx_http_loyalty_make_keys(ngx_conf_t *cf, ngx_http_loyalty_loc_conf_t *llcf)
{
    ngx_str_t           *secret;
    ngx_uint_t           i;
    loyalty_err_t        err;
    loyalty_str_t        s;
    ngx_pool_cleanup_t  *cln;

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_loyalty_free_keys;
    cln->data = &llcf->pc;

    if (llcf->secrets == NULL) {
        return NGX_OK;
    }

    secret = llcf->secrets->elts;

    for (i = 0; i < llcf->secrets->nelts; i++) {
        s.data = secret[i].data;
        s.len = secret[i].len;
        err.msg[0] = '\0';

        if (loyalty_provider_add_secret(&llcf->pc, &s, &err) != LOYALTY_OK) {
            /* the message never quotes the secret itself */
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "secret #%ui is unusable for sender "
                               "\"%s\": %s", i + 1,
                               llcf->pc.provider->name, err.msg);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_loyalty_free_keys(void *data)
{
    loyalty_provider_conf_t  *pc = data;

    loyalty_provider_conf_free(pc);
}


/* configuration time only: blocking reads are fine here */

static ngx_int_t
ngx_http_loyalty_read_file(ngx_conf_t *cf, ngx_str_t *name,
    ngx_str_t *content)
{
    ssize_t          n;
    ngx_file_t       file;
    ngx_str_t        path;
    ngx_file_info_t  fi;

    path = *name;

    if (ngx_conf_full_name(cf->cycle, &path, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    ngx_memzero(&file, sizeof(ngx_file_t));

    file.name = path;
    file.log = cf->log;

    file.fd = ngx_open_file(path.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (file.fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &path);
        return NGX_ERROR;
    }

    if (ngx_fd_info(file.fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &path);
        goto failed;
    }

    if (ngx_file_size(&fi) > 65536) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "secret file \"%V\" is too large", &path);
        goto failed;
    }

    if (fi.st_mode & S_IROTH) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "secret file \"%V\" is readable by everyone",
                           &path);
    }

    content->len = (size_t) ngx_file_size(&fi);
    content->data = ngx_pnalloc(cf->pool, content->len + 1);
    if (content->data == NULL) {
        goto failed;
    }

    n = ngx_read_file(&file, content->data, content->len, 0);
    if (n == NGX_ERROR || (size_t) n != content->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_file_n " \"%V\" failed", &path);
        goto failed;
    }

    ngx_close_file(file.fd);

    return NGX_OK;

failed:

    ngx_close_file(file.fd);

    return NGX_ERROR;
}
