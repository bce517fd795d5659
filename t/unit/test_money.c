/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_money: currency codes, ISO 4217 exponents and decimal text
 * into exact int64 minor units, with the int64 edges on both sides.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_money.h"
#include "loyalty_test.h"


#define SENTINEL  INT64_C(0x5a5a5a5a5a5a5a5a)


static u_char *heap_copy(const char *in, size_t len);
static int code(const char *in, size_t len, char out[4]);
static int scaled(const char *in, size_t len, int exponent, int64_t *out);
static void test_code(void);
static void test_exponent(void);
static void test_scaled(void);
static void test_declined(void);
static void test_edges(void);
static void test_int(void);


/* an exact-size heap copy, so that ASan catches reads past the end */

static u_char *
heap_copy(const char *in, size_t len)
{
    u_char  *copy;

    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        diag("out of memory");
        exit(2);
    }

    memcpy(copy, in, len);

    return copy;
}


/* len (size_t) -1: strlen(in) */

static int
code(const char *in, size_t len, char out[4])
{
    int             rc;
    u_char         *copy;
    loyalty_str_t   s;

    if (len == (size_t) -1) {
        len = strlen(in);
    }

    copy = heap_copy(in, len);
    s.data = copy;
    s.len = len;

    rc = loyalty_currency_code(&s, out);

    free(copy);

    return rc;
}


static int
scaled(const char *in, size_t len, int exponent, int64_t *out)
{
    int             rc;
    u_char         *copy;
    loyalty_str_t   s;

    if (len == (size_t) -1) {
        len = strlen(in);
    }

    copy = heap_copy(in, len);
    s.data = copy;
    s.len = len;

    rc = loyalty_decimal_scaled(&s, exponent, out);

    if (memcmp(copy, in, len) != 0) {
        ok(0, "decimal: input left unchanged");
    }

    free(copy);

    return rc;
}


static void
test_code(void)
{
    int     rc;
    char    out[4];
    size_t  i;

    static const struct {
        const char  *in;
        const char  *exp;
    } good[] = {
        { "EUR", "EUR" },
        { "eur", "EUR" },
        { "Usd", "USD" },
        { "jPy", "JPY" },
        { "aaa", "AAA" },
        { "zzz", "ZZZ" },
        { "AZa", "AZA" },
        { NULL, NULL }
    };

    static const char  *bad[] = {
        "",
        "E",
        "EU",
        "EURO",
        "EU ",
        " EU",
        "E1R",
        "123",
        "E-R",
        "@UR",                              /* one below 'A' */
        "[UR",                              /* one above 'Z' */
        "`ur",                              /* one below 'a' */
        "{ur",                              /* one above 'z' */
        "\xc9UR",                           /* Latin-1 E acute */
        "\xe2\x82\xac",                     /* the euro sign, 3 bytes */
        NULL
    };

    for (i = 0; good[i].in != NULL; i++) {
        memset(out, 'x', sizeof(out));
        rc = code(good[i].in, (size_t) -1, out);

        if (!is_int(rc, LOYALTY_OK, "currency code accepted")) {
            diag("  input \"%s\"", good[i].in);
            continue;
        }

        if (!is_str(out, good[i].exp, "currency code upper-cased, NUL")) {
            diag("  input \"%s\"", good[i].in);
        }
    }

    for (i = 0; bad[i] != NULL; i++) {
        rc = code(bad[i], (size_t) -1, out);

        if (!is_int(rc, LOYALTY_DECLINED, "currency code declined")) {
            diag("  input \"%s\"", bad[i]);
        }
    }

    rc = code("EU\0", 3, out);
    is_int(rc, LOYALTY_DECLINED, "currency code: NUL byte declined");

    rc = code("GBPX", 3, out);
    is_int(rc, LOYALTY_OK, "currency code: only len bytes read");
    is_str(out, "GBP", "currency code: length-bounded input");
}


static void
test_exponent(void)
{
    size_t  i;

    static const struct {
        const char  *code;
        int          exp;
    } cases[] = {
        /* ISO 4217 minor unit 0 */
        { "BIF", 0 }, { "CLP", 0 }, { "DJF", 0 }, { "GNF", 0 },
        { "ISK", 0 }, { "JPY", 0 }, { "KMF", 0 }, { "KRW", 0 },
        { "PYG", 0 }, { "RWF", 0 }, { "UGX", 0 }, { "UYI", 0 },
        { "VND", 0 }, { "VUV", 0 }, { "XAF", 0 }, { "XOF", 0 },
        { "XPF", 0 },
        /* minor unit 3 */
        { "BHD", 3 }, { "IQD", 3 }, { "JOD", 3 }, { "KWD", 3 },
        { "LYD", 3 }, { "OMR", 3 }, { "TND", 3 },
        /* the usual hundredth, and anything not known */
        { "EUR", 2 }, { "USD", 2 }, { "GBP", 2 }, { "CHF", 2 },
        { "SEK", 2 }, { "CNY", 2 }, { "INR", 2 }, { "BRL", 2 },
        { "AED", 2 }, { "UYU", 2 }, { "XXX", 2 }, { "ZZZ", 2 },
        /* lower case is the same currency */
        { "jpy", 0 }, { "Kwd", 3 }, { "eur", 2 },
        /* not a three-letter code */
        { "", 2 }, { "JP", 2 }, { "JPYX", 2 }, { "JP1", 2 },
        { NULL, 0 }
    };

    for (i = 0; cases[i].code != NULL; i++) {
        if (!is_int(loyalty_currency_exponent(cases[i].code), cases[i].exp,
                    "currency exponent"))
        {
            diag("  code \"%s\"", cases[i].code);
        }
    }

    is_int(loyalty_currency_exponent(NULL), 2, "currency exponent: NULL");
}


static void
test_scaled(void)
{
    int      rc;
    size_t   i;
    int64_t  v;

    static const struct {
        const char  *in;
        int          exponent;
        int64_t      exp;
    } good[] = {
        { "0", 0, 0 },
        { "0", 2, 0 },
        { "-0", 2, 0 },
        { "-0.00", 2, 0 },
        { "49.00", 2, 4900 },
        { "49", 2, 4900 },
        { "49.9", 2, 4990 },
        { "49.99", 2, 4999 },
        { "45.0", 2, 4500 },
        { "45.000", 2, 4500 },
        { "45.0000000000000000000000", 2, 4500 },
        { "0.5", 2, 50 },
        { "0.01", 2, 1 },
        { "-0.01", 2, -1 },
        { "-12", 2, -1200 },
        { "-12.34", 2, -1234 },
        { "1250.0", 0, 1250 },
        { "1250", 0, 1250 },
        { "-1250.000", 0, -1250 },
        { "007", 0, 7 },
        { "007.50", 2, 750 },
        { "0000000000000000000000000000001", 0, 1 },
        { "12.345", 3, 12345 },
        { "12.3450", 3, 12345 },
        { "1", 3, 1000 },
        { "0.001", 3, 1 },
        { "-0.001", 3, -1 },
        { "0.10", 1, 1 },
        { "1", 18, INT64_C(1000000000000000000) },
        { "1000000000000000000", 0, INT64_C(1000000000000000000) },
        { "-1000000000000000000", 0, -INT64_C(1000000000000000000) },
        { "999999999999999999", 0, INT64_C(999999999999999999) },
        { NULL, 0, 0 }
    };

    for (i = 0; good[i].in != NULL; i++) {
        v = SENTINEL;
        rc = scaled(good[i].in, (size_t) -1, good[i].exponent, &v);

        if (!is_int(rc, LOYALTY_OK, "decimal accepted")) {
            diag("  input \"%s\" at %d", good[i].in, good[i].exponent);
            continue;
        }

        if (!is_int(v, good[i].exp, "decimal scaled")) {
            diag("  input \"%s\" at %d", good[i].in, good[i].exponent);
        }
    }

    /* the length bounds the input */
    rc = scaled("12.5oops", 4, 2, &v);
    is_int(rc, LOYALTY_OK, "decimal: length-bounded input");
    is_int(v, 1250, "decimal: only len bytes read");
}


static void
test_declined(void)
{
    int      rc;
    size_t   i;
    int64_t  v;

    static const struct {
        const char  *in;
        int          exponent;
    } bad[] = {
        { "", 2 },
        { "-", 2 },
        { "--5", 2 },
        { "-+5", 2 },
        { "+5", 2 },                        /* no '+' */
        { "5.", 2 },                        /* a digit on both sides */
        { ".5", 2 },
        { "-.5", 2 },
        { "-5.", 2 },
        { ".", 2 },
        { "-.", 2 },
        { "1e3", 2 },                       /* no exponent notation */
        { "1E3", 2 },
        { "1.0e2", 2 },
        { " 5", 2 },                        /* no spaces */
        { "5 ", 2 },
        { "- 5", 2 },
        { "1 000", 2 },
        { "1,5", 2 },
        { "1,000.00", 2 },
        { "1_000", 2 },
        { "1.2.3", 2 },
        { "1..2", 2 },
        { "0x10", 2 },
        { "Infinity", 2 },
        { "NaN", 2 },
        { "\xef\xbc\x95", 2 },              /* fullwidth 5 */
        { "5-", 2 },
        { "5.-1", 2 },
        { "12.5", 0 },                      /* finer than the unit */
        { "45.005", 2 },
        { "45.0001", 2 },
        { "45.00000000000000000001", 2 },
        { "0.0001", 3 },
        { "5", -1 },                        /* exponent out of range */
        { "5", 19 },
        { "0", 19 },
        { NULL, 0 }
    };

    for (i = 0; bad[i].in != NULL; i++) {
        v = SENTINEL;
        rc = scaled(bad[i].in, (size_t) -1, bad[i].exponent, &v);

        if (!is_int(rc, LOYALTY_DECLINED, "decimal declined")) {
            diag("  input \"%s\" at %d gave %lld", bad[i].in,
                 bad[i].exponent, (long long) v);
        }

        if (!ok(v == SENTINEL, "decimal declined: *out left alone")) {
            diag("  input \"%s\" at %d", bad[i].in, bad[i].exponent);
        }
    }

    rc = scaled("5\0", 2, 2, &v);
    is_int(rc, LOYALTY_DECLINED, "decimal: NUL byte declined");

    rc = scaled("5.0\0", 4, 2, &v);
    is_int(rc, LOYALTY_DECLINED, "decimal: NUL in the fraction declined");
}


/* the int64 limits, reached through every path that multiplies */

static void
test_edges(void)
{
    int      rc;
    size_t   i;
    int64_t  v;

    static const struct {
        const char  *in;
        int          exponent;
        int          rc;
        int64_t      exp;
    } cases[] = {
        /* integer digits */
        { "9223372036854775807", 0, LOYALTY_OK, INT64_MAX },
        { "-9223372036854775808", 0, LOYALTY_OK, INT64_MIN },
        { "9223372036854775808", 0, LOYALTY_DECLINED, 0 },
        { "-9223372036854775809", 0, LOYALTY_DECLINED, 0 },
        { "9223372036854775810", 0, LOYALTY_DECLINED, 0 },
        { "9999999999999999999", 0, LOYALTY_DECLINED, 0 },
        { "-9999999999999999999", 0, LOYALTY_DECLINED, 0 },
        { "18446744073709551615", 0, LOYALTY_DECLINED, 0 },
        { "18446744073709551616", 0, LOYALTY_DECLINED, 0 },
        { "36893488147419103232", 0, LOYALTY_DECLINED, 0 },
        { "10000000000000000000", 0, LOYALTY_DECLINED, 0 },
        { "0009223372036854775807", 0, LOYALTY_OK, INT64_MAX },
        { "9223372036854775807.000", 0, LOYALTY_OK, INT64_MAX },
        { "-9223372036854775808.0", 0, LOYALTY_OK, INT64_MIN },
        { "9223372036854775807.1", 0, LOYALTY_DECLINED, 0 },

        /* fraction digits */
        { "92233720368547758.07", 2, LOYALTY_OK, INT64_MAX },
        { "-92233720368547758.08", 2, LOYALTY_OK, INT64_MIN },
        { "92233720368547758.08", 2, LOYALTY_DECLINED, 0 },
        { "-92233720368547758.09", 2, LOYALTY_DECLINED, 0 },
        { "92233720368547758.070", 2, LOYALTY_OK, INT64_MAX },
        { "9.223372036854775807", 18, LOYALTY_OK, INT64_MAX },
        { "-9.223372036854775808", 18, LOYALTY_OK, INT64_MIN },
        { "9.223372036854775808", 18, LOYALTY_DECLINED, 0 },
        { "0.000000000000000001", 18, LOYALTY_OK, 1 },

        /* zeros added for the missing fraction */
        { "92233720368547758", 2, LOYALTY_OK, INT64_C(9223372036854775800) },
        { "-92233720368547758", 2, LOYALTY_OK,
          -INT64_C(9223372036854775800) },
        { "92233720368547759", 2, LOYALTY_DECLINED, 0 },
        { "92233720368547758.1", 2, LOYALTY_DECLINED, 0 },
        { "92233720368547758.0", 2, LOYALTY_OK,
          INT64_C(9223372036854775800) },
        { "922337203685477581", 2, LOYALTY_DECLINED, 0 },
        { "9", 18, LOYALTY_OK, INT64_C(9000000000000000000) },
        { "-9", 18, LOYALTY_OK, -INT64_C(9000000000000000000) },
        { "10", 18, LOYALTY_DECLINED, 0 },
        { "-10", 18, LOYALTY_DECLINED, 0 },
        { "9.3", 18, LOYALTY_DECLINED, 0 },

        { NULL, 0, 0, 0 }
    };

    for (i = 0; cases[i].in != NULL; i++) {
        v = SENTINEL;
        rc = scaled(cases[i].in, (size_t) -1, cases[i].exponent, &v);

        if (!is_int(rc, cases[i].rc, "decimal int64 edge")) {
            diag("  input \"%s\" at %d gave %lld", cases[i].in,
                 cases[i].exponent, (long long) v);
            continue;
        }

        if (rc == LOYALTY_OK) {
            if (!is_int(v, cases[i].exp, "decimal int64 edge value")) {
                diag("  input \"%s\" at %d", cases[i].in, cases[i].exponent);
            }

        } else if (!ok(v == SENTINEL, "decimal overflow: *out left alone")) {
            diag("  input \"%s\" at %d", cases[i].in, cases[i].exponent);
        }
    }
}


static void
test_int(void)
{
    int            rc;
    int64_t        v;
    loyalty_str_t  s;

    s = lt_str("1250.0");
    rc = loyalty_decimal_int(&s, &v);
    is_int(rc, LOYALTY_OK, "decimal_int: 1250.0 accepted");
    is_int(v, 1250, "decimal_int: 1250.0 is 1250");

    s = lt_str("12.5");
    rc = loyalty_decimal_int(&s, &v);
    is_int(rc, LOYALTY_DECLINED, "decimal_int: 12.5 declined");

    /* a JSON number as the sender wrote it, scaled by its currency */
    s = lt_str("49.9");
    rc = loyalty_decimal_scaled(&s, loyalty_currency_exponent("JPY"), &v);
    is_int(rc, LOYALTY_DECLINED, "decimal: 49.9 JPY declined");

    rc = loyalty_decimal_scaled(&s, loyalty_currency_exponent("KWD"), &v);
    is_int(rc, LOYALTY_OK, "decimal: 49.9 KWD accepted");
    is_int(v, 49900, "decimal: 49.9 KWD is 49900 fils");

    /* an empty loyalty_str_t with no data pointer */
    s.data = NULL;
    s.len = 0;
    v = SENTINEL;
    rc = loyalty_decimal_scaled(&s, 2, &v);
    is_int(rc, LOYALTY_DECLINED, "decimal: null string declined");
    ok(v == SENTINEL, "decimal: null string leaves *out alone");
}


int
main(void)
{
    test_code();
    test_exponent();
    test_scaled();
    test_declined();
    test_edges();
    test_int();

    return done_testing();
}
