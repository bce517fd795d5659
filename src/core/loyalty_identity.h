/*
 * Copyright (C) loyalty-edge authors
 *
 * Identity keys: the deterministic keys customers are matched on.
 */

#ifndef _LOYALTY_IDENTITY_H_INCLUDED_
#define _LOYALTY_IDENTITY_H_INCLUDED_


#include "loyalty_core.h"


#define LOYALTY_EMAIL_MAX  254


/*
 * Trimmed and lower-cased into memory from a; LOYALTY_DECLINED when the
 * value is not an address (no local part, no dotted domain, spaces...).
 */
int loyalty_identity_email(const loyalty_str_t *in, const loyalty_alloc_t *a,
    loyalty_str_t *out);


#endif /* _LOYALTY_IDENTITY_H_INCLUDED_ */
