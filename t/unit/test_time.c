/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_time: RFC 3339 with any offset into UTC, unix seconds and
 * milliseconds into RFC 3339; calendar edges (leap days, month and year
 * ends, years 1 and 9999) and a cross-check against gmtime_r().
 */


#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loyalty_time.h"
#include "loyalty_test.h"


static size_t utc(const char *in, size_t len, char *buf);
static void test_utc(void);
static void test_utc_declined(void);
static void test_unix(void);
static void test_unix_ms(void);
static void test_gmtime(void);
static void test_round_trip(void);
static uint64_t next_random(void);


/* the input is copied to an exact-size heap buffer, as in test_identity */

static size_t
utc(const char *in, size_t len, char *buf)
{
    size_t          n;
    u_char         *copy;
    loyalty_str_t   s;

    if (len == (size_t) -1) {
        len = strlen(in);
    }

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        diag("out of memory");
        exit(2);
    }

    memcpy(copy, in, len);
    s.data = copy;
    s.len = len;

    n = loyalty_time_utc(&s, buf);

    if (memcmp(copy, in, len) != 0) {
        ok(0, "time: input left unchanged");
    }

    free(copy);

    return n;
}


static void
test_utc(void)
{
    char    buf[LOYALTY_TIME_MAX];
    size_t  i, n;

    static const struct {
        const char  *in;
        const char  *exp;
    } good[] = {
        { "2024-01-02T17:00:00Z", "2024-01-02T17:00:00Z" },
        { "2024-01-02t17:00:00z", "2024-01-02T17:00:00Z" },
        { "2024-01-02 17:00:00Z", "2024-01-02T17:00:00Z" },
        { "2024-01-02T17:00:00+00:00", "2024-01-02T17:00:00Z" },
        { "2024-01-02T17:00:00-00:00", "2024-01-02T17:00:00Z" },
        { "2024-01-02T17:00:00+0000", "2024-01-02T17:00:00Z" },
        { "2024-01-02T18:00:00+01:00", "2024-01-02T17:00:00Z" },
        { "2024-01-02T18:00:00+0100", "2024-01-02T17:00:00Z" },
        { "2024-01-02T12:30:00-04:30", "2024-01-02T17:00:00Z" },
        { "2024-01-02T22:45:00+05:45", "2024-01-02T17:00:00Z" },
        { "2024-01-02T12:30:00-0430", "2024-01-02T17:00:00Z" },

        /* the fraction kept as written, whatever its length */
        { "2024-01-02T17:00:00.123+01:00", "2024-01-02T16:00:00.123Z" },
        { "2024-01-02T17:00:00.5Z", "2024-01-02T17:00:00.5Z" },
        { "2024-01-02T17:00:00.000Z", "2024-01-02T17:00:00.000Z" },
        { "2024-01-02T17:00:00.123456789-01:00",
          "2024-01-02T18:00:00.123456789Z" },
        { "2024-01-02T17:00:00.100000+0000", "2024-01-02T17:00:00.100000Z" },

        /* offsets that move the date */
        { "2024-12-31T23:30:00-01:00", "2025-01-01T00:30:00Z" },
        { "2025-01-01T00:30:00+01:00", "2024-12-31T23:30:00Z" },
        { "1999-12-31T23:59:59-00:01", "2000-01-01T00:00:59Z" },
        { "2000-01-01T00:00:00+00:01", "1999-12-31T23:59:00Z" },
        { "2024-03-01T00:30:00+01:00", "2024-02-29T23:30:00Z" },
        { "2023-03-01T00:30:00+01:00", "2023-02-28T23:30:00Z" },
        { "2024-02-28T23:30:00-01:00", "2024-02-29T00:30:00Z" },
        { "2023-02-28T23:30:00-01:00", "2023-03-01T00:30:00Z" },
        { "2000-03-01T00:00:00+00:01", "2000-02-29T23:59:00Z" },
        { "1900-03-01T00:00:00+00:01", "1900-02-28T23:59:00Z" },
        { "2100-03-01T00:00:00+00:01", "2100-02-28T23:59:00Z" },
        { "2400-03-01T00:00:00+00:01", "2400-02-29T23:59:00Z" },
        { "2024-04-30T23:00:00-02:00", "2024-05-01T01:00:00Z" },
        { "2024-05-01T01:00:00+02:00", "2024-04-30T23:00:00Z" },
        { "2024-06-30T23:00:00-02:00", "2024-07-01T01:00:00Z" },
        { "2024-09-30T23:00:00-02:00", "2024-10-01T01:00:00Z" },
        { "2024-11-30T23:00:00-02:00", "2024-12-01T01:00:00Z" },
        { "2024-01-31T23:00:00-02:00", "2024-02-01T01:00:00Z" },
        { "2024-06-15T12:00:00+14:00", "2024-06-14T22:00:00Z" },
        { "2024-06-15T12:00:00-12:00", "2024-06-16T00:00:00Z" },
        { "2024-01-02T00:00:00+23:59", "2024-01-01T00:01:00Z" },
        { "2024-01-02T23:59:59-23:59", "2024-01-03T23:58:59Z" },
        { "1970-01-01T00:59:59+01:00", "1969-12-31T23:59:59Z" },

        /* valid days at the ends of months */
        { "2024-02-29T12:00:00Z", "2024-02-29T12:00:00Z" },
        { "2000-02-29T12:00:00Z", "2000-02-29T12:00:00Z" },
        { "2023-02-28T12:00:00Z", "2023-02-28T12:00:00Z" },
        { "2024-01-31T00:00:00Z", "2024-01-31T00:00:00Z" },
        { "2024-04-30T00:00:00Z", "2024-04-30T00:00:00Z" },
        { "2024-12-31T23:59:59Z", "2024-12-31T23:59:59Z" },

        /* the ends of the range */
        { "0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z" },
        { "0001-01-01T00:30:00+00:30", "0001-01-01T00:00:00Z" },
        { "0001-01-01T00:00:00-23:59", "0001-01-01T23:59:00Z" },
        { "9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z" },
        { "9999-12-31T23:59:59.999999999Z",
          "9999-12-31T23:59:59.999999999Z" },
        { "9999-12-31T23:59:59+23:59", "9999-12-31T00:00:59Z" },
        { "0004-02-29T00:00:00Z", "0004-02-29T00:00:00Z" },
        { "1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z" },

        { NULL, NULL }
    };

    for (i = 0; good[i].in != NULL; i++) {
        memset(buf, 'x', sizeof(buf));
        n = utc(good[i].in, (size_t) -1, buf);

        if (!is_int(n, strlen(good[i].exp), "time: length of the UTC form")) {
            diag("  input \"%s\"", good[i].in);
            continue;
        }

        if (!is_str(buf, good[i].exp, "time: UTC form, NUL-terminated")) {
            diag("  input \"%s\"", good[i].in);
        }
    }

    /* the longest result fits */
    n = utc("2024-01-02T17:00:00.123456789+01:00", (size_t) -1, buf);
    ok(n > 0 && n < LOYALTY_TIME_MAX, "time: longest result fits");

    /* the length bounds the input */
    n = utc("2024-01-02T17:00:00Z and more", 20, buf);
    is_str(n ? buf : "", "2024-01-02T17:00:00Z", "time: length-bounded");
}


static void
test_utc_declined(void)
{
    char    buf[LOYALTY_TIME_MAX];
    size_t  i, n;

    static const char  *bad[] = {
        "",
        "Z",
        "2024",
        "2024-01-02",                       /* a date alone */
        "2024-01-02Z",
        "2024-01-02T17:00:00",              /* no offset: never guessed */
        "2024-01-02T17:00:00.123",
        "2024-01-02T17:00Z",                /* no seconds */
        "2024-01-02T17Z",
        "2024-01-02T17:00:00.Z",            /* empty fraction */
        "2024-01-02T17:00:00.1234567890Z",  /* 10 fraction digits */
        "2024-01-02T17:00:00,5Z",           /* comma fraction */
        "2024-01-02T17:00:00.5.5Z",
        "2024-01-02T17:00:00.+01:00",

        /* out of range fields */
        "2024-00-01T00:00:00Z",
        "2024-13-01T00:00:00Z",
        "2024-01-00T00:00:00Z",
        "2024-01-32T00:00:00Z",
        "2023-02-29T00:00:00Z",             /* not a leap year */
        "1900-02-29T00:00:00Z",             /* centuries are not ... */
        "2100-02-29T00:00:00Z",
        "2024-02-30T00:00:00Z",             /* ... but 2024 is */
        "2000-02-30T00:00:00Z",
        "2024-04-31T00:00:00Z",
        "2024-06-31T00:00:00Z",
        "2024-09-31T00:00:00Z",
        "2024-11-31T00:00:00Z",
        "2024-01-02T24:00:00Z",
        "2024-01-02T25:00:00Z",
        "2024-01-02T23:60:00Z",
        "2024-01-02T23:59:60Z",             /* leap second */
        "2016-12-31T23:59:60Z",
        "2024-01-02T23:59:99Z",
        "0000-01-01T00:00:00Z",             /* year 0 */
        "10000-01-01T00:00:00Z",

        /* ranges left through the offset */
        "0001-01-01T00:00:00+00:01",
        "0001-01-01T00:29:59+00:30",
        "9999-12-31T23:59:59-00:01",
        "9999-12-31T23:00:00-01:00",

        /* offsets */
        "2024-01-02T17:00:00+24:00",
        "2024-01-02T17:00:00+01:60",
        "2024-01-02T17:00:00+1:00",
        "2024-01-02T17:00:00+01",
        "2024-01-02T17:00:00+01:0",
        "2024-01-02T17:00:00+010",
        "2024-01-02T17:00:00+01000",
        "2024-01-02T17:00:00+01:00:00",
        "2024-01-02T17:00:00+01-00",
        "2024-01-02T17:00:00++01:00",
        "2024-01-02T17:00:00+-1:00",
        "2024-01-02T17:00:00ZZ",
        "2024-01-02T17:00:00Z ",
        "2024-01-02T17:00:00 Z",
        "2024-01-02T17:00:00+01:00 ",
        "2024-01-02T17:00:00UTC",
        "2024-01-02T17:00:00GMT",
        "2024-01-02T17:00:00 +01:00",

        /* the shape */
        " 2024-01-02T17:00:00Z",
        "2024-1-02T17:00:00Z",
        "2024-01-2T17:00:00Z",
        "2024-01-02T7:00:00Z",
        "24-01-02T17:00:00Z",
        "+2024-01-02T17:00:00Z",
        "-2024-01-02T17:00:00Z",
        "2024/01/02T17:00:00Z",
        "2024-01-02X17:00:00Z",
        "2024-01-02_17:00:00Z",
        "2024-01-02T17.00.00Z",
        "20240102T170000Z",
        "2024-01-02T17:00:0aZ",
        "2024-0a-02T17:00:00Z",
        "2024-01-02T1 :00:00Z",
        "2024-01-02T17:00:00.1a3Z",
        "\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x94-01-02T17:00:00Z",
        "Tue, 02 Jan 2024 17:00:00 GMT",
        "1704214800",
        NULL
    };

    for (i = 0; bad[i] != NULL; i++) {
        buf[0] = '\0';
        n = utc(bad[i], (size_t) -1, buf);

        if (!is_int(n, 0, "time declined")) {
            diag("  input \"%s\" gave \"%s\"", bad[i], buf);
        }
    }

    n = utc("2024-01-02T17:00:00Z\0", 21, buf);
    is_int(n, 0, "time: NUL after the offset declined");

    n = utc("2024-01-02T17:00:00.\0Z", 22, buf);
    is_int(n, 0, "time: NUL in the fraction declined");

    n = utc("2024-01-02T17:00:00+01:00", 24, buf);
    is_int(n, 0, "time: offset cut by the length declined");

    n = utc("2024-01-02T17:00:00", 19, buf);
    is_int(n, 0, "time: 19 bytes, nothing after the seconds");
}


static void
test_unix(void)
{
    char    buf[LOYALTY_TIME_MAX];
    size_t  i, n;

    static const struct {
        int64_t      in;
        const char  *exp;                   /* NULL: out of range */
    } cases[] = {
        { 0, "1970-01-01T00:00:00Z" },
        { 1, "1970-01-01T00:00:01Z" },
        { -1, "1969-12-31T23:59:59Z" },
        { 86399, "1970-01-01T23:59:59Z" },
        { 86400, "1970-01-02T00:00:00Z" },
        { -86400, "1969-12-31T00:00:00Z" },
        { -86401, "1969-12-30T23:59:59Z" },
        { 1704214800, "2024-01-02T17:00:00Z" },
        { 951782400, "2000-02-29T00:00:00Z" },
        { 1709164800, "2024-02-29T00:00:00Z" },
        { 1709251199, "2024-02-29T23:59:59Z" },
        { 1709251200, "2024-03-01T00:00:00Z" },
        { 1735689599, "2024-12-31T23:59:59Z" },
        { 1735689600, "2025-01-01T00:00:00Z" },
        { INT64_C(2147483647), "2038-01-19T03:14:07Z" },
        { INT64_C(2147483648), "2038-01-19T03:14:08Z" },
        { INT64_C(-2208988800), "1900-01-01T00:00:00Z" },
        { INT64_C(-2203891200), "1900-03-01T00:00:00Z" },
        { INT64_C(-2203891201), "1900-02-28T23:59:59Z" },
        { INT64_C(4107542400), "2100-03-01T00:00:00Z" },
        { INT64_C(4107542399), "2100-02-28T23:59:59Z" },
        { INT64_C(-62135596800), "0001-01-01T00:00:00Z" },
        { INT64_C(-62135596801), NULL },
        { INT64_C(253402300799), "9999-12-31T23:59:59Z" },
        { INT64_C(253402300800), NULL },
        { INT64_MAX, NULL },
        { INT64_MIN, NULL },
        { INT64_MAX / 1000, NULL },
        { INT64_MIN / 1000, NULL },
        { 0, (const char *) 1 }             /* end */
    };

    for (i = 0; cases[i].exp != (const char *) 1; i++) {
        buf[0] = '\0';
        n = loyalty_time_unix(cases[i].in, buf);

        if (cases[i].exp == NULL) {
            if (!is_int(n, 0, "unix: out of range")) {
                diag("  input %lld gave \"%s\"", (long long) cases[i].in, buf);
            }

            continue;
        }

        if (!is_int(n, strlen(cases[i].exp), "unix: length")) {
            diag("  input %lld", (long long) cases[i].in);
            continue;
        }

        if (!is_str(buf, cases[i].exp, "unix: RFC 3339 UTC")) {
            diag("  input %lld", (long long) cases[i].in);
        }
    }
}


static void
test_unix_ms(void)
{
    char    buf[LOYALTY_TIME_MAX];
    size_t  i, n;

    static const struct {
        int64_t      in;
        const char  *exp;
    } cases[] = {
        { 0, "1970-01-01T00:00:00.000Z" },
        { 1, "1970-01-01T00:00:00.001Z" },
        { 999, "1970-01-01T00:00:00.999Z" },
        { 1000, "1970-01-01T00:00:01.000Z" },
        { 1010, "1970-01-01T00:00:01.010Z" },
        { 1100, "1970-01-01T00:00:01.100Z" },
        { -1, "1969-12-31T23:59:59.999Z" },
        { -999, "1969-12-31T23:59:59.001Z" },
        { -1000, "1969-12-31T23:59:59.000Z" },
        { -1001, "1969-12-31T23:59:58.999Z" },
        { INT64_C(1704214800123), "2024-01-02T17:00:00.123Z" },
        { INT64_C(1735689599999), "2024-12-31T23:59:59.999Z" },
        { INT64_C(1735689600000), "2025-01-01T00:00:00.000Z" },
        { INT64_C(-62135596800000), "0001-01-01T00:00:00.000Z" },
        { INT64_C(-62135596799999), "0001-01-01T00:00:00.001Z" },
        { INT64_C(-62135596800001), NULL },
        { INT64_C(253402300799999), "9999-12-31T23:59:59.999Z" },
        { INT64_C(253402300800000), NULL },
        { INT64_MAX, NULL },
        { INT64_MIN, NULL },
        { INT64_MIN + 1, NULL },
        { 0, (const char *) 1 }
    };

    for (i = 0; cases[i].exp != (const char *) 1; i++) {
        buf[0] = '\0';
        n = loyalty_time_unix_ms(cases[i].in, buf);

        if (cases[i].exp == NULL) {
            if (!is_int(n, 0, "unix ms: out of range")) {
                diag("  input %lld gave \"%s\"", (long long) cases[i].in, buf);
            }

            continue;
        }

        if (!is_int(n, strlen(cases[i].exp), "unix ms: length")) {
            diag("  input %lld", (long long) cases[i].in);
            continue;
        }

        if (!is_str(buf, cases[i].exp, "unix ms: RFC 3339 UTC")) {
            diag("  input %lld", (long long) cases[i].in);
        }
    }
}


/* a fixed sequence, so that a failure can be reproduced */

static uint64_t
next_random(void)
{
    static uint64_t  x = 0x9e3779b97f4a7c15;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;

    return x;
}


/*
 * loyalty_time_unix() against glibc's gmtime_r(), which also counts the
 * proleptic Gregorian calendar, over the whole range: every day of
 * 1890-2110 and 200000 random seconds of years 1-9999.
 */

static void
test_gmtime(void)
{
    int        bad;
    char       buf[LOYALTY_TIME_MAX], exp[64];
    size_t     i, n;
    time_t     tt;
    int64_t    t, first, span;
    struct tm  tm;

    if (sizeof(time_t) < 8) {
        ok(1, "# SKIP 32-bit time_t");
        return;
    }

    bad = 0;
    first = INT64_C(-62135596800);
    span = INT64_C(253402300799) - first + 1;

    for (i = 0; i < 80000 + 200000; i++) {
        if (i < 80000) {
            t = INT64_C(-2524521600) + (int64_t) i * 86400
                + (int64_t) (i * 7919 % 86400);

        } else {
            t = first + (int64_t) (next_random() % (uint64_t) span);
        }

        tt = (time_t) t;

        if (gmtime_r(&tt, &tm) == NULL) {
            bad++;
            continue;
        }

        snprintf(exp, sizeof(exp), "%04d-%02d-%02dT%02d:%02d:%02dZ",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                 tm.tm_hour, tm.tm_min, tm.tm_sec);

        n = loyalty_time_unix(t, buf);

        if (n != strlen(exp) || strcmp(buf, exp) != 0) {
            if (bad++ < 5) {
                diag("  %lld: got \"%s\", gmtime_r \"%s\"", (long long) t,
                     n ? buf : "", exp);
            }
        }
    }

    is_int(bad, 0, "unix: same as gmtime_r over years 1-9999");
}


/*
 * The same instant written with random offsets: a local time (unix
 * seconds plus the offset, formatted by loyalty_time_unix()) and its
 * offset must give back the UTC form of the instant.
 */

static void
test_round_trip(void)
{
    int      bad, off, oh, om;
    char     local[LOYALTY_TIME_MAX + 8], exp[LOYALTY_TIME_MAX];
    char     got[LOYALTY_TIME_MAX];
    size_t   i, n;
    int64_t  t, first, span;

    bad = 0;
    first = INT64_C(-62135596800) + 86400;
    span = INT64_C(253402300799) - 86400 - first + 1;

    for (i = 0; i < 200000; i++) {
        t = first + (int64_t) (next_random() % (uint64_t) span);
        off = (int) (next_random() % (2 * 1439 + 1)) - 1439;
        off *= 60;

        if (loyalty_time_unix(t, exp) == 0
            || loyalty_time_unix(t + off, local) == 0)
        {
            bad++;
            continue;
        }

        oh = abs(off) / 3600;
        om = abs(off) / 60 % 60;

        /* "...SSZ" becomes "...SS+hh:mm" or "...SS-hhmm" */
        snprintf(local + 19, sizeof(local) - 19,
                 (i & 1) ? "%c%02d:%02d" : "%c%02d%02d",
                 off < 0 ? '-' : '+', oh, om);

        n = utc(local, (size_t) -1, got);

        if (n != strlen(exp) || strcmp(got, exp) != 0) {
            if (bad++ < 5) {
                diag("  \"%s\": got \"%s\", expected \"%s\"", local,
                     n ? got : "", exp);
            }
        }
    }

    is_int(bad, 0, "time: offsets of -23:59..+23:59 give back the instant");
}


int
main(void)
{
    test_utc();
    test_utc_declined();
    test_unix();
    test_unix_ms();
    test_gmtime();
    test_round_trip();

    return done_testing();
}
