/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include "loyalty_json.h"


static int loyalty_json_check(json_object *obj, loyalty_err_t *err);
static int loyalty_json_number_text(const char *p);
static int loyalty_json_ints_fit(const loyalty_str_t *text);


int
loyalty_json_parse(const loyalty_str_t *text, json_object **out,
    loyalty_err_t *err)
{
    size_t                 off;
    json_object           *obj;
    json_tokener          *tok;
    enum json_tokener_error  jerr;

    *out = NULL;

    if (text->len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "empty body");
        return LOYALTY_DECLINED;
    }

    if (memchr(text->data, '\0', text->len) != NULL) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "NUL byte in body");
        return LOYALTY_DECLINED;
    }

    tok = json_tokener_new_ex(LOYALTY_JSON_MAX_DEPTH);
    if (tok == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT
                                | JSON_TOKENER_VALIDATE_UTF8);

    if (text->len > INT32_MAX) {
        json_tokener_free(tok);
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body too large");
        return LOYALTY_DECLINED;
    }

    obj = json_tokener_parse_ex(tok, (const char *) text->data,
                                (int) text->len);
    jerr = json_tokener_get_error(tok);
    off = json_tokener_get_parse_end(tok);

    /* a bare top-level number or literal ends only at end of input */
    if (obj == NULL && jerr == json_tokener_continue) {
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = obj ? json_tokener_success : json_tokener_continue;
        off = text->len;
    }

    json_tokener_free(tok);

    if (obj == NULL && jerr == json_tokener_success) {
        loyalty_err_set(err, LOYALTY_ERR_JSON, "body is null");
        return LOYALTY_DECLINED;
    }

    if (obj == NULL || jerr != json_tokener_success) {
        if (jerr == json_tokener_continue) {
            loyalty_err_set(err, LOYALTY_ERR_JSON, "truncated JSON");

        } else {
            loyalty_err_set(err, LOYALTY_ERR_JSON, "%s at offset %zu",
                            json_tokener_error_desc(jerr), off);
        }

        json_object_put(obj);
        return LOYALTY_DECLINED;
    }

    /* trailing bytes after the value: only white space may follow */
    for ( /* void */ ; off < text->len; off++) {
        switch (text->data[off]) {
        case ' ': case '\t': case '\r': case '\n':
            continue;
        }

        json_object_put(obj);
        loyalty_err_set(err, LOYALTY_ERR_JSON,
                        "trailing data at offset %zu", off);
        return LOYALTY_DECLINED;
    }

    if (loyalty_json_check(obj, err) != LOYALTY_OK) {
        json_object_put(obj);
        return LOYALTY_DECLINED;
    }

    if (!loyalty_json_ints_fit(text)) {
        json_object_put(obj);
        loyalty_err_set(err, LOYALTY_ERR_JSON,
                        "integer out of 64-bit range");
        return LOYALTY_DECLINED;
    }

    *out = obj;

    return LOYALTY_OK;
}


/*
 * What json-c lets through but JSON does not allow: NaN, Infinity,
 * "1." as numbers.
 */

static int
loyalty_json_check(json_object *obj, loyalty_err_t *err)
{
    size_t  i, n;

    switch (json_object_get_type(obj)) {

    case json_type_object:
        {
            json_object_object_foreach(obj, key, val) {
                (void) key;
                if (loyalty_json_check(val, err) != LOYALTY_OK) {
                    return LOYALTY_DECLINED;
                }
            }
        }
        break;

    case json_type_array:
        n = json_object_array_length(obj);

        for (i = 0; i < n; i++) {
            if (loyalty_json_check(json_object_array_get_idx(obj, i), err)
                != LOYALTY_OK)
            {
                return LOYALTY_DECLINED;
            }
        }
        break;

    case json_type_double:
        if (!loyalty_json_number_text(json_object_get_string(obj))) {
            loyalty_err_set(err, LOYALTY_ERR_JSON, "invalid number");
            return LOYALTY_DECLINED;
        }
        break;

    default:
        break;
    }

    return LOYALTY_OK;
}


/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */

static int
loyalty_json_number_text(const char *p)
{
    if (*p == '-') {
        p++;
    }

    if (*p == '0') {
        p++;

    } else if (*p >= '1' && *p <= '9') {
        while (*p >= '0' && *p <= '9') {
            p++;
        }

    } else {
        return 0;
    }

    if (*p == '.') {
        p++;

        if (*p < '0' || *p > '9') {
            return 0;
        }

        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (*p == 'e' || *p == 'E') {
        p++;

        if (*p == '+' || *p == '-') {
            p++;
        }

        if (*p < '0' || *p > '9') {
            return 0;
        }

        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }

    return *p == '\0';
}


int
loyalty_json_dump(json_object *obj, const loyalty_alloc_t *a,
    loyalty_str_t *out)
{
    size_t       len;
    const char  *s;

    s = json_object_to_json_string_length(obj,
                                          JSON_C_TO_STRING_PLAIN
                                          | JSON_C_TO_STRING_NOSLASHESCAPE,
                                          &len);
    if (s == NULL) {
        return LOYALTY_ERROR;
    }

    out->data = loyalty_alloc_copy(a, s, len);
    if (out->data == NULL) {
        return LOYALTY_ERROR;
    }

    out->len = len;

    return LOYALTY_OK;
}


int
loyalty_json_scalar(json_object *obj, const char *key, loyalty_str_t *out)
{
    json_object  *v;

    if (obj == NULL || !json_object_object_get_ex(obj, key, &v)) {
        return LOYALTY_DECLINED;
    }

    switch (json_object_get_type(v)) {

    case json_type_string:
        out->data = (const u_char *) json_object_get_string(v);
        out->len = json_object_get_string_len(v);
        break;

    case json_type_int:
    case json_type_double:
        /* json-c keeps the text it parsed: no binary round trip */
        out->data = (const u_char *) json_object_get_string(v);
        out->len = strlen((const char *) out->data);
        break;

    default:
        return LOYALTY_DECLINED;
    }

    return out->len ? LOYALTY_OK : LOYALTY_DECLINED;
}


json_object *
loyalty_json_object(json_object *obj, const char *key)
{
    json_object  *v;

    if (obj == NULL || !json_object_object_get_ex(obj, key, &v)
        || !json_object_is_type(v, json_type_object))
    {
        return NULL;
    }

    return v;
}


/*
 * json-c clamps integers beyond 64 bits without a word, and keeps no
 * text for integers: an id would silently become another id.  Scan the
 * raw text for integer literals and compare them with the limits.
 */

static int
loyalty_json_ints_fit(const loyalty_str_t *text)
{
    int            neg, integer;
    size_t         n;
    const u_char  *p, *last, *start;

    static const char  max_pos[] = "18446744073709551615";
    static const char  max_neg[] = "9223372036854775808";

    p = text->data;
    last = p + text->len;

    while (p < last) {

        if (*p == '"') {
            for (p++; p < last && *p != '"'; p++) {
                if (*p == '\\') {
                    p++;
                }
            }

            p++;
            continue;
        }

        if (*p != '-' && (*p < '0' || *p > '9')) {
            p++;
            continue;
        }

        neg = (*p == '-');
        if (neg) {
            p++;
        }

        start = p;

        while (p < last && *p >= '0' && *p <= '9') {
            p++;
        }

        n = p - start;
        integer = !(p < last && (*p == '.' || *p == 'e' || *p == 'E'));

        while (p < last && ((*p >= '0' && *p <= '9') || *p == '.'
                            || *p == 'e' || *p == 'E' || *p == '+'
                            || *p == '-'))
        {
            p++;
        }

        if (!integer) {
            continue;
        }

        if (neg) {
            if (n > sizeof(max_neg) - 1
                || (n == sizeof(max_neg) - 1
                    && memcmp(start, max_neg, n) > 0))
            {
                return 0;
            }

        } else if (n > sizeof(max_pos) - 1
                   || (n == sizeof(max_pos) - 1
                       && memcmp(start, max_pos, n) > 0))
        {
            return 0;
        }
    }

    return 1;
}
