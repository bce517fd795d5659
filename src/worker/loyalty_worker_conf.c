/*
 * Copyright (C) loyalty-edge authors
 *
 * conf/loyalty-worker.yaml: libcyaml loads it against the schema below
 * (unknown keys, wrong types and missing required keys are refused by
 * libcyaml, with the line), then one table of numeric keys gives the
 * defaults and bounds, and the cross checks run (flows name a known
 * destination and store; claim_timeout_ms exceeds every timeout_ms).
 */

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cyaml/cyaml.h>

#include "loyalty_worker.h"
#include "loyalty_worker_sf_pull.h"
#include "loyalty_sf_jwt.h"
#include "loyalty_sf_map.h"


typedef struct {
    const char   *key;
    size_t        offset;
    uint32_t      def;
    uint32_t      min;
    uint32_t      max;
} loyalty_conf_num_t;


typedef struct {
    char         *buf;
    size_t        len;
    size_t        used;
} loyalty_conf_log_t;


static void loyalty_conf_cyaml_log(cyaml_log_t level, void *ctx,
    const char *fmt, va_list args);
static void loyalty_conf_tidy(char *msg);
static int loyalty_conf_check(loyalty_conf_t *conf, char *err, size_t len);
static int loyalty_conf_nums(const loyalty_conf_num_t *t, void *base,
    const char *where, char *err, size_t len);
static int loyalty_conf_dest_check(loyalty_dest_conf_t *d, char *err,
    size_t len);
static int loyalty_conf_redis(loyalty_conf_t *conf, char *err, size_t len);
static int loyalty_conf_metrics(loyalty_conf_t *conf, char *err, size_t len);
static int loyalty_conf_redis_password(loyalty_conf_t *conf, char *err,
    size_t len);
static int loyalty_conf_has(char **list, unsigned n, const char *s);
static int loyalty_conf_flow_ids(loyalty_conf_t *conf, char *err,
    size_t len);


static const cyaml_schema_value_t  loyalty_conf_string = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, 256),
};


static const cyaml_schema_field_t  loyalty_conf_dest_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER,
                           loyalty_dest_conf_t, name, 1, 64),
    CYAML_FIELD_STRING_PTR("type", CYAML_FLAG_POINTER,
                           loyalty_dest_conf_t, type, 1, 32),
    CYAML_FIELD_STRING_PTR("url", CYAML_FLAG_POINTER,
                           loyalty_dest_conf_t, url, 1, 2048),
    CYAML_FIELD_STRING_PTR("secret_file",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_dest_conf_t, secret_file, 1, 4096),
    CYAML_FIELD_STRING_PTR("auth", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_dest_conf_t, auth, 1, 32),
    CYAML_FIELD_STRING_PTR("client_id",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_dest_conf_t, client_id, 1, 256),
    CYAML_FIELD_STRING_PTR("client_secret_file",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_dest_conf_t, client_secret_file, 1, 4096),
    CYAML_FIELD_STRING_PTR("username",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_dest_conf_t, username, 1, 256),
    CYAML_FIELD_STRING_PTR("audience",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_dest_conf_t, audience, 1, 512),
    CYAML_FIELD_STRING_PTR("private_key_file",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_dest_conf_t, private_key_file, 1, 4096),
    CYAML_FIELD_STRING_PTR("api_version",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_dest_conf_t, api_version, 1, 16),
    CYAML_FIELD_UINT("batch_window_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, batch_window_ms),
    CYAML_FIELD_UINT("limit_pause_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, limit_pause_ms),
    CYAML_FIELD_UINT("bulk_threshold", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, bulk_threshold),
    CYAML_FIELD_UINT("bulk_timeout_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, bulk_timeout_ms),
    CYAML_FIELD_UINT("budget_reserve", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, budget_reserve),
    CYAML_FIELD_UINT("backfill_reserve", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, backfill_reserve),
    CYAML_FIELD_UINT("budget_poll_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, budget_poll_ms),
    CYAML_FIELD_UINT("org_concurrency", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, org_concurrency),
    CYAML_FIELD_UINT("timeout_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, timeout_ms),
    CYAML_FIELD_UINT("connect_timeout_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, connect_timeout_ms),
    CYAML_FIELD_UINT("concurrency", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, concurrency),
    CYAML_FIELD_FLOAT("rate", CYAML_FLAG_OPTIONAL,
                      loyalty_dest_conf_t, rate),
    CYAML_FIELD_UINT("burst", CYAML_FLAG_OPTIONAL,
                     loyalty_dest_conf_t, burst),
    CYAML_FIELD_END
};


static const cyaml_schema_value_t  loyalty_conf_dest = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, loyalty_dest_conf_t,
                        loyalty_conf_dest_fields),
};


static const cyaml_schema_field_t  loyalty_conf_lookup_fields[] = {
    CYAML_FIELD_STRING_PTR("object", CYAML_FLAG_POINTER,
                           loyalty_lookup_conf_t, object, 1, 128),
    CYAML_FIELD_STRING_PTR("external_id", CYAML_FLAG_POINTER,
                           loyalty_lookup_conf_t, external_id, 1, 128),
    CYAML_FIELD_END
};


static const cyaml_schema_field_t  loyalty_conf_field_fields[] = {
    CYAML_FIELD_STRING_PTR("field", CYAML_FLAG_POINTER,
                           loyalty_field_conf_t, field, 1, 128),
    CYAML_FIELD_STRING_PTR("from", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_field_conf_t, from, 1, 256),
    CYAML_FIELD_STRING_PTR("type", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_field_conf_t, type, 1, 32),
    CYAML_FIELD_STRING_PTR("owner", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_field_conf_t, owner, 1, 32),
    CYAML_FIELD_UINT("max_length", CYAML_FLAG_OPTIONAL,
                     loyalty_field_conf_t, max_length),
    CYAML_FIELD_UINT("scale", CYAML_FLAG_OPTIONAL,
                     loyalty_field_conf_t, scale),
    CYAML_FIELD_UINT("precision", CYAML_FLAG_OPTIONAL,
                     loyalty_field_conf_t, precision),
    CYAML_FIELD_BOOL("minor_units", CYAML_FLAG_OPTIONAL,
                     loyalty_field_conf_t, minor_units),
    CYAML_FIELD_BOOL("nullable", CYAML_FLAG_OPTIONAL,
                     loyalty_field_conf_t, nullable),
    CYAML_FIELD_SEQUENCE("values", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_field_conf_t, values, &loyalty_conf_string,
                         1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("country",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_field_conf_t, country, 2, 2),
    CYAML_FIELD_MAPPING_PTR("lookup",
                            CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            loyalty_field_conf_t, lookup,
                            loyalty_conf_lookup_fields),
    CYAML_FIELD_STRING_PTR("value", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_field_conf_t, value, 0, 1024),
    CYAML_FIELD_END
};


static const cyaml_schema_value_t  loyalty_conf_field = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, loyalty_field_conf_t,
                        loyalty_conf_field_fields),
};


static const cyaml_schema_field_t  loyalty_conf_lifecycle_fields[] = {
    CYAML_FIELD_STRING_PTR("object", CYAML_FLAG_POINTER,
                           loyalty_lifecycle_conf_t, object, 1, 128),
    CYAML_FIELD_STRING_PTR("external_id",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_lifecycle_conf_t, external_id, 1, 128),
    CYAML_FIELD_SEQUENCE("until", CYAML_FLAG_POINTER,
                         loyalty_lifecycle_conf_t, until,
                         &loyalty_conf_string, 1, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("converted",
                         CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_lifecycle_conf_t, converted,
                         &loyalty_conf_field, 1, 50),
    CYAML_FIELD_END
};


static const cyaml_schema_field_t  loyalty_conf_flow_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_flow_conf_t, name, 1, 64),
    CYAML_FIELD_SEQUENCE("stores", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_flow_conf_t, stores, &loyalty_conf_string,
                         1, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("from", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_flow_conf_t, from, &loyalty_conf_string,
                         1, CYAML_UNLIMITED),
    CYAML_FIELD_SEQUENCE("on", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_flow_conf_t, on, &loyalty_conf_string,
                         1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("to", CYAML_FLAG_POINTER,
                           loyalty_flow_conf_t, to, 1, 64),
    CYAML_FIELD_STRING_PTR("object", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_flow_conf_t, object, 1, 128),
    CYAML_FIELD_STRING_PTR("external_id",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_flow_conf_t, external_id, 1, 128),
    CYAML_FIELD_STRING_PTR("key", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_flow_conf_t, key, 1, 32),
    CYAML_FIELD_SEQUENCE("fields", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_flow_conf_t, fields, &loyalty_conf_field,
                         1, 500),
    CYAML_FIELD_BOOL("append", CYAML_FLAG_OPTIONAL,
                     loyalty_flow_conf_t, append),
    CYAML_FIELD_MAPPING_PTR("lifecycle",
                            CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            loyalty_flow_conf_t, lifecycle,
                            loyalty_conf_lifecycle_fields),
    CYAML_FIELD_END
};


static const cyaml_schema_value_t  loyalty_conf_flow = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, loyalty_flow_conf_t,
                        loyalty_conf_flow_fields),
};


static const cyaml_schema_field_t  loyalty_conf_identity_fields[] = {
    CYAML_FIELD_SEQUENCE("match", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_identity_conf_t, match, &loyalty_conf_string,
                         1, 4),
    CYAML_FIELD_END
};


static const cyaml_schema_field_t  loyalty_conf_fields[] = {
    CYAML_FIELD_STRING_PTR("redis", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_conf_t, redis, 1, 512),
    CYAML_FIELD_SEQUENCE("stores", CYAML_FLAG_POINTER,
                         loyalty_conf_t, stores, &loyalty_conf_string,
                         1, 1024),
    CYAML_FIELD_SEQUENCE("destinations", CYAML_FLAG_POINTER,
                         loyalty_conf_t, destinations, &loyalty_conf_dest,
                         1, 256),
    CYAML_FIELD_SEQUENCE("flows", CYAML_FLAG_POINTER,
                         loyalty_conf_t, flows, &loyalty_conf_flow,
                         1, LOYALTY_FLOWS_MAX),
    CYAML_FIELD_SEQUENCE("pulls", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_conf_t, pulls, &loyalty_pull_conf_schema,
                         1, 256),
    CYAML_FIELD_UINT("claim_timeout_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, claim_timeout_ms),
    CYAML_FIELD_UINT("claim_interval_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, claim_interval_ms),
    CYAML_FIELD_UINT("block_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, block_ms),
    CYAML_FIELD_UINT("batch", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, batch),
    CYAML_FIELD_UINT("shutdown_timeout_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, shutdown_timeout_ms),
    CYAML_FIELD_UINT("retry_base_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, retry_base_ms),
    CYAML_FIELD_UINT("retry_cap_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, retry_cap_ms),
    CYAML_FIELD_UINT("max_attempts", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, max_attempts),
    CYAML_FIELD_UINT("retry_interval_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, retry_interval_ms),
    CYAML_FIELD_UINT("trim_interval_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, trim_interval_ms),
    CYAML_FIELD_UINT("consumer_gc_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, consumer_gc_ms),
    CYAML_FIELD_STRING_PTR("redis_password_file",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_conf_t, redis_password_file, 1, 4096),
    CYAML_FIELD_UINT("redis_db", CYAML_FLAG_OPTIONAL,
                     loyalty_conf_t, redis_db),
    CYAML_FIELD_STRING_PTR("log_level",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_conf_t, log_level, 1, 16),
    CYAML_FIELD_STRING_PTR("metrics",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_conf_t, metrics, 1, 80),
    CYAML_FIELD_MAPPING_PTR("identity",
                            CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                            loyalty_conf_t, identity,
                            loyalty_conf_identity_fields),
    CYAML_FIELD_END
};


static const cyaml_schema_value_t  loyalty_conf_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_POINTER, loyalty_conf_t,
                        loyalty_conf_fields),
};


/* defaults and bounds of the numeric keys; 0 in the YAML means unset */

static const loyalty_conf_num_t  loyalty_conf_main_nums[] = {
    { "claim_timeout_ms", offsetof(loyalty_conf_t, claim_timeout_ms),
      60000, 100, 86400000 },
    { "claim_interval_ms", offsetof(loyalty_conf_t, claim_interval_ms),
      5000, 50, 3600000 },
    { "block_ms", offsetof(loyalty_conf_t, block_ms), 2000, 10, 60000 },
    { "batch", offsetof(loyalty_conf_t, batch), 64, 1, 10000 },
    { "shutdown_timeout_ms", offsetof(loyalty_conf_t, shutdown_timeout_ms),
      10000, 0, 600000 },
    { "retry_base_ms", offsetof(loyalty_conf_t, retry_base_ms),
      1000, 10, 3600000 },
    { "retry_cap_ms", offsetof(loyalty_conf_t, retry_cap_ms),
      300000, 10, 86400000 },
    { "max_attempts", offsetof(loyalty_conf_t, max_attempts), 10, 1, 1000 },
    { "retry_interval_ms", offsetof(loyalty_conf_t, retry_interval_ms),
      500, 10, 60000 },
    { "trim_interval_ms", offsetof(loyalty_conf_t, trim_interval_ms),
      10000, 100, 3600000 },
    { "consumer_gc_ms", offsetof(loyalty_conf_t, consumer_gc_ms),
      3600000, 1000, 2592000000U },
    { "redis_db", offsetof(loyalty_conf_t, redis_db), 0, 0, 65535 },
    { NULL, 0, 0, 0, 0 }
};


static const loyalty_conf_num_t  loyalty_conf_dest_nums[] = {
    { "timeout_ms", offsetof(loyalty_dest_conf_t, timeout_ms),
      10000, 10, 600000 },
    { "connect_timeout_ms", offsetof(loyalty_dest_conf_t, connect_timeout_ms),
      3000, 10, 600000 },
    { "concurrency", offsetof(loyalty_dest_conf_t, concurrency),
      16, 1, 1024 },
    { NULL, 0, 0, 0, 0 }
};


static const char  *loyalty_conf_senders[] = { "standard", "generic",
    "shopify", "bigcommerce", "loyaltylion", "smile", "yotpo", "voyado",
    "salesforce", "stripe", NULL };


static const cyaml_config_t  loyalty_conf_cyaml = {
    .log_fn = loyalty_conf_cyaml_log,
    .mem_fn = cyaml_mem,
    .log_level = CYAML_LOG_ERROR,
    .flags = CYAML_CFG_DEFAULT,
};


/* libcyaml's error lines (with "line N, column M") become our message */

static void
loyalty_conf_cyaml_log(cyaml_log_t level, void *ctx, const char *fmt,
    va_list args)
{
    int                  n;
    char                *p;
    loyalty_conf_log_t  *log;

    log = ctx;

    if (level < CYAML_LOG_ERROR || log == NULL
        || log->used + 2 >= log->len)
    {
        return;
    }

    n = vsnprintf(log->buf + log->used, log->len - log->used, fmt, args);

    if (n < 0) {
        return;
    }

    log->used += (size_t) n;

    if (log->used >= log->len) {
        log->used = log->len - 1;
    }

    /* one line: newlines and indentation become "; " */
    for (p = log->buf; *p; p++) {
        if (*p == '\n' || *p == '\t') {
            *p = ' ';
        }
    }
}


loyalty_conf_t *
loyalty_conf_load(const char *path, char *err, size_t len)
{
    char                *p;
    unsigned             line;
    cyaml_err_t          rc;
    cyaml_config_t       cfg;
    loyalty_conf_t      *conf;
    loyalty_conf_log_t   log;
    char                 msg[1024];

    conf = NULL;
    msg[0] = '\0';
    log.buf = msg;
    log.len = sizeof(msg);
    log.used = 0;

    cfg = loyalty_conf_cyaml;
    cfg.log_ctx = &log;

    rc = cyaml_load_file(path, &cfg, &loyalty_conf_schema,
                         (cyaml_data_t **) &conf, NULL);

    if (rc != CYAML_OK) {
        loyalty_conf_tidy(msg);

        if (rc == CYAML_ERR_FILE_OPEN) {
            snprintf(err, len, "%s: cannot open: %s", path, strerror(errno));

        } else if ((p = strstr(msg, "(line: ")) != NULL
                   && sscanf(p, "(line: %u", &line) == 1)
        {
            snprintf(err, len, "%s:%u: %s", path, line, msg);

        } else {
            snprintf(err, len, "%s: %s%s%s", path, cyaml_strerror(rc),
                     msg[0] ? ": " : "", msg);
        }

        return NULL;
    }

    if (loyalty_conf_check(conf, msg, sizeof(msg)) != LOYALTY_OK) {
        snprintf(err, len, "%s: %s", path, msg);
        loyalty_conf_free(conf);
        return NULL;
    }

    return conf;
}


/*
 * "Load: Invalid uint64_t value: 'abc' Load: Backtrace: in mapping field
 * 'timeout_ms' (line: 7, column: 17) ..." becomes "Invalid uint64_t
 * value: 'abc'; in mapping field 'timeout_ms' (line: 7, column: 17) ..."
 */

static void
loyalty_conf_tidy(char *msg)
{
    size_t       n;
    char        *p;
    const char  *drop[] = { "Load: Backtrace:", "Load: ", NULL };
    const char **d;

    for (d = drop; *d != NULL; d++) {
        while ((p = strstr(msg, *d)) != NULL) {
            n = strlen(*d);
            if (d == drop) {
                p[0] = ';';
                memmove(p + 1, p + n, strlen(p + n) + 1);
            } else {
                memmove(p, p + n, strlen(p + n) + 1);
            }
        }
    }

    /* squeeze runs of spaces, drop " ;" and the trailing space */
    for (n = 0; msg[n]; n++) {
        while ((msg[n] == ' ' && (msg[n + 1] == ' ' || msg[n + 1] == ';'))
               || (n == 0 && msg[0] == ' '))
        {
            memmove(&msg[n], &msg[n + 1], strlen(&msg[n + 1]) + 1);
        }
    }

    n = strlen(msg);
    while (n > 0 && msg[n - 1] == ' ') {
        msg[--n] = '\0';
    }
}


void
loyalty_conf_free(loyalty_conf_t *conf)
{
    unsigned  i;

    if (conf == NULL) {
        return;
    }

    memset(conf->redis_pass, 0, sizeof(conf->redis_pass));
    loyalty_sf_conf_free(conf);
    loyalty_pull_conf_free(conf);

    for (i = 0; i < conf->destinations_count; i++) {
        if (conf->destinations[i].key != NULL) {
            loyalty_hmac_key_free(conf->destinations[i].key);
            conf->destinations[i].key = NULL;
        }
    }

    cyaml_free(&loyalty_conf_cyaml, &loyalty_conf_schema, conf, 0);
}


static int
loyalty_conf_check(loyalty_conf_t *conf, char *err, size_t len)
{
    int                   gc_set;
    unsigned              i, j, k;
    loyalty_str_t         s;
    loyalty_flow_conf_t  *f;
    loyalty_dest_conf_t  *d, *longest;

    gc_set = conf->consumer_gc_ms != 0;

    if (loyalty_conf_nums(loyalty_conf_main_nums, conf, "", err, len)
        != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    /* a consumer is removed only once a dead worker's entries had time
     * to be claimed; the default follows a long claim_timeout_ms */
    if (conf->consumer_gc_ms / 2 < conf->claim_timeout_ms) {
        if (gc_set) {
            snprintf(err, len, "consumer_gc_ms (%u) must be at least twice "
                     "claim_timeout_ms (%u)", conf->consumer_gc_ms,
                     conf->claim_timeout_ms);
            return LOYALTY_ERROR;
        }

        conf->consumer_gc_ms = conf->claim_timeout_ms * 2;
    }

    if (conf->retry_cap_ms < conf->retry_base_ms) {
        snprintf(err, len, "retry_cap_ms (%u) must be at least retry_base_ms "
                 "(%u)", conf->retry_cap_ms, conf->retry_base_ms);
        return LOYALTY_ERROR;
    }

    if (conf->log_level != NULL
        && loyalty_log_level_parse(conf->log_level) < 0)
    {
        snprintf(err, len, "log_level \"%s\": use error, warn, info or debug",
                 conf->log_level);
        return LOYALTY_ERROR;
    }

    if (loyalty_conf_redis(conf, err, len) != LOYALTY_OK
        || loyalty_conf_metrics(conf, err, len) != LOYALTY_OK
        || loyalty_conf_redis_password(conf, err, len) != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    for (i = 0; i < conf->stores_count; i++) {
        if (!loyalty_store_valid((u_char *) conf->stores[i],
                                 strlen(conf->stores[i])))
        {
            snprintf(err, len, "stores: \"%s\" is not a valid store name "
                     "([A-Za-z0-9._-]{1,64})", conf->stores[i]);
            return LOYALTY_ERROR;
        }

        if (loyalty_conf_has(conf->stores, i, conf->stores[i])) {
            snprintf(err, len, "stores: \"%s\" listed twice",
                     conf->stores[i]);
            return LOYALTY_ERROR;
        }
    }

    if (loyalty_identity_conf(conf, err, len) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    longest = NULL;

    for (i = 0; i < conf->destinations_count; i++) {
        d = &conf->destinations[i];

        for (j = 0; j < i; j++) {
            if (strcmp(conf->destinations[j].name, d->name) == 0) {
                snprintf(err, len, "destination \"%s\" defined twice",
                         d->name);
                return LOYALTY_ERROR;
            }
        }

        if (loyalty_conf_dest_check(d, err, len) != LOYALTY_OK) {
            return LOYALTY_ERROR;
        }

        /* a worker holds at most batch entries: a deeper backlog is
         * never gathered */
        if (d->bulk_threshold >= conf->batch) {
            snprintf(err, len, "destination \"%s\": bulk_threshold (%u) "
                     "must be below batch (%u), the entries a worker "
                     "holds", d->name, d->bulk_threshold, conf->batch);
            return LOYALTY_ERROR;
        }

        if (longest == NULL || d->timeout_ms > longest->timeout_ms) {
            longest = d;
        }
    }

    if (conf->claim_timeout_ms <= longest->timeout_ms) {
        snprintf(err, len, "claim_timeout_ms (%u) must exceed the longest "
                 "destination timeout_ms (%u, destination \"%s\"), or a "
                 "request still in flight could be claimed by another worker",
                 conf->claim_timeout_ms, longest->timeout_ms, longest->name);
        return LOYALTY_ERROR;
    }

    for (i = 0; i < conf->flows_count; i++) {
        f = &conf->flows[i];
        f->dest = NULL;

        for (j = 0; j < conf->destinations_count; j++) {
            if (strcmp(conf->destinations[j].name, f->to) == 0) {
                f->dest = &conf->destinations[j];
            }
        }

        if (f->dest == NULL) {
            snprintf(err, len, "flows[%u]: \"to: %s\" names no destination",
                     i, f->to);
            return LOYALTY_ERROR;
        }

        if (f->dest->kind == LOYALTY_DEST_SALESFORCE) {
            if (loyalty_sf_conf_flow(f, i, err, len) != LOYALTY_OK) {
                return LOYALTY_ERROR;
            }

        } else if (f->object || f->external_id || f->key || f->fields
                   || f->append || f->lifecycle)
        {
            snprintf(err, len, "flows[%u]: object, external_id, key, "
                     "fields, append and lifecycle are for salesforce "
                     "destinations", i);
            return LOYALTY_ERROR;
        }

        for (k = 0; k < f->stores_count; k++) {
            if (!loyalty_conf_has(conf->stores, conf->stores_count,
                                  f->stores[k]))
            {
                snprintf(err, len, "flows[%u]: store \"%s\" is not in "
                         "stores", i, f->stores[k]);
                return LOYALTY_ERROR;
            }
        }

        for (k = 0; k < f->from_count; k++) {
            if (!loyalty_conf_has((char **) loyalty_conf_senders, 10,
                                  f->from[k]))
            {
                snprintf(err, len, "flows[%u]: unknown sender \"%s\" in "
                         "from", i, f->from[k]);
                return LOYALTY_ERROR;
            }
        }

        for (k = 0; k < f->on_count; k++) {
            s.data = (u_char *) f->on[k];
            s.len = strlen(f->on[k]);

            if (strcmp(f->on[k], "unknown") != 0
                && strcmp(loyalty_canonical_type(&s), "unknown") == 0)
            {
                snprintf(err, len, "flows[%u]: unknown event type \"%s\" "
                         "in on (see docs/envelope.md)", i, f->on[k]);
                return LOYALTY_ERROR;
            }
        }
    }

    if (loyalty_conf_flow_ids(conf, err, len) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    return loyalty_pull_conf_check(conf, err, len);
}


/*
 * Deliveries are recorded per flow (a retry skips the flows that
 * succeeded): each flow gets an id, kept in the retry's _done, so it
 * must stay the same across restarts and edits of other flows.  The id
 * is the flow's name, else its destination's name when it is the only
 * flow there, else "to:object" for salesforce.  Webhook flows to one
 * destination send the same request, so unnamed ones share one id and
 * one delivery.  Two flows with one id are refused otherwise.
 */

static int
loyalty_conf_flow_ids(loyalty_conf_t *conf, char *err, size_t len)
{
    unsigned              i, j, n, slots;
    const char           *p;
    loyalty_flow_conf_t  *f, *g;

    slots = 0;

    for (i = 0; i < conf->flows_count; i++) {
        f = &conf->flows[i];

        if (f->name != NULL) {
            for (p = f->name; *p; p++) {
                if (!isalnum((u_char) *p) && strchr("_.:-", *p) == NULL) {
                    snprintf(err, len, "flows[%u]: name \"%s\" may hold "
                             "letters, digits and _ . : - only", i,
                             f->name);
                    return LOYALTY_ERROR;
                }
            }

            for (j = 0; j < conf->destinations_count; j++) {
                if (strcmp(conf->destinations[j].name, f->name) == 0
                    && &conf->destinations[j] != f->dest)
                {
                    snprintf(err, len, "flows[%u]: name \"%s\" is another "
                             "destination's name", i, f->name);
                    return LOYALTY_ERROR;
                }
            }

            snprintf(f->id, sizeof(f->id), "%s", f->name);
            continue;
        }

        for (j = 0, n = 0; j < conf->flows_count; j++) {
            n += (conf->flows[j].dest == f->dest);
        }

        if (n > 1 && f->dest->kind == LOYALTY_DEST_SALESFORCE) {
            snprintf(f->id, sizeof(f->id), "%s:%s", f->to, f->object);
        } else {
            snprintf(f->id, sizeof(f->id), "%s", f->to);
        }
    }

    for (i = 0; i < conf->flows_count; i++) {
        f = &conf->flows[i];
        f->slot = slots;

        for (j = 0; j < i; j++) {
            g = &conf->flows[j];

            if (strcmp(f->id, g->id) != 0) {
                continue;
            }

            if (f->dest == g->dest && f->dest->kind == LOYALTY_DEST_WEBHOOK
                && f->name == NULL && g->name == NULL)
            {
                f->slot = g->slot;
                break;
            }

            snprintf(err, len, "flows[%u]: flows[%u] has the same id "
                     "\"%s\"; give one of them a distinct name", i, j,
                     f->id);
            return LOYALTY_ERROR;
        }

        if (f->slot == slots) {
            slots++;
        }
    }

    return LOYALTY_OK;
}


static int
loyalty_conf_nums(const loyalty_conf_num_t *t, void *base, const char *where,
    char *err, size_t len)
{
    uint32_t  *v;

    for ( /* void */ ; t->key != NULL; t++) {
        v = (uint32_t *) ((u_char *) base + t->offset);

        if (*v == 0) {
            *v = t->def;
            continue;
        }

        if (*v < t->min || *v > t->max) {
            snprintf(err, len, "%s%s: %u is out of range [%u, %u]", where,
                     t->key, *v, t->min, t->max);
            return LOYALTY_ERROR;
        }
    }

    return LOYALTY_OK;
}


static int
loyalty_conf_dest_check(loyalty_dest_conf_t *d, char *err, size_t len)
{
    FILE           *fp;
    size_t          n, keylen;
    loyalty_err_t   e;
    loyalty_str_t   secret;
    char            where[96], line[512];
    u_char          key[512];

    snprintf(where, sizeof(where), "destination \"%s\": ", d->name);

    if (loyalty_conf_nums(loyalty_conf_dest_nums, d, where, err, len)
        != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    if (d->connect_timeout_ms > d->timeout_ms) {
        d->connect_timeout_ms = d->timeout_ms;
    }

    /* rate: requests per second shared by all workers, 0 = no limit */
    if (!(d->rate >= 0 && d->rate <= 100000)) {
        snprintf(err, len, "%srate: %g is out of range [0, 100000] "
                 "(requests per second, 0: no limit)", where, d->rate);
        return LOYALTY_ERROR;
    }

    if (d->rate > 0 && d->rate < 0.001) {
        snprintf(err, len, "%srate: %g is below 0.001 (one request in "
                 "1000 s)", where, d->rate);
        return LOYALTY_ERROR;
    }

    if (d->rate == 0 && d->burst != 0) {
        snprintf(err, len, "%sburst needs a rate", where);
        return LOYALTY_ERROR;
    }

    if (d->burst > 100000) {
        snprintf(err, len, "%sburst: %u is out of range [1, 100000]", where,
                 d->burst);
        return LOYALTY_ERROR;
    }

    if (d->rate > 0 && d->burst == 0) {
        d->burst = 1;
    }

    if (strncmp(d->url, "http://", 7) != 0
        && strncmp(d->url, "https://", 8) != 0)
    {
        snprintf(err, len, "%surl \"%s\" is not an http:// or https:// URL",
                 where, d->url);
        return LOYALTY_ERROR;
    }

    if (strcmp(d->type, "salesforce") == 0) {
        d->kind = LOYALTY_DEST_SALESFORCE;
        return loyalty_sf_conf_dest(d, err, len);
    }

    if (strcmp(d->type, "webhook") != 0) {
        snprintf(err, len, "%stype \"%s\" is not supported (webhook, "
                 "salesforce)", where, d->type);
        return LOYALTY_ERROR;
    }

    d->kind = LOYALTY_DEST_WEBHOOK;

    if (d->auth || d->client_id || d->client_secret_file || d->username
        || d->audience || d->private_key_file || d->api_version
        || d->batch_window_ms || d->limit_pause_ms || d->bulk_threshold
        || d->bulk_timeout_ms || d->budget_reserve || d->backfill_reserve
        || d->budget_poll_ms || d->org_concurrency)
    {
        snprintf(err, len, "%sauth, client_id, client_secret_file, "
                 "username, audience, private_key_file, api_version, "
                 "batch_window_ms, limit_pause_ms, bulk_*, budget_*, "
                 "backfill_reserve and org_concurrency are for type "
                 "salesforce", where);
        return LOYALTY_ERROR;
    }

    if (d->secret_file == NULL) {
        snprintf(err, len, "%ssecret_file is required (the Standard "
                 "Webhooks key)", where);
        return LOYALTY_ERROR;
    }

    fp = fopen(d->secret_file, "r");
    if (fp == NULL) {
        snprintf(err, len, "%ssecret_file \"%s\": %s", where, d->secret_file,
                 strerror(errno));
        return LOYALTY_ERROR;
    }

    /* the first line signs; a second line (rotation) is for receivers */
    if (fgets(line, sizeof(line), fp) == NULL) {
        line[0] = '\0';
    }

    fclose(fp);

    n = strlen(line);
    while (n > 0 && isspace((u_char) line[n - 1])) {
        line[--n] = '\0';
    }

    if (strncmp(line, "whsec_", 6) != 0) {
        snprintf(err, len, "%ssecret_file \"%s\": the first line must be a "
                 "Standard Webhooks key (whsec_<base64>)", where,
                 d->secret_file);
        return LOYALTY_ERROR;
    }

    secret.data = (u_char *) line;
    secret.len = n;

    if (loyalty_sig_standard_key(&secret, key, &keylen, &e) != LOYALTY_OK
        || keylen == 0)
    {
        snprintf(err, len, "%ssecret_file \"%s\": bad key: %s", where,
                 d->secret_file, keylen == 0 ? "empty" : e.msg);
        return LOYALTY_ERROR;
    }

    d->key = loyalty_hmac_key_create(LOYALTY_MD_SHA256, key, keylen, &e);

    memset(key, 0, sizeof(key));
    memset(line, 0, sizeof(line));

    if (d->key == NULL) {
        snprintf(err, len, "%s%s", where, e.msg);
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}


/* "host:port", "host" (6379) or "unix:/path" */

static int
loyalty_conf_redis(loyalty_conf_t *conf, char *err, size_t len)
{
    char   *colon, *end;
    long    port;
    size_t  n;

    if (conf->redis == NULL) {
        strcpy(conf->redis_host, "127.0.0.1");
        conf->redis_port = 6379;
        return LOYALTY_OK;
    }

    if (strncmp(conf->redis, "unix:", 5) == 0) {
        if (strlen(conf->redis + 5) >= sizeof(conf->redis_host)
            || conf->redis[5] != '/')
        {
            snprintf(err, len, "redis \"%s\": bad unix socket path",
                     conf->redis);
            return LOYALTY_ERROR;
        }

        strcpy(conf->redis_host, conf->redis + 5);
        conf->redis_port = 0;
        return LOYALTY_OK;
    }

    colon = strrchr(conf->redis, ':');
    n = colon ? (size_t) (colon - conf->redis) : strlen(conf->redis);
    port = 6379;

    if (colon != NULL) {
        errno = 0;
        port = strtol(colon + 1, &end, 10);
        if (errno || *end != '\0' || end == colon + 1 || port < 1
            || port > 65535)
        {
            snprintf(err, len, "redis \"%s\": bad port", conf->redis);
            return LOYALTY_ERROR;
        }
    }

    if (n == 0 || n >= sizeof(conf->redis_host)) {
        snprintf(err, len, "redis \"%s\": bad host", conf->redis);
        return LOYALTY_ERROR;
    }

    memcpy(conf->redis_host, conf->redis, n);
    conf->redis_host[n] = '\0';
    conf->redis_port = (int) port;

    return LOYALTY_OK;
}


/*
 * metrics: "PORT" (127.0.0.1), "IPv4:PORT" or "[IPv6]:PORT".  Only
 * numeric addresses: a host name could resolve to a public interface,
 * and ":PORT" or "*:PORT" would mean every interface without saying so.
 * A non-loopback address is accepted only when written out as an IP
 * (0.0.0.0:9464 included): /metrics has no authentication.
 */

static int
loyalty_conf_metrics(loyalty_conf_t *conf, char *err, size_t len)
{
    char           *m, *colon, *end;
    long            port;
    size_t          n;
    struct in_addr  a4;
    u_char          a6[16];

    m = conf->metrics;
    conf->metrics_port = 0;
    conf->metrics_host[0] = '\0';

    if (m == NULL) {
        return LOYALTY_OK;
    }

    colon = strrchr(m, ':');

    if (colon == NULL) {
        strcpy(conf->metrics_host, "127.0.0.1");
        colon = m - 1;

    } else if (m[0] == '[') {
        n = (size_t) (colon - m);

        if (n < 3 || m[n - 1] != ']' || n - 2 >= sizeof(conf->metrics_host)) {
            goto bad;
        }

        memcpy(conf->metrics_host, m + 1, n - 2);
        conf->metrics_host[n - 2] = '\0';

        if (inet_pton(AF_INET6, conf->metrics_host, a6) != 1) {
            goto bad;
        }

    } else {
        n = (size_t) (colon - m);

        if (n == 0 || n >= sizeof(conf->metrics_host)) {
            goto bad;
        }

        memcpy(conf->metrics_host, m, n);
        conf->metrics_host[n] = '\0';

        if (inet_pton(AF_INET, conf->metrics_host, &a4) != 1) {
            goto bad;
        }
    }

    errno = 0;
    port = strtol(colon + 1, &end, 10);

    if (errno || *end != '\0' || end == colon + 1 || port < 1
        || port > 65535 || !isdigit((u_char) colon[1]))
    {
        snprintf(err, len, "metrics \"%s\": bad port (1-65535)", m);
        return LOYALTY_ERROR;
    }

    conf->metrics_port = (int) port;

    return LOYALTY_OK;

bad:

    snprintf(err, len, "metrics \"%s\": use PORT (loopback), IPv4:PORT "
             "or [IPv6]:PORT with a numeric address; a non-loopback "
             "address must be written out (e.g. 0.0.0.0:9464)", m);
    return LOYALTY_ERROR;
}


int
loyalty_conf_metrics_loopback(loyalty_conf_t *conf)
{
    return strncmp(conf->metrics_host, "127.", 4) == 0
           || strcmp(conf->metrics_host, "::1") == 0;
}


/*
 * redis_password_file: the first line is the password, or "user:password"
 * for an ACL user (split at the first colon).  Read once, never logged.
 */

static int
loyalty_conf_redis_password(loyalty_conf_t *conf, char *err, size_t len)
{
    FILE    *fp;
    size_t   n;
    char    *colon;
    char     line[800];

    if (conf->redis_password_file == NULL) {
        return LOYALTY_OK;
    }

    fp = fopen(conf->redis_password_file, "r");
    if (fp == NULL) {
        snprintf(err, len, "redis_password_file \"%s\": %s",
                 conf->redis_password_file, strerror(errno));
        return LOYALTY_ERROR;
    }

    if (fgets(line, sizeof(line), fp) == NULL) {
        line[0] = '\0';
    }

    fclose(fp);

    n = strlen(line);
    while (n > 0 && isspace((u_char) line[n - 1])) {
        line[--n] = '\0';
    }

    colon = strchr(line, ':');

    if (colon != NULL) {
        *colon++ = '\0';
    }

    if (n == 0 || (colon != NULL && (line[0] == '\0' || *colon == '\0'))
        || strlen(line) >= sizeof(conf->redis_user)
        || strlen(colon ? colon : line) >= sizeof(conf->redis_pass))
    {
        memset(line, 0, sizeof(line));
        snprintf(err, len, "redis_password_file \"%s\": the first line "
                 "must be a password or user:password (at most %u bytes)",
                 conf->redis_password_file,
                 (unsigned) sizeof(conf->redis_pass) - 1);
        return LOYALTY_ERROR;
    }

    if (colon != NULL) {
        strcpy(conf->redis_user, line);
        strcpy(conf->redis_pass, colon);

    } else {
        strcpy(conf->redis_pass, line);
    }

    memset(line, 0, sizeof(line));

    return LOYALTY_OK;
}


/*
 * The commands every new Redis connection sends first: which 0 AUTH,
 * 1 SELECT.  Returns argc, 0 when the command is not needed.
 */

int
loyalty_conf_redis_argv(loyalty_conf_t *conf, int which, const char **argv,
    size_t *lens)
{
    int          i, n;
    static char  db[16];

    n = 0;

    if (which == 0 && conf->redis_pass[0] != '\0') {
        argv[n++] = "AUTH";

        if (conf->redis_user[0] != '\0') {
            argv[n++] = conf->redis_user;
        }

        argv[n++] = conf->redis_pass;

    } else if (which == 1 && conf->redis_db != 0) {
        snprintf(db, sizeof(db), "%u", conf->redis_db);
        argv[n++] = "SELECT";
        argv[n++] = db;
    }

    for (i = 0; i < n; i++) {
        lens[i] = strlen(argv[i]);
    }

    return n;
}


static int
loyalty_conf_has(char **list, unsigned n, const char *s)
{
    unsigned  i;

    for (i = 0; i < n; i++) {
        if (list[i] != NULL && strcmp(list[i], s) == 0) {
            return 1;
        }
    }

    return 0;
}
