/*
 * Copyright (C) loyalty-edge authors
 *
 * Envelope v1: the fields of one stream entry (docs/envelope.md).
 */

#ifndef _LOYALTY_ENVELOPE_H_INCLUDED_
#define _LOYALTY_ENVELOPE_H_INCLUDED_


#include "loyalty_core.h"


#define LOYALTY_ENVELOPE_VERSION    "1"
#define LOYALTY_ENVELOPE_FIELDS     15
#define LOYALTY_STORE_MAX           64
#define LOYALTY_EVENT_ID_MAX        200
#define LOYALTY_CORR_MAX            128


typedef struct {
    loyalty_str_t   id;
    loyalty_str_t   src;
    loyalty_str_t   store;
    loyalty_str_t   type;
    loyalty_str_t   topic;
    loyalty_str_t   occurred;
    loyalty_str_t   corr;
    loyalty_str_t   email;
    loyalty_str_t   ext_id;
    loyalty_str_t   store_cid;
    loyalty_str_t   phone;
    loyalty_str_t   data;
    loyalty_str_t   raw;
    loyalty_str_t   alt_id;       /* a second dedupe key, not stored */
    int64_t         received;             /* ms since the epoch */
    char            received_text[24];
} loyalty_event_t;


/*
 * Field/value pairs for XADD, absent fields left out; out must hold
 * 2 * LOYALTY_ENVELOPE_FIELDS entries.  Returns the number of entries.
 */
size_t loyalty_envelope_encode(loyalty_event_t *ev, loyalty_str_t *out);

/* the reverse, for consumers; values point into the input */
int loyalty_envelope_decode(const loyalty_str_t *fv, size_t n,
    loyalty_event_t *ev, loyalty_err_t *err);

/* canonical type for a sender's topic when it already is one */
const char *loyalty_canonical_type(const loyalty_str_t *topic);

int loyalty_store_valid(const u_char *p, size_t len);
int loyalty_event_id_valid(const u_char *p, size_t len);
int loyalty_corr_valid(const u_char *p, size_t len);

/* RFC 3339 UTC ("2024-01-02T03:04:05Z"); buf holds at least 21 bytes */
size_t loyalty_rfc3339(time_t t, char *buf);


#endif /* _LOYALTY_ENVELOPE_H_INCLUDED_ */
