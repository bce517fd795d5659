/*
 * Copyright (C) loyalty-edge authors
 *
 * Module definition: directives, configuration, worker start and exit.
 */


#include "ngx_http_loyalty_module.h"
#include "loyalty_soap.h"


static ngx_int_t ngx_http_loyalty_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_loyalty_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_loyalty_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_loyalty_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_loyalty_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_loyalty_init_process(ngx_cycle_t *cycle);
static void ngx_http_loyalty_exit_process(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_loyalty_algorithms[] = {
    { ngx_string("sha256"), LOYALTY_MD_SHA256 },
    { ngx_string("sha1"), LOYALTY_MD_SHA1 },
    { ngx_null_string, 0 }
};


static ngx_conf_enum_t  ngx_http_loyalty_encodings[] = {
    { ngx_string("hex"), LOYALTY_ENC_HEX },
    { ngx_string("base64"), LOYALTY_ENC_BASE64 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_loyalty_commands[] = {

    { ngx_string("loyalty_redis"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_1MORE,
      ngx_http_loyalty_redis_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loyalty_webhook"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_loyalty_webhook_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loyalty_secret"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_loyalty_secret_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loyalty_secret_file"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_loyalty_secret_file_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("loyalty_store"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, store),
      NULL },

    { ngx_string("loyalty_dedupe_window"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, dedupe_window),
      NULL },

    { ngx_string("loyalty_stream_cap"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, stream_cap),
      NULL },

    { ngx_string("loyalty_keep_raw"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, keep_raw),
      NULL },

    { ngx_string("loyalty_timestamp_tolerance"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, tolerance),
      NULL },

    { ngx_string("loyalty_retry_after"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, retry_after),
      NULL },

    { ngx_string("loyalty_signature_header"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, signature_header),
      NULL },

    { ngx_string("loyalty_signature_algorithm"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, algorithm),
      &ngx_http_loyalty_algorithms },

    { ngx_string("loyalty_signature_encoding"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, encoding),
      &ngx_http_loyalty_encodings },

    { ngx_string("loyalty_id_header"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, id_header),
      NULL },

    { ngx_string("loyalty_default_country"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_loyalty_loc_conf_t, default_country),
      NULL },

    { ngx_string("loyalty_salesforce_org"),
      NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_loyalty_org_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_loyalty_module_ctx = {
    ngx_http_loyalty_add_variables,        /* preconfiguration */
    ngx_http_loyalty_postconfiguration,    /* postconfiguration */

    ngx_http_loyalty_create_main_conf,     /* create main configuration */
    ngx_http_loyalty_init_main_conf,       /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_loyalty_create_loc_conf,      /* create location configuration */
    ngx_http_loyalty_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_loyalty_module = {
    NGX_MODULE_V1,
    &ngx_http_loyalty_module_ctx,          /* module context */
    ngx_http_loyalty_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_loyalty_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_loyalty_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_loyalty_request_id = ngx_string("request_id");


static ngx_int_t
ngx_http_loyalty_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_loyalty_main_conf_t  *lmcf;

    lmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_loyalty_module);

    if (lmcf->enabled && !lmcf->redis_set) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loyalty_webhook\" is used but "
                           "\"loyalty_redis\" is not set");
        return NGX_ERROR;
    }

    lmcf->request_id_index = ngx_http_get_variable_index(cf,
                                                 &ngx_http_loyalty_request_id);
    if (lmcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void *
ngx_http_loyalty_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_loyalty_main_conf_t  *lmcf;

    lmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_loyalty_main_conf_t));
    if (lmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     lmcf->redis_set = 0;
     *     lmcf->enabled = 0;
     *     lmcf->client = NULL;
     */

    lmcf->redis.db = NGX_CONF_UNSET;
    lmcf->redis.timeout = NGX_CONF_UNSET_MSEC;
    lmcf->redis.max_pending = NGX_CONF_UNSET_UINT;

    return lmcf;
}


static char *
ngx_http_loyalty_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_loyalty_main_conf_t *lmcf = conf;

    ngx_conf_init_value(lmcf->redis.db, 0);
    ngx_conf_init_msec_value(lmcf->redis.timeout,
                             NGX_HTTP_LOYALTY_REDIS_TIMEOUT);
    ngx_conf_init_uint_value(lmcf->redis.max_pending,
                             NGX_HTTP_LOYALTY_MAX_PENDING);

    lmcf->redis.script = ngx_http_loyalty_enqueue_script;

    /* libxml2's global state, once in the master, before workers fork */
    loyalty_soap_init();

    if (ngx_http_loyalty_enqueue_init(cf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_loyalty_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_loyalty_loc_conf_t  *llcf;

    llcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_loyalty_loc_conf_t));
    if (llcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     llcf->pc.provider = NULL;
     *     llcf->secrets = NULL;
     *     llcf->store = NULL;
     *     llcf->signature_header = { 0, NULL };
     *     llcf->id_header = { 0, NULL };
     *     llcf->default_country = { 0, NULL };
     *     llcf->orgs = NULL;
     */

    loyalty_provider_conf_init(&llcf->pc);

    llcf->dedupe_window = NGX_CONF_UNSET;
    llcf->stream_cap = NGX_CONF_UNSET_UINT;
    llcf->keep_raw = NGX_CONF_UNSET;
    llcf->tolerance = NGX_CONF_UNSET;
    llcf->retry_after = NGX_CONF_UNSET;
    llcf->algorithm = NGX_CONF_UNSET_UINT;
    llcf->encoding = NGX_CONF_UNSET_UINT;

    return llcf;
}


static char *
ngx_http_loyalty_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_loyalty_loc_conf_t *prev = parent;
    ngx_http_loyalty_loc_conf_t *conf = child;

    ngx_str_t                         *org;
    ngx_uint_t                         i;
    loyalty_err_t                      err;
    loyalty_str_t                      s;
    ngx_http_core_loc_conf_t          *clcf;
    const loyalty_provider_t          *provider;
    ngx_http_compile_complex_value_t   ccv;

    static ngx_str_t  host = ngx_string("$host");

    if (conf->secrets == NULL) {
        conf->secrets = prev->secrets;
    }

    if (conf->store == NULL) {
        conf->store = prev->store;
    }

    if (conf->store == NULL) {
        conf->store = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
        if (conf->store == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

        ccv.cf = cf;
        ccv.value = &host;
        ccv.complex_value = conf->store;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    ngx_conf_merge_sec_value(conf->dedupe_window, prev->dedupe_window,
                             NGX_HTTP_LOYALTY_DEDUPE_WINDOW);
    ngx_conf_merge_uint_value(conf->stream_cap, prev->stream_cap,
                              NGX_HTTP_LOYALTY_STREAM_CAP);
    ngx_conf_merge_value(conf->keep_raw, prev->keep_raw, 0);
    ngx_conf_merge_sec_value(conf->tolerance, prev->tolerance, 300);
    ngx_conf_merge_sec_value(conf->retry_after, prev->retry_after,
                             NGX_HTTP_LOYALTY_RETRY_AFTER);
    ngx_conf_merge_uint_value(conf->algorithm, prev->algorithm,
                              LOYALTY_MD_SHA256);
    ngx_conf_merge_str_value(conf->id_header, prev->id_header, "");
    ngx_conf_merge_str_value(conf->default_country, prev->default_country,
                             "");

    if (conf->orgs == NULL) {
        conf->orgs = prev->orgs;
    }

    /*
     * Left unset where no sender is named, so that a location's sender
     * (smile, yotpo: their own header) brings its defaults.
     */
    ngx_conf_merge_uint_value(conf->encoding, prev->encoding,
                              NGX_CONF_UNSET_UINT);
    ngx_conf_merge_str_value(conf->signature_header, prev->signature_header,
                             "");

    provider = conf->pc.provider;

    if (provider != NULL) {
        if (conf->encoding == NGX_CONF_UNSET_UINT) {
            conf->encoding = provider->signature_header ? provider->encoding
                                                        : LOYALTY_ENC_HEX;
        }

        if (conf->signature_header.len == 0) {
            conf->signature_header.data = (u_char *)
                (provider->signature_header ? provider->signature_header
                                            : "X-Signature");
            conf->signature_header.len =
                ngx_strlen(conf->signature_header.data);
        }
    }

    if (conf->dedupe_window <= 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loyalty_dedupe_window\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (conf->stream_cap == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loyalty_stream_cap\" must be positive");
        return NGX_CONF_ERROR;
    }

    if (conf->pc.provider == NULL) {
        return NGX_CONF_OK;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (!(provider->flags & LOYALTY_PROVIDER_NO_SECRET)
        && (conf->secrets == NULL || conf->secrets->nelts == 0))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"loyalty_webhook %s\" in location \"%V\" "
                           "has no \"loyalty_secret\" or "
                           "\"loyalty_secret_file\"",
                           conf->pc.provider->name, &clcf->name);
        return NGX_CONF_ERROR;
    }

    if ((clcf->client_max_body_size == 0
         || (off_t) clcf->client_body_buffer_size
            < clcf->client_max_body_size)
#if (NGX_THREADS)
        && clcf->aio != NGX_HTTP_AIO_THREADS
#endif
        )
    {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "location \"%V\": bodies larger than "
                           "client_body_buffer_size go to a temp file "
                           "that is read back with a blocking call; set "
                           "client_body_buffer_size to "
                           "client_max_body_size, or \"aio threads\"",
                           &clcf->name);
    }

    /* the provider's view of the settings, all strings NUL-terminated */
    conf->pc.tolerance = conf->tolerance;
    conf->pc.md = (loyalty_md_e) conf->algorithm;
    conf->pc.encoding = (loyalty_enc_e) conf->encoding;
    conf->pc.signature_header = (const char *) conf->signature_header.data;
    conf->pc.id_header = conf->id_header.len
                         ? (const char *) conf->id_header.data : NULL;

    if (ngx_http_loyalty_make_keys(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    err.msg[0] = '\0';

    if (conf->default_country.len) {
        s.data = conf->default_country.data;
        s.len = conf->default_country.len;

        if (loyalty_provider_set_country(&conf->pc, &s, &err) != LOYALTY_OK) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"loyalty_default_country\": %s", err.msg);
            return NGX_CONF_ERROR;
        }
    }

    if (provider->flags & LOYALTY_PROVIDER_ORGS) {
        if (conf->orgs == NULL) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"loyalty_webhook %s\" in location \"%V\" "
                               "has no \"loyalty_salesforce_org\"",
                               provider->name, &clcf->name);
            return NGX_CONF_ERROR;
        }

        org = conf->orgs->elts;

        for (i = 0; i < conf->orgs->nelts; i++) {
            s.data = org[i].data;
            s.len = org[i].len;

            if (loyalty_provider_add_org(&conf->pc, &s, &err) != LOYALTY_OK) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"loyalty_salesforce_org\" \"%V\": %s",
                                   &org[i], err.msg);
                return NGX_CONF_ERROR;
            }
        }
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_loyalty_init_process(ngx_cycle_t *cycle)
{
    ngx_http_loyalty_main_conf_t  *lmcf;

    /* cache manager and loader run init_process too */
    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_loyalty_module);
    if (lmcf == NULL || !lmcf->enabled) {
        return NGX_OK;
    }

    lmcf->client = ngx_http_loyalty_redis_create(&lmcf->redis, cycle->log);
    if (lmcf->client == NULL) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_http_loyalty_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_loyalty_main_conf_t  *lmcf;

    lmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_loyalty_module);
    if (lmcf == NULL || lmcf->client == NULL) {
        return;
    }

    ngx_http_loyalty_redis_destroy(lmcf->client);
    lmcf->client = NULL;
}
