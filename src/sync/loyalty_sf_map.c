/*
 * Copyright (C) loyalty-edge authors
 */


#include <stdio.h>
#include <string.h>

#include "loyalty_sf_map.h"


static const char  *loyalty_sf_owners[] = { "either", "loyalty", "crm" };


int
loyalty_sf_owner_parse(const char *name, loyalty_sf_owner_e *out)
{
    size_t  i;

    for (i = 0; i < sizeof(loyalty_sf_owners) / sizeof(char *); i++) {
        if (strcmp(name, loyalty_sf_owners[i]) == 0) {
            *out = (loyalty_sf_owner_e) i;
            return LOYALTY_OK;
        }
    }

    return LOYALTY_DECLINED;
}


const char *
loyalty_sf_owner_name(loyalty_sf_owner_e owner)
{
    return (unsigned) owner < sizeof(loyalty_sf_owners) / sizeof(char *)
           ? loyalty_sf_owners[owner] : "unknown";
}


int
loyalty_sf_may_write(loyalty_sf_owner_e owner, loyalty_sf_direction_e dir)
{
    switch (owner) {
    case LOYALTY_SF_OWNER_LOYALTY:
        return dir == LOYALTY_SF_TO_CRM;
    case LOYALTY_SF_OWNER_CRM:
        return dir == LOYALTY_SF_TO_LOYALTY;
    default:
        return 1;
    }
}


int
loyalty_sf_map_apply(const loyalty_sf_map_field_t *map, size_t n,
    loyalty_sf_direction_e dir, const loyalty_json_t *data,
    const loyalty_alloc_t *a, loyalty_sf_mapped_t *out, size_t *n_out)
{
    int                    rc, invalid;
    size_t                 i, k;
    loyalty_err_t          err;
    loyalty_json_t        *v;
    loyalty_sf_mapped_t   *m;

    invalid = 0;
    k = 0;

    for (i = 0; i < n; i++) {
        v = (map[i].constant != NULL) ? (loyalty_json_t *) map[i].constant
                                      : loyalty_json_path(data, map[i].from);
        if (v == NULL) {
            continue;
        }

        m = &out[k++];
        memset(m, 0, sizeof(*m));
        m->map = &map[i];
        m->source = v;

        if (!loyalty_sf_may_write(map[i].owner, dir)) {
            m->status = LOYALTY_SF_NOT_OWNER;
            snprintf(m->reason, sizeof(m->reason), "%.80s is owned by %s",
                     map[i].field, loyalty_sf_owner_name(map[i].owner));
            continue;
        }

        memset(&err, 0, sizeof(err));
        rc = loyalty_sf_coerce(&map[i].type, v, a, &m->value, &err);

        if (rc == LOYALTY_ERROR) {
            return LOYALTY_ERROR;
        }

        if (rc != LOYALTY_OK) {
            m->status = LOYALTY_SF_INVALID;
            snprintf(m->reason, sizeof(m->reason),
                     "%.80s (%s from %.80s): %.127s", map[i].field,
                     loyalty_sf_type_name(map[i].type.type),
                     map[i].from ? map[i].from : "value",
                     err.msg);
            invalid = 1;
            continue;
        }

        m->status = LOYALTY_SF_MAPPED;
    }

    *n_out = k;

    return invalid ? LOYALTY_DECLINED : LOYALTY_OK;
}


void
loyalty_sf_mapped_write(loyalty_jw_t *w, const loyalty_sf_mapped_t *m)
{
    loyalty_str_t  name;

    name.data = (u_char *) m->map->field;
    name.len = strlen(m->map->field);

    if (m->map->lookup_object == NULL) {
        loyalty_sf_value_write(w, &name, &m->value);
        return;
    }

    /* never null: -t refuses nullable on a lookup */
    loyalty_jw_name(w, &name);
    loyalty_jw_object(w, NULL);
    loyalty_jw_object(w, "attributes");
    loyalty_jw_cstr(w, "type", m->map->lookup_object);
    loyalty_jw_end(w);

    name.data = (u_char *) m->map->lookup_external_id;
    name.len = strlen(m->map->lookup_external_id);
    loyalty_sf_value_write(w, &name, &m->value);
    loyalty_jw_end(w);
}


int
loyalty_sf_is_event(const char *object)
{
    size_t  n;

    n = strlen(object);

    return n > 3 && strcmp(object + n - 3, "__e") == 0;
}
