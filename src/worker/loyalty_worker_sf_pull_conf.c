/*
 * Copyright (C) loyalty-edge authors
 *
 * The `pulls` of loyalty-worker.yaml: the libcyaml schema of an entry
 * and its checks (-t, start, reload).  A pull reads records of one
 * object from a salesforce destination's org and turns them into
 * events of one store; its `fields` are a field map in the CRM ->
 * loyalty direction (loyalty_sf_map.h), so a field the loyalty side
 * owns (balances, tiers) is refused here, never carried into an event.
 * The optional `where` is a conservative subset of SOQL: comparisons
 * joined by AND, nothing that could change the query's shape.
 */

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "loyalty_worker_sf_pull.h"


typedef struct {
    const char   *key;
    size_t        offset;
    uint32_t      def;
    uint32_t      min;
    uint32_t      max;
} loyalty_pull_num_t;


static const cyaml_schema_value_t  loyalty_pull_string = {
    CYAML_VALUE_STRING(CYAML_FLAG_POINTER, char, 1, 256),
};


static const cyaml_schema_field_t  loyalty_pull_field_fields[] = {
    CYAML_FIELD_STRING_PTR("field", CYAML_FLAG_POINTER,
                           loyalty_pull_field_conf_t, field, 1, 128),
    CYAML_FIELD_STRING_PTR("to", CYAML_FLAG_POINTER,
                           loyalty_pull_field_conf_t, to, 1, 256),
    CYAML_FIELD_STRING_PTR("type", CYAML_FLAG_POINTER,
                           loyalty_pull_field_conf_t, type, 1, 32),
    CYAML_FIELD_STRING_PTR("owner", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_pull_field_conf_t, owner, 1, 32),
    CYAML_FIELD_UINT("max_length", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_field_conf_t, max_length),
    CYAML_FIELD_UINT("scale", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_field_conf_t, scale),
    CYAML_FIELD_UINT("precision", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_field_conf_t, precision),
    CYAML_FIELD_BOOL("minor_units", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_field_conf_t, minor_units),
    CYAML_FIELD_BOOL("nullable", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_field_conf_t, nullable),
    CYAML_FIELD_SEQUENCE("values", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                         loyalty_pull_field_conf_t, values,
                         &loyalty_pull_string, 1, CYAML_UNLIMITED),
    CYAML_FIELD_STRING_PTR("country",
                           CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_pull_field_conf_t, country, 2, 2),
    CYAML_FIELD_END
};


static const cyaml_schema_value_t  loyalty_pull_field = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, loyalty_pull_field_conf_t,
                        loyalty_pull_field_fields),
};


static const cyaml_schema_field_t  loyalty_pull_fields[] = {
    CYAML_FIELD_STRING_PTR("name", CYAML_FLAG_POINTER,
                           loyalty_pull_conf_t, name, 1, 64),
    CYAML_FIELD_STRING_PTR("from", CYAML_FLAG_POINTER,
                           loyalty_pull_conf_t, from, 1, 64),
    CYAML_FIELD_STRING_PTR("store", CYAML_FLAG_POINTER,
                           loyalty_pull_conf_t, store, 1, 64),
    CYAML_FIELD_STRING_PTR("object", CYAML_FLAG_POINTER,
                           loyalty_pull_conf_t, object, 1, 128),
    CYAML_FIELD_STRING_PTR("type", CYAML_FLAG_POINTER,
                           loyalty_pull_conf_t, type, 1, 64),
    CYAML_FIELD_STRING_PTR("where", CYAML_FLAG_POINTER | CYAML_FLAG_OPTIONAL,
                           loyalty_pull_conf_t, where, 1, 1000),
    CYAML_FIELD_SEQUENCE("fields", CYAML_FLAG_POINTER,
                         loyalty_pull_conf_t, fields, &loyalty_pull_field,
                         1, 100),
    CYAML_FIELD_UINT("interval_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_conf_t, interval_ms),
    CYAML_FIELD_UINT("window_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_conf_t, window_ms),
    CYAML_FIELD_UINT("overlap_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_conf_t, overlap_ms),
    CYAML_FIELD_UINT("lag_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_conf_t, lag_ms),
    CYAML_FIELD_UINT("page_size", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_conf_t, page_size),
    CYAML_FIELD_UINT("dedupe_window_ms", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_conf_t, dedupe_window_ms),
    CYAML_FIELD_UINT("stream_cap", CYAML_FLAG_OPTIONAL,
                     loyalty_pull_conf_t, stream_cap),
    CYAML_FIELD_END
};


const cyaml_schema_value_t  loyalty_pull_conf_schema = {
    CYAML_VALUE_MAPPING(CYAML_FLAG_DEFAULT, loyalty_pull_conf_t,
                        loyalty_pull_fields),
};


/* 0 in the YAML means unset: the default */
static const loyalty_pull_num_t  loyalty_pull_nums[] = {
    { "interval_ms", offsetof(loyalty_pull_conf_t, interval_ms),
      60000, 100, 86400000 },
    { "window_ms", offsetof(loyalty_pull_conf_t, window_ms),
      86400000, 1000, 2592000000U },
    { "overlap_ms", offsetof(loyalty_pull_conf_t, overlap_ms),
      0, 0, 3600000 },
    { "lag_ms", offsetof(loyalty_pull_conf_t, lag_ms), 5000, 1, 600000 },
    { "dedupe_window_ms", offsetof(loyalty_pull_conf_t, dedupe_window_ms),
      345600000, 60000, 2592000000U },
    { "stream_cap", offsetof(loyalty_pull_conf_t, stream_cap),
      1000000, 1, 100000000 },
    { NULL, 0, 0, 0, 0 }
};


/* canonical members the loyalty platform owns: never from the CRM */
static const char  *loyalty_pull_loyalty_owned[] = {
    "customer.points_balance", "customer.points_pending",
    "customer.points_spent", "customer.tier", "customer.tier_expires_at",
    "customer.enrolled", "customer.referral_code",
    "customer.referral_url", "points.balance_after", "tier", NULL
};

static const char  *loyalty_pull_person[] = { "Contact", "Lead", "Account",
    NULL };

/* SOQL words a `where` may not hold: they would change the query */
static const char  *loyalty_pull_soql_words[] = { "SELECT", "FROM",
    "WHERE", "ORDER", "BY", "LIMIT", "OFFSET", "GROUP", "HAVING", "WITH",
    "FOR", "UPDATE", "VIEW", "REFERENCE", "TYPEOF", "USING", "SCOPE", "ALL",
    "ROWS", "OR", "INCLUDES", "EXCLUDES", NULL };

static const char  *loyalty_pull_system[] = { "Id", "SystemModstamp",
    "LastModifiedById", NULL };


static int loyalty_pull_conf_one(loyalty_conf_t *conf, unsigned i,
    char *err, size_t len);
static int loyalty_pull_conf_fields(loyalty_pull_conf_t *pc,
    const char *where, char *err, size_t len);
static int loyalty_pull_conf_select(loyalty_pull_conf_t *pc);
static int loyalty_pull_path(const char *s);
static int loyalty_pull_under(const char *path, const char *prefix);
static int loyalty_pull_in(const char **list, const char *s);


static int
loyalty_pull_in(const char **list, const char *s)
{
    for ( /* void */ ; *list != NULL; list++) {
        if (strcasecmp(*list, s) == 0) {
            return 1;
        }
    }

    return 0;
}


/* "customer.opt_in_email": segments of [A-Za-z0-9_], at most 8 */

static int
loyalty_pull_path(const char *s)
{
    size_t  seg, n;

    seg = 0;
    n = 0;

    for ( /* void */ ; *s; s++) {
        if (*s == '.') {
            if (seg == 0) {
                return 0;
            }
            seg = 0;
            n++;
            continue;
        }

        if (!isalnum((u_char) *s) && *s != '_') {
            return 0;
        }

        seg++;
    }

    return seg > 0 && n < 8;
}


/* path is prefix itself or lies below it */

static int
loyalty_pull_under(const char *path, const char *prefix)
{
    size_t  n;

    n = strlen(prefix);

    return strncmp(path, prefix, n) == 0
           && (path[n] == '\0' || path[n] == '.');
}


int
loyalty_pull_conf_check(loyalty_conf_t *conf, char *err, size_t len)
{
    unsigned  i;

    for (i = 0; i < conf->pulls_count; i++) {
        if (loyalty_pull_conf_one(conf, i, err, len) != LOYALTY_OK) {
            return LOYALTY_ERROR;
        }
    }

    return LOYALTY_OK;
}


static int
loyalty_pull_conf_one(loyalty_conf_t *conf, unsigned i, char *err,
    size_t len)
{
    unsigned                   j;
    uint32_t                  *v;
    loyalty_str_t              s;
    loyalty_pull_conf_t       *pc;
    const loyalty_pull_num_t  *t;
    char                       where[96], why[200];

    pc = &conf->pulls[i];

    snprintf(where, sizeof(where), "pulls[%u]: ", i);

    if (!loyalty_store_valid((u_char *) pc->name, strlen(pc->name))) {
        snprintf(err, len, "%sname \"%s\" is not valid ([A-Za-z0-9._-]"
                 "{1,64})", where, pc->name);
        return LOYALTY_ERROR;
    }

    snprintf(where, sizeof(where), "pull \"%s\": ", pc->name);

    for (j = 0; j < i; j++) {
        if (strcmp(conf->pulls[j].name, pc->name) == 0) {
            snprintf(err, len, "%sdefined twice", where);
            return LOYALTY_ERROR;
        }
    }

    for (t = loyalty_pull_nums; t->key != NULL; t++) {
        v = (uint32_t *) ((u_char *) pc + t->offset);

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

    if (pc->page_size != 0
        && (pc->page_size < 200 || pc->page_size > 2000))
    {
        snprintf(err, len, "%spage_size: %u is out of range [200, 2000] "
                 "(Salesforce's query batch sizes)", where, pc->page_size);
        return LOYALTY_ERROR;
    }

    if (pc->overlap_ms >= pc->window_ms) {
        snprintf(err, len, "%soverlap_ms (%u) must be below window_ms (%u)",
                 where, pc->overlap_ms, pc->window_ms);
        return LOYALTY_ERROR;
    }

    pc->dest = NULL;

    for (j = 0; j < conf->destinations_count; j++) {
        if (strcmp(conf->destinations[j].name, pc->from) == 0) {
            pc->dest = &conf->destinations[j];
        }
    }

    if (pc->dest == NULL || pc->dest->kind != LOYALTY_DEST_SALESFORCE) {
        snprintf(err, len, "%sfrom: \"%s\" names no salesforce destination",
                 where, pc->from);
        return LOYALTY_ERROR;
    }

    for (j = 0; j < conf->stores_count; j++) {
        if (strcmp(conf->stores[j], pc->store) == 0) {
            break;
        }
    }

    if (j == conf->stores_count) {
        snprintf(err, len, "%sstore \"%s\" is not in stores", where,
                 pc->store);
        return LOYALTY_ERROR;
    }

    if (!loyalty_sf_api_name(pc->object)) {
        snprintf(err, len, "%sobject \"%s\" is not a Salesforce API name "
                 "([A-Za-z][A-Za-z0-9_]*)", where, pc->object);
        return LOYALTY_ERROR;
    }

    s.data = (u_char *) pc->type;
    s.len = strlen(pc->type);

    if (strcmp(pc->type, "unknown") == 0
        || strcmp(loyalty_canonical_type(&s), "unknown") == 0)
    {
        snprintf(err, len, "%stype \"%s\" is not a canonical event type "
                 "(see docs/envelope.md)", where, pc->type);
        return LOYALTY_ERROR;
    }

    if (pc->where != NULL) {
        if (loyalty_pull_where_check(pc->where, why, sizeof(why))
            != LOYALTY_OK)
        {
            snprintf(err, len, "%swhere: %s", where, why);
            return LOYALTY_ERROR;
        }
    }

    pc->person = loyalty_pull_in(loyalty_pull_person, pc->object);

    if (loyalty_pull_conf_fields(pc, where, err, len) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    if (loyalty_pull_conf_select(pc) != LOYALTY_OK) {
        snprintf(err, len, "out of memory");
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}


static int
loyalty_pull_conf_fields(loyalty_pull_conf_t *pc, const char *where,
    char *err, size_t len)
{
    unsigned                    k, j;
    const char                **o;
    loyalty_sf_map_field_t     *m;
    loyalty_field_conf_t        typing;
    loyalty_pull_field_conf_t  *fc;

    pc->map = calloc(pc->fields_count, sizeof(loyalty_sf_map_field_t));
    if (pc->map == NULL) {
        snprintf(err, len, "out of memory");
        return LOYALTY_ERROR;
    }

    for (k = 0; k < pc->fields_count; k++) {
        fc = &pc->fields[k];
        m = &pc->map[k];

        if (!loyalty_sf_api_name(fc->field)) {
            snprintf(err, len, "%sfields[%u]: field \"%s\" is not a "
                     "Salesforce API name", where, k, fc->field);
            return LOYALTY_ERROR;
        }

        if (!loyalty_pull_path(fc->to)) {
            snprintf(err, len, "%s%s: to \"%s\" is not a path like "
                     "customer.opt_in_email", where, fc->field, fc->to);
            return LOYALTY_ERROR;
        }

        /* the runner writes these itself */
        if (loyalty_pull_under(fc->to, "sobject")
            || strcmp(fc->to, "customer") == 0)
        {
            snprintf(err, len, "%s%s: to \"%s\": sobject and customer "
                     "itself are written by the pull", where, fc->field,
                     fc->to);
            return LOYALTY_ERROR;
        }

        for (o = loyalty_pull_loyalty_owned; *o != NULL; o++) {
            if (loyalty_pull_under(fc->to, *o)) {
                snprintf(err, len, "%s%s: to \"%s\" is owned by the "
                         "loyalty platform: a CRM -> loyalty pull never "
                         "writes it", where, fc->field, fc->to);
                return LOYALTY_ERROR;
            }
        }

        for (j = 0; j < k; j++) {
            if (strcasecmp(pc->fields[j].field, fc->field) == 0) {
                snprintf(err, len, "%sfield %s is pulled twice", where,
                         fc->field);
                return LOYALTY_ERROR;
            }

            if (loyalty_pull_under(pc->fields[j].to, fc->to)
                || loyalty_pull_under(fc->to, pc->fields[j].to))
            {
                snprintf(err, len, "%s%s: to \"%s\" collides with \"%s\" "
                         "(%s)", where, fc->field, fc->to,
                         pc->fields[j].to, pc->fields[j].field);
                return LOYALTY_ERROR;
            }
        }

        if (loyalty_sf_type_parse(fc->type, &m->type.type) != LOYALTY_OK) {
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

        if (!loyalty_sf_may_write(m->owner, LOYALTY_SF_TO_LOYALTY)) {
            snprintf(err, len, "%s%s: owner loyalty: a CRM -> loyalty pull "
                     "never carries a field the loyalty platform owns",
                     where, fc->field);
            return LOYALTY_ERROR;
        }

        if ((m->type.type == LOYALTY_SF_PICKLIST) != (fc->values_count != 0))
        {
            snprintf(err, len, "%s%s: values are for a picklist, and a "
                     "picklist needs them", where, fc->field);
            return LOYALTY_ERROR;
        }

        /* the typing keys are those of a flow's field */
        memset(&typing, 0, sizeof(typing));
        typing.field = fc->field;
        typing.max_length = fc->max_length;
        typing.scale = fc->scale;
        typing.precision = fc->precision;
        typing.minor_units = fc->minor_units;
        typing.country = fc->country;

        if (loyalty_sf_conf_typing(&typing, &m->type, where, err, len)
            != LOYALTY_OK)
        {
            return LOYALTY_ERROR;
        }

        if (strcmp(fc->to, "customer.ext_id") == 0) {
            pc->maps_ext_id = 1;
        }

        /* the record's member of that name is the source */
        m->field = fc->field;
        m->from = fc->field;
        m->type.max_length = fc->max_length;
        m->type.precision = fc->precision;
        m->type.scale = fc->scale;
        m->type.minor_units = fc->minor_units ? 1 : 0;
        m->type.nullable = fc->nullable ? 1 : 0;
        m->type.allowed = (const char *const *) fc->values;
        m->type.n_allowed = fc->values_count;
        m->type.country = fc->country;
    }

    return LOYALTY_OK;
}


/* "Email, Email_Opt_In__c, Id, SystemModstamp, LastModifiedById" */

static int
loyalty_pull_conf_select(loyalty_pull_conf_t *pc)
{
    char        *p;
    size_t       n;
    unsigned     k;
    const char **s;

    n = 64;
    for (k = 0; k < pc->fields_count; k++) {
        n += strlen(pc->fields[k].field) + 2;
    }

    pc->select = malloc(n);
    if (pc->select == NULL) {
        return LOYALTY_ERROR;
    }

    p = pc->select;
    *p = '\0';

    for (k = 0; k < pc->fields_count; k++) {
        p += sprintf(p, "%s%s", k ? ", " : "", pc->fields[k].field);
    }

    /* a field selected twice is a SOQL error */
    for (s = loyalty_pull_system; *s != NULL; s++) {
        for (k = 0; k < pc->fields_count; k++) {
            if (strcasecmp(pc->fields[k].field, *s) == 0) {
                break;
            }
        }

        if (k == pc->fields_count) {
            p += sprintf(p, ", %s", *s);
        }
    }

    return LOYALTY_OK;
}


/*
 * where: conditions joined by AND, each `Field op literal`,
 * `Field [NOT] IN (literal, ...)` or `Field LIKE 'text'`; a literal is
 * a quoted string, a number, TRUE, FALSE, NULL, a date or a datetime.
 * No OR (it would escape the cursor's condition: the text is appended
 * with AND), no relationship fields, functions, date literals like
 * TODAY, sub-queries or anything else.
 */

typedef enum {
    LOYALTY_TOK_END = 0,
    LOYALTY_TOK_WORD,
    LOYALTY_TOK_LITERAL,
    LOYALTY_TOK_OP,
    LOYALTY_TOK_OPEN,
    LOYALTY_TOK_CLOSE,
    LOYALTY_TOK_COMMA,
    LOYALTY_TOK_BAD
} loyalty_pull_tok_e;


typedef struct {
    const char   *p;
    char          word[64];
    char          why[160];
} loyalty_pull_lex_t;


static loyalty_pull_tok_e
loyalty_pull_lex(loyalty_pull_lex_t *lx)
{
    size_t       n;
    const char  *p, *q;

    p = lx->p;

    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
        p++;
    }

    lx->p = p;

    if (*p == '\0') {
        return LOYALTY_TOK_END;
    }

    if (*p == '\'') {
        for (q = p + 1; *q && *q != '\''; q++) {
            if (*q == '\\') {
                if (strchr("nrtbf\"'\\_%", q[1]) == NULL || q[1] == '\0') {
                    snprintf(lx->why, sizeof(lx->why), "bad escape in a "
                             "string");
                    return LOYALTY_TOK_BAD;
                }
                q++;
            }
        }

        if (*q != '\'') {
            snprintf(lx->why, sizeof(lx->why), "unterminated string");
            return LOYALTY_TOK_BAD;
        }

        lx->p = q + 1;
        return LOYALTY_TOK_LITERAL;
    }

    if (isdigit((u_char) *p) || (*p == '-' && isdigit((u_char) p[1]))) {
        /* numbers, dates (2026-11-24), datetimes (...T10:00:00Z) */
        q = p + 1;
        while (isalnum((u_char) *q) || *q == '-' || *q == ':' || *q == '.'
               || *q == '+')
        {
            q++;
        }

        lx->p = q;
        return LOYALTY_TOK_LITERAL;
    }

    if (isalpha((u_char) *p) || *p == '_') {
        for (q = p, n = 0; isalnum((u_char) *q) || *q == '_'; q++, n++) {
            /* void */
        }

        if (*q == '.' || *q == '(' || *q == ':' || n >= sizeof(lx->word)) {
            snprintf(lx->why, sizeof(lx->why), "only plain field names "
                     "(no relationships, functions or date literals)");
            return LOYALTY_TOK_BAD;
        }

        memcpy(lx->word, p, n);
        lx->word[n] = '\0';
        lx->p = q;

        if (strcasecmp(lx->word, "TRUE") == 0
            || strcasecmp(lx->word, "FALSE") == 0
            || strcasecmp(lx->word, "NULL") == 0)
        {
            return LOYALTY_TOK_LITERAL;
        }

        return LOYALTY_TOK_WORD;
    }

    switch (*p) {
    case '(':
        lx->p = p + 1;
        return LOYALTY_TOK_OPEN;
    case ')':
        lx->p = p + 1;
        return LOYALTY_TOK_CLOSE;
    case ',':
        lx->p = p + 1;
        return LOYALTY_TOK_COMMA;
    case '=':
        lx->p = p + 1;
        return LOYALTY_TOK_OP;
    case '!':
        if (p[1] == '=') {
            lx->p = p + 2;
            return LOYALTY_TOK_OP;
        }
        break;
    case '<':
    case '>':
        lx->p = p + ((p[1] == '=' || (p[0] == '<' && p[1] == '>')) ? 2 : 1);
        return LOYALTY_TOK_OP;
    default:
        break;
    }

    snprintf(lx->why, sizeof(lx->why), "unexpected '%c'", *p);
    return LOYALTY_TOK_BAD;
}


int
loyalty_pull_where_check(const char *where, char *err, size_t len)
{
    int                  in;
    loyalty_pull_tok_e   t;
    loyalty_pull_lex_t   lx;

    memset(&lx, 0, sizeof(lx));
    lx.p = where;

    for ( ;; ) {
        /* Field */
        t = loyalty_pull_lex(&lx);
        if (t != LOYALTY_TOK_WORD) {
            goto bad;
        }

        if (loyalty_pull_in(loyalty_pull_soql_words, lx.word)) {
            snprintf(lx.why, sizeof(lx.why), "%s is not allowed", lx.word);
            goto bad;
        }

        /* op | [NOT] IN | LIKE */
        t = loyalty_pull_lex(&lx);
        in = 0;

        if (t == LOYALTY_TOK_WORD && strcasecmp(lx.word, "NOT") == 0) {
            t = loyalty_pull_lex(&lx);
            if (t != LOYALTY_TOK_WORD || strcasecmp(lx.word, "IN") != 0) {
                goto bad;
            }
            in = 1;

        } else if (t == LOYALTY_TOK_WORD && strcasecmp(lx.word, "IN") == 0) {
            in = 1;

        } else if (t == LOYALTY_TOK_WORD
                   && strcasecmp(lx.word, "LIKE") == 0)
        {
            if (*lx.p == '\0') {
                goto bad;
            }

        } else if (t != LOYALTY_TOK_OP) {
            goto bad;
        }

        if (in) {
            if (loyalty_pull_lex(&lx) != LOYALTY_TOK_OPEN) {
                goto bad;
            }

            do {
                if (loyalty_pull_lex(&lx) != LOYALTY_TOK_LITERAL) {
                    goto bad;
                }
                t = loyalty_pull_lex(&lx);
            } while (t == LOYALTY_TOK_COMMA);

            if (t != LOYALTY_TOK_CLOSE) {
                goto bad;
            }

        } else if (loyalty_pull_lex(&lx) != LOYALTY_TOK_LITERAL) {
            goto bad;
        }

        t = loyalty_pull_lex(&lx);

        if (t == LOYALTY_TOK_END) {
            return LOYALTY_OK;
        }

        if (t == LOYALTY_TOK_WORD && strcasecmp(lx.word, "AND") != 0) {
            snprintf(lx.why, sizeof(lx.why), "%s is not allowed: conditions "
                     "are joined by AND only", lx.word);
        }

        if (t != LOYALTY_TOK_WORD || strcasecmp(lx.word, "AND") != 0) {
            goto bad;
        }
    }

bad:

    if (lx.why[0] == '\0') {
        snprintf(lx.why, sizeof(lx.why), "expected conditions like "
                 "Field = 'value' joined by AND");
    }

    snprintf(err, len, "%s, at \"%.20s\"", lx.why, lx.p);

    return LOYALTY_ERROR;
}


void
loyalty_pull_conf_free(loyalty_conf_t *conf)
{
    unsigned  i;

    for (i = 0; i < conf->pulls_count; i++) {
        free(conf->pulls[i].map);
        free(conf->pulls[i].select);
        conf->pulls[i].map = NULL;
        conf->pulls[i].select = NULL;
    }
}
