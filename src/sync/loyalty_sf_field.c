/*
 * Copyright (C) loyalty-edge authors
 */


#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "loyalty_identity.h"
#include "loyalty_money.h"
#include "loyalty_sf_field.h"
#include "loyalty_time.h"


#define LOYALTY_SF_DIGITS_MAX  18    /* Salesforce Number: 18 digits */


typedef struct {
    const char          *name;
    loyalty_sf_type_e    type;
    unsigned             max_length;   /* Salesforce's own limit */
} loyalty_sf_type_info_t;


/* default lengths: Text 255, Picklist 255, Email 80, Phone 40 */
static const loyalty_sf_type_info_t  loyalty_sf_types[] = {
    { "text",     LOYALTY_SF_TEXT,     255 },
    { "integer",  LOYALTY_SF_INTEGER,  0 },
    { "decimal",  LOYALTY_SF_DECIMAL,  0 },
    { "boolean",  LOYALTY_SF_BOOLEAN,  0 },
    { "date",     LOYALTY_SF_DATE,     0 },
    { "datetime", LOYALTY_SF_DATETIME, 0 },
    { "picklist", LOYALTY_SF_PICKLIST, 255 },
    { "email",    LOYALTY_SF_EMAIL,    80 },
    { "phone",    LOYALTY_SF_PHONE,    40 },
    { NULL, 0, 0 }
};


static const loyalty_sf_type_info_t *loyalty_sf_info(loyalty_sf_type_e t);
static int loyalty_sf_scalar_text(const loyalty_json_t *in,
    loyalty_str_t *out);
static size_t loyalty_sf_chars(const loyalty_str_t *s);
static int loyalty_sf_length(const loyalty_sf_field_type_t *t,
    const loyalty_str_t *s, loyalty_err_t *err);
static int loyalty_sf_set(const loyalty_alloc_t *a, loyalty_sf_value_t *out,
    loyalty_sf_json_e json, const char *text, size_t len);
static int loyalty_sf_number(const loyalty_sf_field_type_t *t,
    const loyalty_json_t *in, const loyalty_alloc_t *a,
    loyalty_sf_value_t *out, loyalty_err_t *err);
static int loyalty_sf_boolean(const loyalty_json_t *in,
    const loyalty_alloc_t *a, loyalty_sf_value_t *out, loyalty_err_t *err);
static int loyalty_sf_date(const loyalty_sf_field_type_t *t,
    const loyalty_json_t *in, const loyalty_alloc_t *a,
    loyalty_sf_value_t *out, loyalty_err_t *err);
static int loyalty_sf_picklist(const loyalty_sf_field_type_t *t,
    const loyalty_str_t *s, const loyalty_alloc_t *a,
    loyalty_sf_value_t *out, loyalty_err_t *err);
static int loyalty_sf_valid_date(const u_char *p, size_t len);


int
loyalty_sf_type_parse(const char *name, loyalty_sf_type_e *out)
{
    const loyalty_sf_type_info_t  *i;

    for (i = loyalty_sf_types; i->name != NULL; i++) {
        if (strcmp(i->name, name) == 0) {
            *out = i->type;
            return LOYALTY_OK;
        }
    }

    return LOYALTY_DECLINED;
}


const char *
loyalty_sf_type_name(loyalty_sf_type_e type)
{
    const loyalty_sf_type_info_t  *i;

    i = loyalty_sf_info(type);

    return i ? i->name : "unknown";
}


static const loyalty_sf_type_info_t *
loyalty_sf_info(loyalty_sf_type_e t)
{
    const loyalty_sf_type_info_t  *i;

    for (i = loyalty_sf_types; i->name != NULL; i++) {
        if (i->type == t) {
            return i;
        }
    }

    return NULL;
}


int
loyalty_sf_coerce(const loyalty_sf_field_type_t *t, const loyalty_json_t *in,
    const loyalty_alloc_t *a, loyalty_sf_value_t *out, loyalty_err_t *err)
{
    int            rc;
    loyalty_str_t  s, norm;

    if (in == NULL || in->type == LOYALTY_JSON_NULL) {
        if (!t->nullable) {
            loyalty_err_set(err, LOYALTY_ERR_INPUT,
                            "null, and the field may not be cleared");
            return LOYALTY_DECLINED;
        }

        out->json = LOYALTY_SF_JSON_NULL;
        out->text.len = 0;
        out->text.data = (const u_char *) "";
        return LOYALTY_OK;
    }

    switch (t->type) {

    case LOYALTY_SF_INTEGER:
    case LOYALTY_SF_DECIMAL:
        return loyalty_sf_number(t, in, a, out, err);

    case LOYALTY_SF_BOOLEAN:
        return loyalty_sf_boolean(in, a, out, err);

    case LOYALTY_SF_DATE:
    case LOYALTY_SF_DATETIME:
        return loyalty_sf_date(t, in, a, out, err);

    default:
        break;
    }

    /* the string kinds: text, picklist, email, phone */

    if (loyalty_sf_scalar_text(in, &s) != LOYALTY_OK
        || (in->type != LOYALTY_JSON_STRING && t->type != LOYALTY_SF_TEXT))
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "not a string");
        return LOYALTY_DECLINED;
    }

    switch (t->type) {

    case LOYALTY_SF_PICKLIST:
        return loyalty_sf_picklist(t, &s, a, out, err);

    case LOYALTY_SF_EMAIL:
        rc = loyalty_identity_email(&s, a, &norm);
        if (rc == LOYALTY_DECLINED) {
            loyalty_err_set(err, LOYALTY_ERR_INPUT,
                            "not an e-mail address");
        }
        break;

    case LOYALTY_SF_PHONE:
        rc = loyalty_identity_phone(&s, t->country, a, &norm);
        if (rc == LOYALTY_DECLINED) {
            loyalty_err_set(err, LOYALTY_ERR_INPUT,
                            "not a phone number%s",
                            t->country ? "" : " in international form");
        }
        break;

    default:            /* LOYALTY_SF_TEXT */
        norm = s;
        rc = LOYALTY_OK;
        break;
    }

    if (rc != LOYALTY_OK) {
        return rc;
    }

    if (loyalty_sf_length(t, &norm, err) != LOYALTY_OK) {
        return LOYALTY_DECLINED;
    }

    return loyalty_sf_set(a, out, LOYALTY_SF_JSON_STRING,
                          (const char *) norm.data, norm.len);
}


/* a string's text, or a number's as written */

static int
loyalty_sf_scalar_text(const loyalty_json_t *in, loyalty_str_t *out)
{
    if (in->type != LOYALTY_JSON_STRING && in->type != LOYALTY_JSON_NUMBER) {
        return LOYALTY_DECLINED;
    }

    *out = in->text;

    return LOYALTY_OK;
}


/* Salesforce counts characters, not bytes: UTF-8 lead bytes */

static size_t
loyalty_sf_chars(const loyalty_str_t *s)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < s->len; i++) {
        if ((s->data[i] & 0xc0) != 0x80) {
            n++;
        }
    }

    return n;
}


static int
loyalty_sf_length(const loyalty_sf_field_type_t *t, const loyalty_str_t *s,
    loyalty_err_t *err)
{
    size_t                         n, max;
    const loyalty_sf_type_info_t  *i;

    i = loyalty_sf_info(t->type);
    max = t->max_length ? t->max_length : (i ? i->max_length : 0);

    if (max == 0) {
        return LOYALTY_OK;
    }

    n = loyalty_sf_chars(s);

    if (n > max) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "%zu characters, the field takes %zu", n, max);
        return LOYALTY_DECLINED;
    }

    return LOYALTY_OK;
}


static int
loyalty_sf_set(const loyalty_alloc_t *a, loyalty_sf_value_t *out,
    loyalty_sf_json_e json, const char *text, size_t len)
{
    u_char  *p;

    p = loyalty_alloc_copy(a, text, len);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    out->json = json;
    out->text.data = p;
    out->text.len = len;

    return LOYALTY_OK;
}


/*
 * Integers and decimals go through exact int64 arithmetic at the field's
 * scale (never a double), and come out with exactly `scale` fraction
 * digits: "49.9" into a scale-2 field is "49.90", "49.999" is refused
 * rather than rounded, since rounding money silently is a bug.
 */

static int
loyalty_sf_number(const loyalty_sf_field_type_t *t, const loyalty_json_t *in,
    const loyalty_alloc_t *a, loyalty_sf_value_t *out, loyalty_err_t *err)
{
    int            rc;
    char           buf[48], *p;
    size_t         len;
    int64_t        v;
    uint64_t       u, pow10;
    unsigned       scale, digits, precision, i;
    loyalty_str_t  s;

    if (loyalty_sf_scalar_text(in, &s) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "not a number");
        return LOYALTY_DECLINED;
    }

    scale = (t->type == LOYALTY_SF_DECIMAL) ? t->scale : 0;
    precision = t->precision ? t->precision : LOYALTY_SF_DIGITS_MAX;

    if (scale > LOYALTY_SF_DIGITS_MAX || scale > precision) {
        loyalty_err_set(err, LOYALTY_ERR_CONFIG, "scale %u out of range",
                        scale);
        return LOYALTY_DECLINED;
    }

    if (t->type == LOYALTY_SF_DECIMAL && t->minor_units) {
        rc = loyalty_decimal_int(&s, &v);
    } else {
        rc = loyalty_decimal_scaled(&s, (int) scale, &v);
    }

    if (rc != LOYALTY_OK) {
        if (scale == 0 || (t->type == LOYALTY_SF_DECIMAL && t->minor_units)) {
            loyalty_err_set(err, LOYALTY_ERR_INPUT, "not an integer");
        } else {
            loyalty_err_set(err, LOYALTY_ERR_INPUT,
                            "not a number with at most %u decimal places",
                            scale);
        }
        return LOYALTY_DECLINED;
    }

    u = (v < 0) ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;

    digits = 0;
    for (pow10 = u; pow10 != 0; pow10 /= 10) {
        digits++;
    }

    if (digits > precision) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "%u digits, the field takes %u", digits, precision);
        return LOYALTY_DECLINED;
    }

    /* digits right to left, the point after `scale` of them */

    p = buf + sizeof(buf);
    i = 0;

    do {
        if (scale && i == scale) {
            *--p = '.';
        }
        *--p = (char) ('0' + u % 10);
        u /= 10;
        i++;
    } while (u != 0 || i <= scale);

    if (v < 0) {
        *--p = '-';
    }

    len = (size_t) (buf + sizeof(buf) - p);

    return loyalty_sf_set(a, out, LOYALTY_SF_JSON_NUMBER, p, len);
}


static int
loyalty_sf_boolean(const loyalty_json_t *in, const loyalty_alloc_t *a,
    loyalty_sf_value_t *out, loyalty_err_t *err)
{
    int  b;

    if (in->type == LOYALTY_JSON_TRUE || in->type == LOYALTY_JSON_FALSE) {
        b = (in->type == LOYALTY_JSON_TRUE);

    } else if (in->type == LOYALTY_JSON_STRING && in->text.len == 4
               && strncasecmp((const char *) in->text.data, "true", 4) == 0)
    {
        b = 1;

    } else if (in->type == LOYALTY_JSON_STRING && in->text.len == 5
               && strncasecmp((const char *) in->text.data, "false", 5) == 0)
    {
        b = 0;

    } else {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "not a boolean");
        return LOYALTY_DECLINED;
    }

    return loyalty_sf_set(a, out, LOYALTY_SF_JSON_BOOL,
                          b ? "true" : "false", b ? 4 : 5);
}


/*
 * Dates: "YYYY-MM-DD", or a time with an offset, whose UTC date is taken.
 * Datetimes: a time with an offset (never a guessed zone) into UTC with
 * milliseconds, "2026-11-24T09:30:00.000Z", the form Salesforce returns,
 * so that the same instant always has the same text.
 */

static int
loyalty_sf_date(const loyalty_sf_field_type_t *t, const loyalty_json_t *in,
    const loyalty_alloc_t *a, loyalty_sf_value_t *out, loyalty_err_t *err)
{
    char    utc[LOYALTY_TIME_MAX], buf[32];
    size_t  n, frac, i;

    if (in->type != LOYALTY_JSON_STRING) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "not a string");
        return LOYALTY_DECLINED;
    }

    if (t->type == LOYALTY_SF_DATE && in->text.len == 10
        && loyalty_sf_valid_date(in->text.data, 10))
    {
        return loyalty_sf_set(a, out, LOYALTY_SF_JSON_STRING,
                              (const char *) in->text.data, 10);
    }

    n = loyalty_time_utc(&in->text, utc);
    if (n == 0) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "%s",
                        t->type == LOYALTY_SF_DATE
                        ? "not a date (YYYY-MM-DD) or a time with an offset"
                        : "not a time with an offset (RFC 3339)");
        return LOYALTY_DECLINED;
    }

    if (t->type == LOYALTY_SF_DATE) {
        return loyalty_sf_set(a, out, LOYALTY_SF_JSON_STRING, utc, 10);
    }

    /* "YYYY-MM-DDTHH:MM:SS[.f...]Z" -> exactly three fraction digits */

    memcpy(buf, utc, 19);
    buf[19] = '.';
    frac = (n > 21 && utc[19] == '.') ? n - 21 : 0;

    for (i = 0; i < 3; i++) {
        buf[20 + i] = (i < frac) ? utc[20 + i] : '0';
    }

    buf[23] = 'Z';

    return loyalty_sf_set(a, out, LOYALTY_SF_JSON_STRING, buf, 24);
}


static int
loyalty_sf_valid_date(const u_char *p, size_t len)
{
    int             y, m, d, leap;
    size_t          i;
    static const int  days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                 30, 31 };

    if (len != 10 || p[4] != '-' || p[7] != '-') {
        return 0;
    }

    for (i = 0; i < 10; i++) {
        if (i != 4 && i != 7 && (p[i] < '0' || p[i] > '9')) {
            return 0;
        }
    }

    y = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10
        + (p[3] - '0');
    m = (p[5] - '0') * 10 + (p[6] - '0');
    d = (p[8] - '0') * 10 + (p[9] - '0');

    if (y < 1 || m < 1 || m > 12 || d < 1) {
        return 0;
    }

    leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

    return d <= days[m - 1] + (m == 2 && leap);
}


/*
 * A restricted picklist takes its values exactly; a value that differs
 * only in case ("gold") is written in the list's spelling ("Gold"), as
 * loyalty platforms and CRMs rarely agree on case.
 */

static int
loyalty_sf_picklist(const loyalty_sf_field_type_t *t, const loyalty_str_t *s,
    const loyalty_alloc_t *a, loyalty_sf_value_t *out, loyalty_err_t *err)
{
    size_t       i, len;
    const char  *v;

    if (t->n_allowed == 0) {
        if (loyalty_sf_length(t, s, err) != LOYALTY_OK) {
            return LOYALTY_DECLINED;
        }

        return loyalty_sf_set(a, out, LOYALTY_SF_JSON_STRING,
                              (const char *) s->data, s->len);
    }

    for (i = 0; i < t->n_allowed; i++) {
        v = t->allowed[i];
        len = strlen(v);

        if (len == s->len && memcmp(v, s->data, len) == 0) {
            return loyalty_sf_set(a, out, LOYALTY_SF_JSON_STRING, v, len);
        }
    }

    for (i = 0; i < t->n_allowed; i++) {
        v = t->allowed[i];
        len = strlen(v);

        if (len == s->len
            && strncasecmp(v, (const char *) s->data, len) == 0)
        {
            return loyalty_sf_set(a, out, LOYALTY_SF_JSON_STRING, v, len);
        }
    }

    loyalty_err_set(err, LOYALTY_ERR_INPUT,
                    "\"%.*s\" is not one of the picklist's values",
                    (int) (s->len > 40 ? 40 : s->len), s->data);

    return LOYALTY_DECLINED;
}


void
loyalty_sf_value_write(loyalty_jw_t *w, const loyalty_str_t *name,
    const loyalty_sf_value_t *v)
{
    static const loyalty_str_t  null = loyalty_string("null");

    loyalty_jw_name(w, name);

    switch (v->json) {

    case LOYALTY_SF_JSON_NULL:
        loyalty_jw_raw(w, NULL, &null);
        break;

    case LOYALTY_SF_JSON_STRING:
        loyalty_jw_str(w, NULL, &v->text);
        break;

    default:            /* numbers and booleans: canonical JSON text */
        loyalty_jw_raw(w, NULL, &v->text);
        break;
    }
}
