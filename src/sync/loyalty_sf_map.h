/*
 * Copyright (C) loyalty-edge authors
 *
 * The field map of a Salesforce flow: which event value goes to which
 * field, with which type, and which system owns the field.  Applying it
 * to an event gives the values to write, the fields that direction may
 * not write (owned by the other system: refused and reported, never
 * sent), and the values that cannot be written (the event's dead-letter
 * reason).
 */

#ifndef _LOYALTY_SF_MAP_H_INCLUDED_
#define _LOYALTY_SF_MAP_H_INCLUDED_


#include "loyalty_core.h"
#include "loyalty_json.h"
#include "loyalty_sf_field.h"


typedef enum {
    LOYALTY_SF_OWNER_EITHER = 0,
    LOYALTY_SF_OWNER_LOYALTY,     /* balances, tiers: the loyalty platform */
    LOYALTY_SF_OWNER_CRM          /* consent, CRM fields: Salesforce */
} loyalty_sf_owner_e;


typedef enum {
    LOYALTY_SF_TO_CRM = 1,        /* loyalty or store -> Salesforce */
    LOYALTY_SF_TO_LOYALTY         /* Salesforce -> loyalty platform */
} loyalty_sf_direction_e;


typedef struct {
    const char                *field;     /* Salesforce API name */
    const char                *from;      /* path in the event's data */
    loyalty_sf_field_type_t    type;
    loyalty_sf_owner_e         owner;
    /* a lookup by external id: "Contact__r": {"attributes":{"type":
     * "Contact"},"Loyalty_Id__c":"v"}; NULL for a plain field */
    const char                *lookup_object;
    const char                *lookup_external_id;
    /* a fixed value (RecordTypeId, Status) instead of from; or NULL */
    const loyalty_json_t      *constant;
} loyalty_sf_map_field_t;


typedef enum {
    LOYALTY_SF_MAPPED = 0,        /* value holds what to write */
    LOYALTY_SF_NOT_OWNER,         /* the other system owns the field */
    LOYALTY_SF_INVALID            /* reason says why */
} loyalty_sf_map_status_e;


typedef struct {
    const loyalty_sf_map_field_t  *map;
    loyalty_sf_map_status_e        status;
    loyalty_sf_value_t             value;
    const loyalty_json_t          *source;   /* the event's value */
    char                           reason[320];
} loyalty_sf_mapped_t;


int loyalty_sf_owner_parse(const char *name, loyalty_sf_owner_e *out);
const char *loyalty_sf_owner_name(loyalty_sf_owner_e owner);

/*
 * Every map entry whose `from` is present in data, in map order, into
 * out (room for n entries); *n_out says how many.  A value present as
 * JSON null counts as present (it clears a nullable field).  Returns
 * LOYALTY_OK, LOYALTY_DECLINED when at least one entry is INVALID, or
 * LOYALTY_ERROR when memory runs out.
 */
int loyalty_sf_map_apply(const loyalty_sf_map_field_t *map, size_t n,
    loyalty_sf_direction_e dir, const loyalty_json_t *data,
    const loyalty_alloc_t *a, loyalty_sf_mapped_t *out, size_t *n_out);

/*
 * The member of one mapped value in a record body: "Field": value, or
 * for a lookup "Rel": {"attributes":{"type":"Obj"},"ExtId__c":"value"}
 * (the type is what a polymorphic lookup such as Task.Who needs, and
 * any lookup accepts).
 */
void loyalty_sf_mapped_write(loyalty_jw_t *w, const loyalty_sf_mapped_t *m);

/* 1 for a platform event object ("Loyalty_Update__e"): published */
int loyalty_sf_is_event(const char *object);

/* 1 when a flow in direction dir may write a field owned by owner */
int loyalty_sf_may_write(loyalty_sf_owner_e owner,
    loyalty_sf_direction_e dir);


#endif /* _LOYALTY_SF_MAP_H_INCLUDED_ */
