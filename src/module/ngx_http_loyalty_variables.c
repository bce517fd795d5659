/*
 * Copyright (C) loyalty-edge authors
 *
 * $loyalty_event_id, $loyalty_correlation_id, $loyalty_result for
 * log_format and anything else that reads variables.
 */


#include "ngx_http_loyalty_module.h"


static ngx_int_t ngx_http_loyalty_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_loyalty_vars[] = {

    { ngx_string("loyalty_event_id"), NULL, ngx_http_loyalty_variable,
      offsetof(ngx_http_loyalty_ctx_t, event_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("loyalty_correlation_id"), NULL, ngx_http_loyalty_variable,
      offsetof(ngx_http_loyalty_ctx_t, corr),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("loyalty_result"), NULL, ngx_http_loyalty_variable,
      offsetof(ngx_http_loyalty_ctx_t, result),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_loyalty_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_loyalty_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_loyalty_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t               *s;
    ngx_http_loyalty_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_loyalty_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((u_char *) ctx + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}
