/*
 * Copyright (C) loyalty-edge authors
 *
 * The scheduled pull (CRM -> loyalty): the configuration of a `pulls`
 * entry (loyalty_worker_sf_pull_conf.c: schema and -t checks) and its
 * runner (loyalty_worker_sf_pull.c: lease, SOQL pages, enqueue).
 */

#ifndef _LOYALTY_WORKER_SF_PULL_H_INCLUDED_
#define _LOYALTY_WORKER_SF_PULL_H_INCLUDED_


#include <cyaml/cyaml.h>

#include "loyalty_worker.h"
#include "loyalty_sf_map.h"


/* one entry of a pull's `fields`: a record field into the event */

typedef struct {
    char                 *field;
    char                 *to;               /* path in the event's data */
    char                 *type;
    char                 *owner;
    uint32_t              max_length;
    uint32_t              scale;
    uint32_t              precision;
    int                   minor_units;
    int                   nullable;
    char                **values;
    unsigned              values_count;
    char                 *country;
} loyalty_pull_field_conf_t;


struct loyalty_pull_conf_s {
    char                 *name;
    char                 *from;             /* a salesforce destination */
    char                 *store;
    char                 *object;
    char                 *type;             /* the events' type */
    char                 *where;            /* extra SOQL condition */
    loyalty_pull_field_conf_t  *fields;
    unsigned              fields_count;
    uint32_t              interval_ms;
    uint32_t              window_ms;
    uint32_t              overlap_ms;
    uint32_t              lag_ms;
    uint32_t              page_size;
    uint32_t              dedupe_window_ms;
    uint32_t              stream_cap;

    /* runtime, not from YAML */
    loyalty_dest_conf_t  *dest;             /* resolved from "from" */
    loyalty_sf_map_field_t  *map;           /* from: the field's name */
    char                 *select;           /* the SELECT list */
    unsigned              person:1;         /* Contact, Lead, Account */
    unsigned              maps_ext_id:1;    /* a field to customer.ext_id */
    void                 *run;              /* loyalty_pull_t */

    /* metrics */
    uint64_t              m_records;        /* read from Salesforce */
    uint64_t              m_enqueued;
    uint64_t              m_duplicates;
    uint64_t              m_echoes;
    uint64_t              m_runs;
    uint64_t              m_failed;
    int64_t               m_cursor;         /* unix s, 0: none yet */
};


extern const cyaml_schema_value_t  loyalty_pull_conf_schema;

int loyalty_pull_conf_check(loyalty_conf_t *conf, char *err, size_t len);
void loyalty_pull_conf_free(loyalty_conf_t *conf);

/* the WHERE text of a pull: LOYALTY_OK, or why in err */
int loyalty_pull_where_check(const char *where, char *err, size_t len);

int loyalty_pull_init(loyalty_cycle_t *cycle);
void loyalty_pull_stop(loyalty_cycle_t *cycle);
void loyalty_pull_cleanup(loyalty_cycle_t *cycle);


#endif /* _LOYALTY_WORKER_SF_PULL_H_INCLUDED_ */
