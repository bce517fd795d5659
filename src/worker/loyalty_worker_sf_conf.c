/*
 * Copyright (C) loyalty-edge authors
 *
 * The checks of a salesforce destination and of its flow (run by
 * loyalty_worker_conf.c for -t, start and reload): credentials are read
 * from their files (and a private key parsed) so a bad one fails here,
 * not at the first event; a flow's `fields` become the field map of
 * loyalty_sf_map.h.  Messages name the key; secrets never appear.
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loyalty_worker_sf.h"
#include "loyalty_sf_jwt.h"
#include "loyalty_sf_map.h"


#define LOYALTY_SF_API_DEFAULT      "62.0"
#define LOYALTY_SF_WINDOW_DEFAULT   200
#define LOYALTY_SF_PAUSE_DEFAULT    60000
#define LOYALTY_SF_BULK_TIMEOUT     600000
#define LOYALTY_SF_BUDGET_POLL      60000
#define LOYALTY_SF_ORG_CONCURRENCY  25


static const char  *loyalty_sf_keys[] = { "ext_id", "store_cid", "email",
    "id", "person", NULL };

/* envelope values a field may come from, as "$name" */
static const char  *loyalty_sf_conf_envelope[] = { "id", "src", "store", "type",
    "occurred", "corr", "topic", "ext_id", "person", NULL };


static int loyalty_sf_conf_file(const char *path, const char *key,
    const char *where, char *err, size_t len);
static int loyalty_sf_conf_in(const char **list, const char *s);
static int loyalty_sf_conf_entry(loyalty_field_conf_t *fc,
    loyalty_sf_map_field_t *m, const char *where, char *err, size_t len);
static int loyalty_sf_conf_bulk(loyalty_dest_conf_t *d, const char *where,
    char *err, size_t len);


/* the keys that refine a field's type: on the right type, in range */

int
loyalty_sf_conf_typing(loyalty_field_conf_t *fc, const void *type,
    const char *where, char *err, size_t len)
{
    const loyalty_sf_field_type_t  *t;

    t = type;

    if ((fc->scale || fc->precision || fc->minor_units)
        && t->type != LOYALTY_SF_DECIMAL)
    {
        snprintf(err, len, "%s%s: scale, precision and minor_units are "
                 "for a decimal", where, fc->field);
        return LOYALTY_ERROR;
    }

    if (fc->precision > 18 || fc->scale > 17
        || (fc->precision && fc->scale >= fc->precision))
    {
        snprintf(err, len, "%s%s: precision (at most 18) must exceed "
                 "scale", where, fc->field);
        return LOYALTY_ERROR;
    }

    if (fc->country != NULL && t->type != LOYALTY_SF_PHONE) {
        snprintf(err, len, "%s%s: country is for a phone", where,
                 fc->field);
        return LOYALTY_ERROR;
    }

    if (fc->max_length > 131072) {
        snprintf(err, len, "%s%s: max_length %u is out of range "
                 "[1, 131072]", where, fc->field, fc->max_length);
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}


/* Salesforce API names: letters, digits, underscores (Foo__c) */

int
loyalty_sf_api_name(const char *s)
{
    if (!isalpha((u_char) *s)) {
        return 0;
    }

    for ( /* void */ ; *s; s++) {
        if (!isalnum((u_char) *s) && *s != '_') {
            return 0;
        }
    }

    return 1;
}


static int
loyalty_sf_conf_in(const char **list, const char *s)
{
    for ( /* void */ ; *list != NULL; list++) {
        if (strcmp(*list, s) == 0) {
            return 1;
        }
    }

    return 0;
}


/* a readable, non-empty secret file */

static int
loyalty_sf_conf_file(const char *path, const char *key, const char *where,
    char *err, size_t len)
{
    int    c;
    FILE  *fp;

    fp = fopen(path, "r");
    if (fp == NULL) {
        snprintf(err, len, "%s%s \"%s\": %s", where, key, path,
                 strerror(errno));
        return LOYALTY_ERROR;
    }

    do {
        c = fgetc(fp);
    } while (c != EOF && isspace(c));

    fclose(fp);

    if (c == EOF) {
        snprintf(err, len, "%s%s \"%s\" is empty", where, key, path);
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}


/* from or value, lookup: the parts of an entry beyond its type */

static int
loyalty_sf_conf_entry(loyalty_field_conf_t *fc, loyalty_sf_map_field_t *m,
    const char *where, char *err, size_t len)
{
    loyalty_json_t  *v;

    if ((fc->from == NULL) == (fc->value == NULL)) {
        snprintf(err, len, "%s%s: give either from (an event value) or "
                 "value (a fixed one)", where, fc->field);
        return LOYALTY_ERROR;
    }

    if (fc->type == NULL && fc->lookup == NULL && fc->value == NULL) {
        snprintf(err, len, "%s%s: type is required", where, fc->field);
        return LOYALTY_ERROR;
    }

    if (fc->value != NULL) {
        v = calloc(1, sizeof(loyalty_json_t));
        if (v == NULL) {
            snprintf(err, len, "out of memory");
            return LOYALTY_ERROR;
        }

        v->type = LOYALTY_JSON_STRING;
        v->text.data = (u_char *) fc->value;
        v->text.len = strlen(fc->value);
        v->plain = 1;
        fc->constant = v;
        m->constant = v;
    }

    if (fc->lookup == NULL) {
        return LOYALTY_OK;
    }

    if (!loyalty_sf_api_name(fc->lookup->object)
        || !loyalty_sf_api_name(fc->lookup->external_id))
    {
        snprintf(err, len, "%s%s: lookup object \"%s\" and external_id "
                 "\"%s\" must be Salesforce API names", where, fc->field,
                 fc->lookup->object, fc->lookup->external_id);
        return LOYALTY_ERROR;
    }

    if ((fc->type != NULL && strcmp(fc->type, "text") != 0)
        || fc->nullable)
    {
        snprintf(err, len, "%s%s: a lookup writes the other record's "
                 "external id: type text (the default), not nullable",
                 where, fc->field);
        return LOYALTY_ERROR;
    }

    m->lookup_object = fc->lookup->object;
    m->lookup_external_id = fc->lookup->external_id;

    return LOYALTY_OK;
}


/* Bulk API and the daily budget guard (loyalty_worker_sf_bulk.c,
 * loyalty_worker_sf_budget.c) */

static int
loyalty_sf_conf_bulk(loyalty_dest_conf_t *d, const char *where, char *err,
    size_t len)
{
    if (d->bulk_threshold > 0 && d->bulk_threshold < 2) {
        snprintf(err, len, "%sbulk_threshold: %u is out of range (0 = "
                 "never, or at least 2)", where, d->bulk_threshold);
        return LOYALTY_ERROR;
    }

    if (d->bulk_timeout_ms == 0) {
        d->bulk_timeout_ms = LOYALTY_SF_BULK_TIMEOUT;

    } else if (d->bulk_timeout_ms < 1000 || d->bulk_timeout_ms > 86400000) {
        snprintf(err, len, "%sbulk_timeout_ms: %u is out of range "
                 "[1000, 86400000]", where, d->bulk_timeout_ms);
        return LOYALTY_ERROR;
    }

    if (d->budget_reserve > 50) {
        snprintf(err, len, "%sbudget_reserve: %u is out of range [0, 50] "
                 "(percent of the daily API limit kept for others)", where,
                 d->budget_reserve);
        return LOYALTY_ERROR;
    }

    if (d->backfill_reserve == 0) {
        d->backfill_reserve = 2 * d->budget_reserve;

    } else if (d->backfill_reserve > 90
               || d->backfill_reserve < d->budget_reserve)
    {
        snprintf(err, len, "%sbackfill_reserve: %u must be in [%u, 90]: "
                 "backfill pauses before the realtime flows "
                 "(budget_reserve %u)", where, d->backfill_reserve,
                 d->budget_reserve, d->budget_reserve);
        return LOYALTY_ERROR;
    }

    if (d->org_concurrency == 0) {
        d->org_concurrency = LOYALTY_SF_ORG_CONCURRENCY;

    } else if (d->org_concurrency > 1000) {
        snprintf(err, len, "%sorg_concurrency: %u is out of range "
                 "[1, 1000]", where, d->org_concurrency);
        return LOYALTY_ERROR;
    }

    if (d->budget_poll_ms == 0) {
        d->budget_poll_ms = LOYALTY_SF_BUDGET_POLL;

    } else if (d->budget_poll_ms < 100 || d->budget_poll_ms > 3600000) {
        snprintf(err, len, "%sbudget_poll_ms: %u is out of range "
                 "[100, 3600000]", where, d->budget_poll_ms);
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}


int
loyalty_sf_conf_dest(loyalty_dest_conf_t *d, char *err, size_t len)
{
    FILE           *fp;
    size_t          n;
    EVP_PKEY       *key;
    loyalty_err_t   e;
    const char     *p;
    char            where[96];
    u_char          pem[16384];

    snprintf(where, sizeof(where), "destination \"%s\": ", d->name);

    if (d->secret_file != NULL) {
        snprintf(err, len, "%ssecret_file is for webhooks (salesforce: "
                 "client_secret_file or private_key_file)", where);
        return LOYALTY_ERROR;
    }

    if (d->api_version == NULL) {
        d->api_version = strdup(LOYALTY_SF_API_DEFAULT);
        if (d->api_version == NULL) {
            snprintf(err, len, "out of memory");
            return LOYALTY_ERROR;
        }
    }

    for (p = d->api_version; isdigit((u_char) *p); p++) { /* void */ }

    if (p == d->api_version || strcmp(p, ".0") != 0
        || atoi(d->api_version) < 46)
    {
        snprintf(err, len, "%sapi_version \"%s\": use NN.0, 46.0 or later "
                 "(sObject Collections upsert)", where, d->api_version);
        return LOYALTY_ERROR;
    }

    if (d->batch_window_ms == 0) {
        d->batch_window_ms = LOYALTY_SF_WINDOW_DEFAULT;

    } else if (d->batch_window_ms > 60000) {
        snprintf(err, len, "%sbatch_window_ms: %u is out of range "
                 "[1, 60000]", where, d->batch_window_ms);
        return LOYALTY_ERROR;
    }

    if (d->limit_pause_ms == 0) {
        d->limit_pause_ms = LOYALTY_SF_PAUSE_DEFAULT;

    } else if (d->limit_pause_ms < 1000 || d->limit_pause_ms > 3600000) {
        snprintf(err, len, "%slimit_pause_ms: %u is out of range "
                 "[1000, 3600000]", where, d->limit_pause_ms);
        return LOYALTY_ERROR;
    }

    if (loyalty_sf_conf_bulk(d, where, err, len) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    if (d->auth == NULL) {
        snprintf(err, len, "%sauth is required (client_credentials or "
                 "jwt_bearer)", where);
        return LOYALTY_ERROR;
    }

    if (d->client_id == NULL) {
        snprintf(err, len, "%sclient_id is required (the connected app's "
                 "consumer key)", where);
        return LOYALTY_ERROR;
    }

    if (strcmp(d->auth, "client_credentials") == 0) {
        if (d->client_secret_file == NULL) {
            snprintf(err, len, "%sauth client_credentials needs "
                     "client_secret_file", where);
            return LOYALTY_ERROR;
        }

        if (d->username || d->audience || d->private_key_file) {
            snprintf(err, len, "%susername, audience and private_key_file "
                     "are for auth jwt_bearer", where);
            return LOYALTY_ERROR;
        }

        return loyalty_sf_conf_file(d->client_secret_file,
                                    "client_secret_file", where, err, len);
    }

    if (strcmp(d->auth, "jwt_bearer") != 0) {
        snprintf(err, len, "%sauth \"%s\": use client_credentials or "
                 "jwt_bearer", where, d->auth);
        return LOYALTY_ERROR;
    }

    if (d->username == NULL || d->audience == NULL
        || d->private_key_file == NULL)
    {
        snprintf(err, len, "%sauth jwt_bearer needs username, audience "
                 "and private_key_file", where);
        return LOYALTY_ERROR;
    }

    if (d->client_secret_file != NULL) {
        snprintf(err, len, "%sclient_secret_file is for auth "
                 "client_credentials", where);
        return LOYALTY_ERROR;
    }

    fp = fopen(d->private_key_file, "r");
    if (fp == NULL) {
        snprintf(err, len, "%sprivate_key_file \"%s\": %s", where,
                 d->private_key_file, strerror(errno));
        return LOYALTY_ERROR;
    }

    n = fread(pem, 1, sizeof(pem), fp);
    fclose(fp);

    memset(&e, 0, sizeof(e));
    key = loyalty_sf_jwt_key(pem, n, &e);
    memset(pem, 0, sizeof(pem));

    if (key == NULL) {
        snprintf(err, len, "%sprivate_key_file \"%s\": %s", where,
                 d->private_key_file, e.msg);
        return LOYALTY_ERROR;
    }

    EVP_PKEY_free(key);

    return LOYALTY_OK;
}


int
loyalty_sf_conf_flow(loyalty_flow_conf_t *f, unsigned i, char *err,
    size_t len)
{
    size_t                   n;
    unsigned                 k, j;
    loyalty_sf_map_field_t  *map, *m;
    loyalty_field_conf_t    *fc;
    char                     where[64];

    snprintf(where, sizeof(where), "flows[%u]: ", i);

    if (f->object != NULL && loyalty_sf_is_event(f->object)) {
        /* a platform event is published: no record to upsert */
        if (f->external_id != NULL || f->key != NULL || f->lifecycle) {
            snprintf(err, len, "%sobject %s is a platform event: it is "
                     "published, so external_id, key and lifecycle do not "
                     "apply", where, f->object);
            return LOYALTY_ERROR;
        }

        f->append = 1;

    } else if (f->object == NULL || f->external_id == NULL
               || f->key == NULL)
    {
        snprintf(err, len, "%sa salesforce flow needs object, external_id "
                 "and key", where);
        return LOYALTY_ERROR;
    }

    if (!loyalty_sf_api_name(f->object)
        || (f->external_id && !loyalty_sf_api_name(f->external_id)))
    {
        snprintf(err, len, "%sobject \"%s\" and external_id \"%s\" must be "
                 "Salesforce API names ([A-Za-z][A-Za-z0-9_]*)", where,
                 f->object, f->external_id);
        return LOYALTY_ERROR;
    }

    if (f->key != NULL && !loyalty_sf_conf_in(loyalty_sf_keys, f->key)) {
        snprintf(err, len, "%skey \"%s\": use ext_id, store_cid, email or "
                 "id (or person: the identity map's id)", where, f->key);
        return LOYALTY_ERROR;
    }

    /* the identity map resolves the event's person first */
    f->person = (f->key != NULL && strcmp(f->key, "person") == 0);

    if (f->fields_count == 0) {
        snprintf(err, len, "%sfields: at least one field", where);
        return LOYALTY_ERROR;
    }

    if (f->append && f->lifecycle) {
        snprintf(err, len, "%sappend (one record per event) and lifecycle "
                 "(a person's record) do not go together", where);
        return LOYALTY_ERROR;
    }

    map = calloc(f->fields_count, sizeof(loyalty_sf_map_field_t));
    f->map_from = calloc(f->fields_count, sizeof(char *));
    f->map = map;

    if (map == NULL || f->map_from == NULL) {
        snprintf(err, len, "out of memory");
        return LOYALTY_ERROR;
    }

    for (k = 0; k < f->fields_count; k++) {
        fc = &f->fields[k];
        m = &map[k];

        snprintf(where, sizeof(where), "flows[%u].fields[%u]: ", i, k);

        if (!loyalty_sf_api_name(fc->field)) {
            snprintf(err, len, "%sfield \"%s\" is not a Salesforce API "
                     "name", where, fc->field);
            return LOYALTY_ERROR;
        }

        if (f->external_id && strcasecmp(fc->field, f->external_id) == 0) {
            snprintf(err, len, "%s%s is the external_id: its value comes "
                     "from key, it cannot be a mapped field too", where,
                     fc->field);
            return LOYALTY_ERROR;
        }

        for (j = 0; j < k; j++) {
            if (strcasecmp(f->fields[j].field, fc->field) == 0) {
                snprintf(err, len, "%sfield %s is mapped twice", where,
                         fc->field);
                return LOYALTY_ERROR;
            }
        }

        if (loyalty_sf_conf_entry(fc, m, where, err, len) != LOYALTY_OK) {
            return LOYALTY_ERROR;
        }

        if (fc->type == NULL) {
            m->type.type = LOYALTY_SF_TEXT;

        } else if (loyalty_sf_type_parse(fc->type, &m->type.type)
                   != LOYALTY_OK)
        {
            snprintf(err, len, "%s%s: unknown type \"%s\" (text, integer, "
                     "decimal, boolean, date, datetime, picklist, email, "
                     "phone)", where, fc->field, fc->type);
            return LOYALTY_ERROR;
        }

        if (fc->owner == NULL) {
            m->owner = LOYALTY_SF_OWNER_EITHER;

        } else if (loyalty_sf_owner_parse(fc->owner, &m->owner)
                   != LOYALTY_OK)
        {
            snprintf(err, len, "%s%s: unknown owner \"%s\" (loyalty, crm, "
                     "either)", where, fc->field, fc->owner);
            return LOYALTY_ERROR;
        }

        if (m->type.type == LOYALTY_SF_PICKLIST && fc->values_count == 0) {
            snprintf(err, len, "%s%s: a picklist needs values", where,
                     fc->field);
            return LOYALTY_ERROR;
        }

        if (m->type.type != LOYALTY_SF_PICKLIST && fc->values_count != 0) {
            snprintf(err, len, "%s%s: values are for a picklist", where,
                     fc->field);
            return LOYALTY_ERROR;
        }

        if (loyalty_sf_conf_typing(fc, &m->type, where, err, len)
            != LOYALTY_OK)
        {
            return LOYALTY_ERROR;
        }

        /* "$occurred": the envelope's value, a "$" member at apply time */
        if (fc->from == NULL) {
            /* a fixed value (checked above) */

        } else if (fc->from[0] == '$') {
            if (!loyalty_sf_conf_in(loyalty_sf_conf_envelope, fc->from + 1)) {
                snprintf(err, len, "%s%s: from \"%s\": the envelope values "
                         "are $id, $src, $store, $type, $occurred, $corr, "
                         "$topic, $ext_id, $person", where, fc->field,
                         fc->from);
                return LOYALTY_ERROR;
            }

            if (strcmp(fc->from, "$person") == 0) {
                f->person = 1;
            }

            n = strlen(fc->from) + 2;
            f->map_from[k] = malloc(n);
            if (f->map_from[k] == NULL) {
                snprintf(err, len, "out of memory");
                return LOYALTY_ERROR;
            }

            snprintf(f->map_from[k], n, "$.%s", fc->from + 1);
            m->from = f->map_from[k];

        } else {
            if (fc->from[0] == '.' || strstr(fc->from, "..") != NULL
                || fc->from[strlen(fc->from) - 1] == '.')
            {
                snprintf(err, len, "%s%s: from \"%s\" is not a path like "
                         "customer.email", where, fc->field, fc->from);
                return LOYALTY_ERROR;
            }

            m->from = fc->from;
        }

        m->field = fc->field;
        m->type.max_length = fc->max_length;
        m->type.precision = fc->precision;
        m->type.scale = fc->scale;
        m->type.minor_units = fc->minor_units ? 1 : 0;
        m->type.nullable = fc->nullable ? 1 : 0;
        m->type.allowed = (const char *const *) fc->values;
        m->type.n_allowed = fc->values_count;
        m->type.country = fc->country;
    }

    if (f->lifecycle != NULL
        && loyalty_sf_lifecycle_conf(f, i, err, len) != LOYALTY_OK)
    {
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}


void
loyalty_sf_conf_free(loyalty_conf_t *conf)
{
    unsigned              i, k;
    loyalty_flow_conf_t  *f;

    for (i = 0; i < conf->flows_count; i++) {
        f = &conf->flows[i];

        if (f->map_from != NULL) {
            for (k = 0; k < f->fields_count; k++) {
                free(f->map_from[k]);
            }
        }

        for (k = 0; f->fields != NULL && k < f->fields_count; k++) {
            free(f->fields[k].constant);
            f->fields[k].constant = NULL;
        }

        if (f->lifecycle != NULL) {
            loyalty_sf_lifecycle_conf_free(f->lifecycle);
        }

        free(f->map_from);
        free(f->map);
        f->map_from = NULL;
        f->map = NULL;
    }
}
