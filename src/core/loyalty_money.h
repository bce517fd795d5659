/*
 * Copyright (C) loyalty-edge authors
 *
 * Money and counts as senders write them ("49.00", 45.0, "1250.0") into
 * exact integers, never through a double: money becomes minor units of
 * its ISO 4217 currency, points become whole numbers.
 */

#ifndef _LOYALTY_MONEY_H_INCLUDED_
#define _LOYALTY_MONEY_H_INCLUDED_


#include "loyalty_core.h"


/*
 * Three ASCII letters, either case, into upper case in out[0..3]
 * (NUL-terminated); LOYALTY_DECLINED for anything else.
 */
int loyalty_currency_code(const loyalty_str_t *in, char out[4]);

/*
 * ISO 4217 minor-unit exponent of a code: 0, 2 or 3.  Lower case is
 * accepted too; NULL, unknown codes and those without a minor unit give 2.
 */
int loyalty_currency_exponent(const char *code);

/*
 * A plain decimal ("-12", "49.00", "45.0", "0.5") into units of
 * 10^-exponent: "49.00" at exponent 2 is 4900.  Extra fraction digits
 * must be zero ("45.000" is fine at 2, "45.005" is not).  No exponent
 * notation, no leading '+', no spaces, a digit on both sides of the
 * point ("5." and ".5" decline); exponent 0 to 18.  LOYALTY_DECLINED when
 * the text is not such a number or the result does not fit in int64;
 * *out is set only on LOYALTY_OK.
 */
int loyalty_decimal_scaled(const loyalty_str_t *text, int exponent,
    int64_t *out);

/* same with exponent 0: "1250.0" is 1250, "12.5" declines */
#define loyalty_decimal_int(text, out)  loyalty_decimal_scaled(text, 0, out)


#endif /* _LOYALTY_MONEY_H_INCLUDED_ */
