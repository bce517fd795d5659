/*
 * Copyright (C) loyalty-edge authors
 *
 * Calendar arithmetic is done here on the proleptic Gregorian calendar
 * (days from civil, after H. Hinnant) rather than with timegm(), mktime()
 * or gmtime(): no TZ, no locale, no static buffers, the same result on
 * every platform and in every thread.
 */


#include "loyalty_time.h"


#define LOYALTY_DAY           86400
#define LOYALTY_FRAC_MAX      9

/* 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in unix seconds */
#define LOYALTY_TIME_FIRST    INT64_C(-62135596800)
#define LOYALTY_TIME_LAST     INT64_C(253402300799)


static int loyalty_time_digits(const u_char *p, size_t n);
static int loyalty_time_days_in_month(int year, int month);
static int64_t loyalty_time_days_from_civil(int year, int month, int day);
static void loyalty_time_civil_from_days(int64_t days, int *year,
    int *month, int *day);
static size_t loyalty_time_write(int64_t seconds, const u_char *frac,
    size_t frac_len, char *buf);
static char *loyalty_time_put(char *p, int value, size_t width);


size_t
loyalty_time_utc(const loyalty_str_t *in, char *buf)
{
    int            year, month, day, hour, min, sec, oh, om, off;
    size_t         len, i, frac_len;
    int64_t        t;
    const u_char  *p, *frac;

    p = in->data;
    len = in->len;

    /* the fixed part: "YYYY-MM-DDTHH:MM:SS" */

    if (len < 20
        || p[4] != '-' || p[7] != '-'
        || (p[10] != 'T' && p[10] != 't' && p[10] != ' ')
        || p[13] != ':' || p[16] != ':')
    {
        return 0;
    }

    year = loyalty_time_digits(p, 4);
    month = loyalty_time_digits(p + 5, 2);
    day = loyalty_time_digits(p + 8, 2);
    hour = loyalty_time_digits(p + 11, 2);
    min = loyalty_time_digits(p + 14, 2);
    sec = loyalty_time_digits(p + 17, 2);

    if (year < 1 || month < 1 || month > 12 || day < 1
        || day > loyalty_time_days_in_month(year, month)
        || hour < 0 || hour > 23 || min < 0 || min > 59
        || sec < 0 || sec > 59)
    {
        /* a leap second (:60) is refused too: it has no unix time */
        return 0;
    }

    i = 19;
    frac = NULL;
    frac_len = 0;

    if (p[i] == '.') {
        frac = p + ++i;

        while (i < len && p[i] >= '0' && p[i] <= '9') {
            i++;
        }

        frac_len = i - (size_t) (frac - p);

        if (frac_len == 0 || frac_len > LOYALTY_FRAC_MAX || i == len) {
            return 0;
        }
    }

    /* the offset, never guessed when missing */

    if ((p[i] == 'Z' || p[i] == 'z') && i + 1 == len) {
        off = 0;

    } else if (p[i] == '+' || p[i] == '-') {

        if (i + 6 == len && p[i + 3] == ':') {
            oh = loyalty_time_digits(p + i + 1, 2);
            om = loyalty_time_digits(p + i + 4, 2);

        } else if (i + 5 == len) {
            oh = loyalty_time_digits(p + i + 1, 2);
            om = loyalty_time_digits(p + i + 3, 2);

        } else {
            return 0;
        }

        if (oh < 0 || oh > 23 || om < 0 || om > 59) {
            return 0;
        }

        off = (oh * 60 + om) * 60;

        if (p[i] == '-') {
            off = -off;
        }

    } else {
        return 0;
    }

    /* local time minus its offset is UTC, possibly another day */

    t = loyalty_time_days_from_civil(year, month, day) * LOYALTY_DAY
        + hour * 3600 + min * 60 + sec - off;

    if (t < LOYALTY_TIME_FIRST || t > LOYALTY_TIME_LAST) {
        return 0;
    }

    return loyalty_time_write(t, frac, frac_len, buf);
}


size_t
loyalty_time_unix(int64_t seconds, char *buf)
{
    if (seconds < LOYALTY_TIME_FIRST || seconds > LOYALTY_TIME_LAST) {
        return 0;
    }

    return loyalty_time_write(seconds, NULL, 0, buf);
}


size_t
loyalty_time_unix_ms(int64_t ms, char *buf)
{
    u_char   frac[3];
    int64_t  seconds, rem;

    /* floor division: -1 ms is 23:59:59.999 of the day before */

    seconds = ms / 1000;
    rem = ms % 1000;

    if (rem < 0) {
        rem += 1000;
        seconds--;
    }

    if (seconds < LOYALTY_TIME_FIRST || seconds > LOYALTY_TIME_LAST) {
        return 0;
    }

    frac[0] = (u_char) ('0' + rem / 100);
    frac[1] = (u_char) ('0' + rem / 10 % 10);
    frac[2] = (u_char) ('0' + rem % 10);

    return loyalty_time_write(seconds, frac, 3, buf);
}


/* n ASCII digits as a number, or -1 */

static int
loyalty_time_digits(const u_char *p, size_t n)
{
    int     v;
    size_t  i;

    v = 0;

    for (i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }

        v = v * 10 + (p[i] - '0');
    }

    return v;
}


static int
loyalty_time_days_in_month(int year, int month)
{
    static const int  days[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    if (month == 2
        && year % 4 == 0 && (year % 100 != 0 || year % 400 == 0))
    {
        return 29;
    }

    return days[month - 1];
}


/*
 * Days since 1970-01-01.  The year is counted from March, so that the
 * leap day ends it, in 400-year eras of 146097 days each.
 */

static int64_t
loyalty_time_days_from_civil(int year, int month, int day)
{
    int64_t  y, era, yoe, doy, doe;

    y = year - (month <= 2);
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = y - era * 400;
    doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

    return era * 146097 + doe - 719468;
}


/* the inverse of loyalty_time_days_from_civil() */

static void
loyalty_time_civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t  z, era, doe, yoe, doy, mp;

    z = days + 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = z - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;

    *day = (int) (doy - (153 * mp + 2) / 5 + 1);
    *month = (int) (mp < 10 ? mp + 3 : mp - 9);
    *year = (int) (yoe + era * 400 + (*month <= 2));
}


/* seconds must be in 0001..9999; frac, when given, is written as it is */

static size_t
loyalty_time_write(int64_t seconds, const u_char *frac, size_t frac_len,
    char *buf)
{
    int      year, month, day, sod;
    char    *p;
    size_t   i;
    int64_t  days;

    days = seconds / LOYALTY_DAY;
    sod = (int) (seconds % LOYALTY_DAY);

    if (sod < 0) {
        sod += LOYALTY_DAY;
        days--;
    }

    loyalty_time_civil_from_days(days, &year, &month, &day);

    p = buf;
    p = loyalty_time_put(p, year, 4);
    *p++ = '-';
    p = loyalty_time_put(p, month, 2);
    *p++ = '-';
    p = loyalty_time_put(p, day, 2);
    *p++ = 'T';
    p = loyalty_time_put(p, sod / 3600, 2);
    *p++ = ':';
    p = loyalty_time_put(p, sod / 60 % 60, 2);
    *p++ = ':';
    p = loyalty_time_put(p, sod % 60, 2);

    if (frac_len) {
        *p++ = '.';

        for (i = 0; i < frac_len; i++) {
            *p++ = (char) frac[i];
        }
    }

    *p++ = 'Z';
    *p = '\0';

    return (size_t) (p - buf);
}


/* value as exactly width decimal digits, zero-padded */

static char *
loyalty_time_put(char *p, int value, size_t width)
{
    size_t  i;

    for (i = width; i > 0; i--) {
        p[i - 1] = (char) ('0' + value % 10);
        value /= 10;
    }

    return p + width;
}
