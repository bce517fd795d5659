/*
 * Copyright (C) loyalty-edge authors
 *
 * Identity keys: the deterministic keys customers are matched on.
 */

#ifndef _LOYALTY_IDENTITY_H_INCLUDED_
#define _LOYALTY_IDENTITY_H_INCLUDED_


#include "loyalty_core.h"


#define LOYALTY_EMAIL_MAX  254
#define LOYALTY_PHONE_MAX  16            /* "+" and up to 15 digits */


/*
 * Trimmed and lower-cased into memory from a; LOYALTY_DECLINED when the
 * value is not an address (no local part, no dotted domain, spaces...).
 */
int loyalty_identity_email(const loyalty_str_t *in, const loyalty_alloc_t *a,
    loyalty_str_t *out);


/*
 * E.164 ("+447911123456") into memory from a, NUL-terminated.  Spaces,
 * '-', '.', '(' and ')' are dropped; "+" (before the first digit), the
 * "00" international prefix or the country's own ("011" in US and CA)
 * mark a full number, where a "(0)" after the calling code is dropped
 * too ("+44 (0)20...").  Otherwise the number is national and gets the
 * calling code of country (ISO 3166-1 alpha-2, either case, may be NULL)
 * with the country's trunk prefix ("0" in GB, "1" in US...) removed.
 * LOYALTY_DECLINED when the result is not 8 to 15 digits (exactly 11
 * for calling code 1), the country is unknown or missing for a national
 * number, or anything else is in the text (letters, extensions, a second
 * '+', tabs); LOYALTY_ERROR when memory runs out.
 */
int loyalty_identity_phone(const loyalty_str_t *in, const char *country,
    const loyalty_alloc_t *a, loyalty_str_t *out);

/* 1 when loyalty_identity_phone knows the country's calling code */
int loyalty_identity_country_known(const char *country);


#endif /* _LOYALTY_IDENTITY_H_INCLUDED_ */
