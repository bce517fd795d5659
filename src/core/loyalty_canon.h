/*
 * Copyright (C) loyalty-edge authors
 *
 * Building canonical data (docs/envelope.md) from a sender's JSON: each
 * helper copies one member of a sender object under a canonical name,
 * converted to the canonical form (ids as strings, money as integer
 * minor units, times as RFC 3339 UTC).  A member that is absent, null or
 * not convertible is left out, never guessed: the helpers return 1 when
 * they wrote the field and 0 when they did not.
 */

#ifndef _LOYALTY_CANON_H_INCLUDED_
#define _LOYALTY_CANON_H_INCLUDED_


#include "loyalty_core.h"
#include "loyalty_json.h"
#include "loyalty_jw.h"
#include "loyalty_envelope.h"
#include "loyalty_provider.h"


/* a sender's topic and the canonical type it maps to */
typedef struct {
    const char   *topic;
    const char   *type;
} loyalty_topic_map_t;


/* the customer's identity keys as the sender wrote them */
typedef struct {
    loyalty_str_t   email;
    loyalty_str_t   phone;
    loyalty_str_t   ext_id;
    loyalty_str_t   store_cid;
} loyalty_canon_keys_t;


/* obj may be NULL (then nothing is written); member is its name */
int loyalty_canon_id(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member);
int loyalty_canon_text(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member);
int loyalty_canon_int(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member);
int loyalty_canon_money(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member, int exponent);
int loyalty_canon_time(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member);
int loyalty_canon_bool(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member);
/* the ISO 4217 code, upper-cased; *exponent gets its minor units */
int loyalty_canon_currency(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const char *member, int *exponent);

/*
 * A JSON value as the text the helpers accept: a string, or a number's
 * text; LOYALTY_DECLINED for anything else or an empty string.
 */
int loyalty_canon_scalar(const loyalty_json_t *v, loyalty_str_t *out);

/* the canonical type of a topic, "unknown" when the map has none */
const char *loyalty_canon_type(const loyalty_topic_map_t *map,
    const loyalty_str_t *topic);
void loyalty_canon_set_type(loyalty_event_t *ev,
    const loyalty_topic_map_t *map);

/*
 * The envelope's identity keys from keys: email lower-cased, phone to
 * E.164 with conf->default_country, ids kept when they are valid keys.
 * Values that do not normalise are left out.  LOYALTY_ERROR only when
 * out of memory.
 */
int loyalty_canon_identity(const loyalty_provider_conf_t *conf,
    const loyalty_alloc_t *a, loyalty_event_t *ev,
    const loyalty_canon_keys_t *keys);

/*
 * Another person of an event (a referee, say) as an object under key:
 * the normalised email, ext_id from ext_member and store_cid from
 * store_member of obj.  LOYALTY_ERROR only when out of memory.
 */
int loyalty_canon_person(loyalty_jw_t *w, const char *key,
    const loyalty_json_t *obj, const loyalty_alloc_t *a,
    const char *ext_member, const char *store_member);

/* the envelope's identity keys as members of the open object */
void loyalty_canon_write_keys(loyalty_jw_t *w, const loyalty_event_t *ev);

/*
 * ev->occurred from a sender's time: an RFC 3339 text (to UTC) or unix
 * seconds.  LOYALTY_DECLINED when it is neither.
 */
int loyalty_canon_occurred(loyalty_event_t *ev, const loyalty_alloc_t *a,
    const loyalty_json_t *v);
int loyalty_canon_occurred_text(loyalty_event_t *ev,
    const loyalty_alloc_t *a, const loyalty_str_t *text);
int loyalty_canon_occurred_unix(loyalty_event_t *ev,
    const loyalty_alloc_t *a, int64_t seconds);

/* the writer's text into ev->data; LOYALTY_ERROR with err set */
int loyalty_canon_finish(loyalty_jw_t *w, loyalty_event_t *ev,
    loyalty_err_t *err);


#endif /* _LOYALTY_CANON_H_INCLUDED_ */
