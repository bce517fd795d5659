/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include "loyalty_json.h"


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

    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);

    obj = json_tokener_parse_ex(tok, (const char *) text->data,
                                (int) text->len);
    jerr = json_tokener_get_error(tok);
    off = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);

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

    *out = obj;

    return LOYALTY_OK;
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
