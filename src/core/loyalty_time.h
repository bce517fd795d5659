/*
 * Copyright (C) loyalty-edge authors
 *
 * Times into one form, RFC 3339 UTC ("2024-01-02T17:00:00Z", with the
 * sender's fraction of a second kept), so that consumers can compare
 * and order them as strings.
 */

#ifndef _LOYALTY_TIME_H_INCLUDED_
#define _LOYALTY_TIME_H_INCLUDED_


#include "loyalty_core.h"


#define LOYALTY_TIME_MAX  40     /* buffer size for any result */


/*
 * "YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm|+hhmm)" ('T', 't' or ' '
 * between date and time; 'z' too) into UTC in buf, NUL-terminated.  The
 * fraction (1-9 digits) is kept as written.  Returns the length, or 0
 * when the text is not such a time, has no offset (never guessed), or a
 * field is out of range (month 13, 25:00, Feb 30, a leap second :60...).
 * Years 0001-9999, before and after the offset is applied.
 */
size_t loyalty_time_utc(const loyalty_str_t *in, char *buf);

/* unix seconds into buf ("...Z", no fraction); 0 when out of range */
size_t loyalty_time_unix(int64_t seconds, char *buf);

/* unix milliseconds into buf ("....123Z"); 0 when out of range */
size_t loyalty_time_unix_ms(int64_t ms, char *buf);


#endif /* _LOYALTY_TIME_H_INCLUDED_ */
