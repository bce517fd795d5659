/*
 * Copyright (C) loyalty-edge authors
 */


#include <string.h>

#include "loyalty_canon.h"
#include "loyalty_identity.h"
#include "loyalty_money.h"
#include "loyalty_time.h"


static int loyalty_canon_occurred_set(loyalty_event_t *ev,
    const loyalty_alloc_t *a, const char *buf, size_t len);


int
loyalty_canon_scalar(const loyalty_json_t *v, loyalty_str_t *out)
{
    if (v == NULL
        || (v->type != LOYALTY_JSON_STRING && v->type != LOYALTY_JSON_NUMBER)
        || v->text.len == 0)
    {
        return LOYALTY_DECLINED;
    }

    *out = v->text;

    return LOYALTY_OK;
}


/* ids are strings: "1001" and 1001 both become "1001" */

int
loyalty_canon_id(loyalty_jw_t *w, const char *key, const loyalty_json_t *obj,
    const char *member)
{
    loyalty_str_t          s;
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (loyalty_canon_scalar(v, &s) != LOYALTY_OK) {
        return 0;
    }

    /* 12.5 is no id */
    if (v->type == LOYALTY_JSON_NUMBER
        && (memchr(s.data, '.', s.len) || memchr(s.data, 'e', s.len)
            || memchr(s.data, 'E', s.len)))
    {
        return 0;
    }

    loyalty_jw_str(w, key, &s);

    return 1;
}


int
loyalty_canon_text(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member)
{
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (v == NULL || v->type != LOYALTY_JSON_STRING || v->text.len == 0) {
        return 0;
    }

    loyalty_jw_str(w, key, &v->text);

    return 1;
}


/* whole numbers, as numbers or strings: 200, "200", 1250.0 */

int
loyalty_canon_int(loyalty_jw_t *w, const char *key, const loyalty_json_t *obj,
    const char *member)
{
    int64_t                n;
    loyalty_str_t          s;
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (loyalty_canon_scalar(v, &s) != LOYALTY_OK
        || loyalty_decimal_int(&s, &n) != LOYALTY_OK)
    {
        return 0;
    }

    loyalty_jw_int(w, key, n);

    return 1;
}


int
loyalty_canon_money(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member, int exponent)
{
    int64_t                n;
    loyalty_str_t          s;
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (exponent < 0
        || loyalty_canon_scalar(v, &s) != LOYALTY_OK
        || loyalty_decimal_scaled(&s, exponent, &n) != LOYALTY_OK)
    {
        return 0;
    }

    loyalty_jw_int(w, key, n);

    return 1;
}


int
loyalty_canon_time(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member)
{
    char                   buf[LOYALTY_TIME_MAX];
    size_t                 len;
    int64_t                t;
    loyalty_str_t          s;
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (v == NULL) {
        return 0;
    }

    if (v->type == LOYALTY_JSON_STRING) {
        len = loyalty_time_utc(&v->text, buf);

    } else if (v->type == LOYALTY_JSON_NUMBER
               && loyalty_json_int64(v, &t) == LOYALTY_OK)
    {
        len = loyalty_time_unix(t, buf);

    } else {
        len = 0;
    }

    if (len == 0) {
        return 0;
    }

    s.data = (const u_char *) buf;
    s.len = len;

    loyalty_jw_str(w, key, &s);

    return 1;
}


int
loyalty_canon_bool(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member)
{
    const loyalty_json_t  *v;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (v == NULL
        || (v->type != LOYALTY_JSON_TRUE && v->type != LOYALTY_JSON_FALSE))
    {
        return 0;
    }

    loyalty_jw_bool(w, key, v->type == LOYALTY_JSON_TRUE);

    return 1;
}


int
loyalty_canon_currency(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member, int *exponent)
{
    char                   code[4];
    const loyalty_json_t  *v;

    *exponent = -1;

    v = obj ? loyalty_json_get(obj, member) : NULL;

    if (v == NULL || v->type != LOYALTY_JSON_STRING
        || loyalty_currency_code(&v->text, code) != LOYALTY_OK)
    {
        return 0;
    }

    *exponent = loyalty_currency_exponent(code);

    loyalty_jw_cstr(w, key, code);

    return 1;
}


const char *
loyalty_canon_type(const loyalty_topic_map_t *map, const loyalty_str_t *topic)
{
    for ( /* void */ ; map->topic != NULL; map++) {
        if (strlen(map->topic) == topic->len
            && memcmp(map->topic, topic->data, topic->len) == 0)
        {
            return map->type;
        }
    }

    return "unknown";
}


void
loyalty_canon_set_type(loyalty_event_t *ev, const loyalty_topic_map_t *map)
{
    const char  *type;

    type = loyalty_canon_type(map, &ev->topic);

    ev->type.data = (const u_char *) type;
    ev->type.len = strlen(type);
}


int
loyalty_canon_identity(const loyalty_provider_conf_t *conf,
    const loyalty_alloc_t *a, loyalty_event_t *ev,
    const loyalty_canon_keys_t *keys)
{
    const char  *country;

    if (keys->email.len
        && loyalty_identity_email(&keys->email, a, &ev->email)
           == LOYALTY_ERROR)
    {
        return LOYALTY_ERROR;
    }

    country = conf->default_country[0] ? conf->default_country : NULL;

    if (keys->phone.len
        && loyalty_identity_phone(&keys->phone, country, a, &ev->phone)
           == LOYALTY_ERROR)
    {
        return LOYALTY_ERROR;
    }

    if (keys->ext_id.len
        && loyalty_event_id_valid(keys->ext_id.data, keys->ext_id.len))
    {
        ev->ext_id = keys->ext_id;
    }

    if (keys->store_cid.len
        && loyalty_event_id_valid(keys->store_cid.data, keys->store_cid.len))
    {
        ev->store_cid = keys->store_cid;
    }

    return LOYALTY_OK;
}


int
loyalty_canon_person(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const loyalty_alloc_t *a,
    const char *ext_member, const char *store_member)
{
    int            rc;
    loyalty_str_t  s, email;

    loyalty_jw_object(w, key);

    if (loyalty_json_scalar(obj, "email", &s) == LOYALTY_OK) {
        rc = loyalty_identity_email(&s, a, &email);
        if (rc == LOYALTY_ERROR) {
            return LOYALTY_ERROR;
        }

        if (rc == LOYALTY_OK) {
            loyalty_jw_str(w, "email", &email);
        }
    }

    loyalty_canon_id(w, "ext_id", obj, ext_member);
    loyalty_canon_id(w, "store_cid", obj, store_member);
    loyalty_jw_end(w);

    return LOYALTY_OK;
}


void
loyalty_canon_write_keys(loyalty_jw_t *w, const loyalty_event_t *ev)
{
    if (ev->email.len) {
        loyalty_jw_str(w, "email", &ev->email);
    }

    if (ev->phone.len) {
        loyalty_jw_str(w, "phone", &ev->phone);
    }

    if (ev->ext_id.len) {
        loyalty_jw_str(w, "ext_id", &ev->ext_id);
    }

    if (ev->store_cid.len) {
        loyalty_jw_str(w, "store_cid", &ev->store_cid);
    }
}


int
loyalty_canon_occurred(loyalty_event_t *ev, const loyalty_alloc_t *a,
    const loyalty_json_t *v)
{
    int64_t  t;

    if (v == NULL) {
        return LOYALTY_DECLINED;
    }

    if (v->type == LOYALTY_JSON_STRING) {
        return loyalty_canon_occurred_text(ev, a, &v->text);
    }

    if (v->type == LOYALTY_JSON_NUMBER
        && loyalty_json_int64(v, &t) == LOYALTY_OK)
    {
        return loyalty_canon_occurred_unix(ev, a, t);
    }

    return LOYALTY_DECLINED;
}


int
loyalty_canon_occurred_text(loyalty_event_t *ev, const loyalty_alloc_t *a,
    const loyalty_str_t *text)
{
    char  buf[LOYALTY_TIME_MAX];

    return loyalty_canon_occurred_set(ev, a, buf,
                                      loyalty_time_utc(text, buf));
}


int
loyalty_canon_occurred_unix(loyalty_event_t *ev, const loyalty_alloc_t *a,
    int64_t seconds)
{
    char  buf[LOYALTY_TIME_MAX];

    return loyalty_canon_occurred_set(ev, a, buf,
                                      loyalty_time_unix(seconds, buf));
}


/* len 0: the conversion failed */

static int
loyalty_canon_occurred_set(loyalty_event_t *ev, const loyalty_alloc_t *a,
    const char *buf, size_t len)
{
    u_char  *p;

    if (len == 0) {
        return LOYALTY_DECLINED;
    }

    p = loyalty_alloc_copy(a, buf, len);
    if (p == NULL) {
        return LOYALTY_ERROR;
    }

    ev->occurred.data = p;
    ev->occurred.len = len;

    return LOYALTY_OK;
}


int
loyalty_canon_finish(loyalty_jw_t *w, loyalty_event_t *ev,
    loyalty_err_t *err)
{
    if (loyalty_jw_finish(w, &ev->data) != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    return LOYALTY_OK;
}
