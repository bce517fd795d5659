/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_identity: email keys are trimmed and lower-cased, phone keys
 * become E.164, and anything that is not a plain address or number is
 * declined, never guessed.
 *
 * check_ok() tests pin fixes of core bugs found while writing them.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_identity.h"
#include "loyalty_test.h"


static int email(const char *in, size_t len, loyalty_str_t *out);
static void test_normalise(void);
static void test_reject(void);
static void test_length(void);
static void test_memory(void);
static int phone(const char *in, size_t len, const char *country,
    loyalty_str_t *out);
static void test_phone(void);
static void test_phone_reject(void);
static void test_phone_country(void);
static void test_phone_memory(void);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


/* len (size_t) -1: strlen(in); the input is copied to an exact-size heap
 * buffer so ASan catches reads past its end */

static int
email(const char *in, size_t len, loyalty_str_t *out)
{
    int             rc;
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
    out->data = NULL;
    out->len = 0;

    rc = loyalty_identity_email(&s, &alloc, out);

    if (memcmp(copy, in, len) != 0) {
        ok(0, "email: input left unchanged");
    }

    free(copy);

    return rc;
}


static void
test_normalise(void)
{
    int             rc;
    size_t          i;
    loyalty_str_t   out;

    static const struct {
        const char  *in;
        const char  *exp;
    } good[] = {
        { " Jon@Example.COM ", "jon@example.com" },
        { "jon@example.com", "jon@example.com" },
        { "\tJON@EXAMPLE.COM\t", "jon@example.com" },
        { "  \t a@b.co \t  ", "a@b.co" },
        { "a@b.c", "a@b.c" },
        { "first.last+tag@sub.example.co.uk",
          "first.last+tag@sub.example.co.uk" },
        { "O'Brien_1-x@Example.IE", "o'brien_1-x@example.ie" },
        { "ZZ@AA.ZZ", "zz@aa.zz" },
        /* bytes >= 0x80 are kept and not case-mapped */
        { "J\xc3\x96RG@B\xc3\x9c" "CHER.DE", "j\xc3\x96rg@b\xc3\x9c" "cher.de" },
        { NULL, NULL }
    };

    for (i = 0; good[i].in != NULL; i++) {
        rc = email(good[i].in, (size_t) -1, &out);

        if (!is_int(rc, LOYALTY_OK, "email accepted")) {
            diag("  input \"%s\"", good[i].in);
            continue;
        }

        if (!is_mem(out.data, out.len, good[i].exp, strlen(good[i].exp),
                    "email trimmed and lower-cased"))
        {
            diag("  input \"%s\"", good[i].in);
        }

        ok(out.data[out.len] == '\0', "email: output NUL-terminated");
    }

    /* the length bounds the input */
    rc = email("A@B.CO and more", 6, &out);
    is_int(rc, LOYALTY_OK, "email: length-bounded input");
    is_mem(out.data, out.len, "a@b.co", 6, "email: only len bytes used");
}


static void
test_reject(void)
{
    int             rc;
    size_t          i;
    loyalty_str_t   out;

    static const char  *bad[] = {
        "",
        "   ",
        "\t",
        "jon.example.com",                  /* no @ */
        "jon@@example.com",                 /* two @ */
        "jon@ex@ample.com",
        "@example.com",                     /* empty local part */
        " @example.com",
        "jon@",                             /* empty domain */
        "jon@localhost",                    /* no dot in domain */
        "jon.smith@localhost",              /* dot only in the local part */
        "jon@.com",                         /* dot right after @ */
        "jon@example.",                     /* trailing dot */
        "jon@example.com.",
        "jon smith@example.com",            /* spaces inside */
        "jon@exa mple.com",
        "jon@example.com\r\n",              /* CR LF not trimmed */
        "jon\n@example.com",
        "<jon@example.com>",
        "Jon <jon@example.com>",
        "jon@example.com,ann@example.com",  /* commas */
        "jon,ann@example.com",
        "jon;ann@example.com",
        "\"jon\"@example.com",
        "jon(comment)@example.com",
        "jon@exam\x7fple.com",              /* DEL */
        "a@b",
        "@.",
        "a@.",
        NULL
    };

    for (i = 0; bad[i] != NULL; i++) {
        rc = email(bad[i], (size_t) -1, &out);

        if (!is_int(rc, LOYALTY_DECLINED, "email declined")) {
            diag("  input \"%s\" gave \"%.*s\"", bad[i], (int) out.len,
                 out.data ? (const char *) out.data : "");
        }
    }

    rc = email("jon\0@example.com", 16, &out);
    is_int(rc, LOYALTY_DECLINED, "email: NUL byte declined");

    /*
     * Only the last dot of the domain is checked against the @, so a
     * domain that starts with a dot (or has an empty label) passes when
     * another dot follows.
     */
    rc = email("jon@.example.com", (size_t) -1, &out);
    check_ok(rc == LOYALTY_DECLINED, "domain label checks",
            "email: dot right after @ declined even with a later dot");

    rc = email("jon@example..com", (size_t) -1, &out);
    check_ok(rc == LOYALTY_DECLINED, "domain label checks",
            "email: empty domain label (..) declined");
}


static void
test_length(void)
{
    int             rc;
    char            buf[300];
    loyalty_str_t   out;

    /* local@domain.co of exactly n bytes */
#define make(n)                                                              \
    memset(buf, 'a', (n));                                                   \
    memcpy(buf + (n) - 10, "@domain.co", 10);                                \
    buf[(n)] = '\0'

    make(254);
    is_int(strlen(buf), 254, "length fixture is 254 bytes");
    rc = email(buf, (size_t) -1, &out);
    is_int(rc, LOYALTY_OK, "email: 254 bytes accepted");
    is_int(out.len, 254, "email: 254 bytes kept");

    make(255);
    rc = email(buf, (size_t) -1, &out);
    is_int(rc, LOYALTY_DECLINED, "email: 255 bytes declined");

    make(280);
    rc = email(buf, (size_t) -1, &out);
    is_int(rc, LOYALTY_DECLINED, "email: 280 bytes declined");

#undef make

    /* 254 after trimming: the limit applies to the trimmed value */
    buf[0] = ' ';
    buf[1] = ' ';
    memset(buf + 2, 'b', 254);
    memcpy(buf + 2 + 254 - 10, "@domain.co", 10);
    buf[2 + 254] = ' ';
    buf[2 + 254 + 1] = '\0';
    rc = email(buf, (size_t) -1, &out);
    is_int(rc, LOYALTY_OK, "email: 254 bytes plus surrounding spaces");
    is_int(out.len, 254, "email: surrounding spaces not counted");
}


static void
test_memory(void)
{
    int             rc;
    loyalty_str_t   in, out;

    in.data = (const u_char *) "a@b.co";
    in.len = 6;

    /* the next allocation fails */
    arena.fail_at = arena.calls + 1;
    rc = loyalty_identity_email(&in, &alloc, &out);
    is_int(rc, LOYALTY_ERROR, "email: allocation failure is LOYALTY_ERROR");

    /* a declined value allocates nothing */
    lt_arena_free(&arena);
    in.data = (const u_char *) "not an address";
    in.len = 14;
    rc = loyalty_identity_email(&in, &alloc, &out);
    is_int(rc, LOYALTY_DECLINED, "email: declined value");
    is_int(arena.count, 0, "email: declined value allocates nothing");
}


/* as email(): an exact-size heap copy of the input */

static int
phone(const char *in, size_t len, const char *country, loyalty_str_t *out)
{
    int             rc;
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
    out->data = NULL;
    out->len = 0;

    rc = loyalty_identity_phone(&s, country, &alloc, out);

    if (memcmp(copy, in, len) != 0) {
        ok(0, "phone: input left unchanged");
    }

    free(copy);

    return rc;
}


static void
test_phone(void)
{
    int             rc;
    size_t          i;
    loyalty_str_t   out;

    static const struct {
        const char  *in;
        const char  *country;
        const char  *exp;
    } good[] = {
        /* full numbers: the country does not matter */
        { "+447911123456", NULL, "+447911123456" },
        { "+44 7911 123456", NULL, "+447911123456" },
        { "+44 7911 123456", "FR", "+447911123456" },
        { "+44 7911 123456", "XX", "+447911123456" },
        { "  +44 7911 123456  ", NULL, "+447911123456" },
        { "+44-7911-123.456", NULL, "+447911123456" },
        { "(+44) 7911 123456", NULL, "+447911123456" },
        { "+1 (415) 555-2671", NULL, "+14155552671" },
        { "+1.415.555.2671", "GB", "+14155552671" },
        { "+7 912 345-67-89", NULL, "+79123456789" },
        { "+86 138 0013 8000", NULL, "+8613800138000" },

        /* "00" everywhere, and the country's own international prefix */
        { "0044 7911 123456", NULL, "+447911123456" },
        { "0044 7911 123456", "GB", "+447911123456" },
        { "00 44 7911 123456", "US", "+447911123456" },
        { "001 415 555 2671", "DE", "+14155552671" },
        { "011 44 20 7946 0958", "US", "+442079460958" },
        { "011 44 20 7946 0958", "ca", "+442079460958" },
        { "0011 44 20 7946 0958", "AU", "+442079460958" },
        { "0011 1 212 555 1234", "AU", "+12125551234" },
        { "010 44 20 7946 0958", "JP", "+442079460958" },
        { "8 10 44 20 7946 0958", "RU", "+442079460958" },

        /* the trunk prefix shown as "(0)" in a full number */
        { "+44 (0)20 7946 0958", NULL, "+442079460958" },
        { "+44 (0) 20 7946 0958", "GB", "+442079460958" },
        { "0044 (0)20 7946 0958", "FR", "+442079460958" },
        { "+49 (0)30 1234567", NULL, "+49301234567" },
        { "+353 (0)1 234 5678", NULL, "+35312345678" },
        { "+41(0)44 123 45 67", NULL, "+41441234567" },
        { "+44 20 7946 (0)95", NULL, "+44207946095" },  /* kept here */
        { "+44 (0)20 (0)7946 095", NULL, "+442007946095" },

        /* national numbers: trunk prefix off, calling code on */
        { "07911 123456", "GB", "+447911123456" },
        { "07911123456", "GB", "+447911123456" },
        { "(07911) 123-456", "GB", "+447911123456" },
        { "020 7946 0958", "GB", "+442079460958" },
        { "(0)20 7946 0958", "GB", "+442079460958" },
        { "7911 123456", "GB", "+447911123456" },
        { "07911 123456", "gb", "+447911123456" },
        { "07911 123456", "Gb", "+447911123456" },
        { "06 12 34 56 78", "FR", "+33612345678" },
        { "06.12.34.56.78", "FR", "+33612345678" },
        { "030 1234567", "DE", "+49301234567" },
        { "0151 23456789", "DE", "+4915123456789" },
        { "06 1234 5678", "NL", "+31612345678" },
        { "0470 12 34 56", "BE", "+32470123456" },
        { "044 123 45 67", "CH", "+41441234567" },
        { "0664 1234567", "AT", "+436641234567" },
        { "070-123 45 67", "SE", "+46701234567" },
        { "087 123 4567", "IE", "+353871234567" },
        { "040 1234567", "FI", "+358401234567" },
        { "06 30 123 4567", "HU", "+36301234567" },
        { "0612 34567", "LT", "+37061234567" },
        { "8 912 345-67-89", "RU", "+79123456789" },
        { "0412 345 678", "AU", "+61412345678" },
        { "(02) 9876 5432", "AU", "+61298765432" },
        { "021 123 4567", "NZ", "+64211234567" },
        { "090-1234-5678", "JP", "+819012345678" },
        { "138 0013 8000", "CN", "+8613800138000" },
        { "098765 43210", "IN", "+919876543210" },
        { "081 234 5678", "ZA", "+27812345678" },
        { "050 123 4567", "AE", "+971501234567" },
        { "(11) 91234-5678", "BR", "+5511912345678" },
        { "011 4123-4567", "AR", "+541141234567" },
        { "010-1234-5678", "KR", "+821012345678" },

        /* no trunk prefix: a leading 0 is part of the number */
        { "06 6982 1234", "IT", "+390669821234" },
        { "333 123 4567", "IT", "+393331234567" },
        { "0549 123456", "SM", "+3780549123456" },
        { "612 345 678", "ES", "+34612345678" },
        { "912 345 678", "PT", "+351912345678" },
        { "512 345 678", "PL", "+48512345678" },
        { "20 12 34 56", "DK", "+4520123456" },
        { "412 34 567", "NO", "+4741234567" },
        { "55 1234 5678", "MX", "+525512345678" },
        { "9123 4567", "SG", "+6591234567" },
        { "9123 4567", "HK", "+85291234567" },
        { "601 123 456", "CZ", "+420601123456" },

        /* NANP: 10 digits, or 11 with the national "1" */
        { "(415) 555-2671", "US", "+14155552671" },
        { "415.555.2671", "US", "+14155552671" },
        { "4155552671", "us", "+14155552671" },
        { "1-415-555-2671", "US", "+14155552671" },
        { "1 (415) 555 2671", "US", "+14155552671" },
        { "(613) 555-0123", "CA", "+16135550123" },

        /* the length limits: 8 and 15 digits */
        { "+49301234", NULL, "+49301234" },
        { "+491234567890123", NULL, "+491234567890123" },
        { "1234 5678", "NO", "+4712345678" },
        { "123456", "NO", "+47123456" },
        { "0 123456", "DE", "+49123456" },
        { "0 1234 5678 9012", "DE", "+49123456789012" },
        { "0 12345 6789 0123", "DE", "+491234567890123" },

        { NULL, NULL, NULL }
    };

    for (i = 0; good[i].in != NULL; i++) {
        rc = phone(good[i].in, (size_t) -1, good[i].country, &out);

        if (!is_int(rc, LOYALTY_OK, "phone accepted")) {
            diag("  input \"%s\" in %s", good[i].in,
                 good[i].country ? good[i].country : "NULL");
            continue;
        }

        if (!is_mem(out.data, out.len, good[i].exp, strlen(good[i].exp),
                    "phone in E.164"))
        {
            diag("  input \"%s\" in %s", good[i].in,
                 good[i].country ? good[i].country : "NULL");
        }

        ok(out.data[out.len] == '\0', "phone: output NUL-terminated");
    }

    /* the length bounds the input */
    rc = phone("07911 123456 ext 12", 12, "GB", &out);
    is_int(rc, LOYALTY_OK, "phone: length-bounded input");
    lt_str_is(&out, "+447911123456", "phone: only len bytes used");
}


static void
test_phone_reject(void)
{
    int             rc;
    size_t          i;
    loyalty_str_t   out;

    static const struct {
        const char  *in;
        const char  *country;
    } bad[] = {
        { "", NULL },
        { "", "GB" },
        { "   ", "GB" },
        { "+", NULL },
        { "+ ", "GB" },
        { "()-.", "GB" },
        { "00", NULL },
        { "00", "GB" },
        { "0", "GB" },
        { "011", "US" },

        /* national numbers need a known country */
        { "07911 123456", NULL },
        { "07911 123456", "" },
        { "07911 123456", "G" },
        { "07911 123456", "XX" },
        { "07911 123456", "UK" },           /* not ISO 3166-1 */
        { "07911 123456", "GBR" },
        { "07911 123456", "G1" },
        { "07911 123456", "G " },

        /* anything but digits and separators */
        { "abc", "GB" },
        { "+44 7911 123456 ext 12", NULL },
        { "+44 7911 123456 x12", NULL },
        { "+44 7911 123456x12", NULL },
        { "+44 7911 123456#", NULL },
        { "+44 7911 123456;", NULL },
        { "+44 7911 123456,1", NULL },
        { "+44/7911/123456", NULL },
        { "+44\t7911123456", NULL },
        { "+447911123456\n", NULL },
        { "\r+447911123456", NULL },
        { "+44_7911_123456", NULL },
        { "*31#07911123456", "GB" },
        { "0800-FLOWERS", "US" },
        { "+44 7911 12345\xef\xbc\x96", NULL }, /* fullwidth 6 */
        { "\xc2\xa0+447911123456", NULL },  /* no-break space */
        { "tel:+447911123456", NULL },

        /* '+' only once, before the digits */
        { "++447911123456", NULL },
        { "+ +447911123456", NULL },
        { "+44 7911 +123456", NULL },
        { "44+7911123456", NULL },
        { "447911123456+", NULL },
        { "07911 123456+", "GB" },

        /* no calling code starts with 0 */
        { "+0447911123456", NULL },
        { "+00447911123456", NULL },
        { "000 44 7911 123456", NULL },
        { "0000447911123456", "GB" },

        /* too short or too long: 8 to 15 digits */
        { "+4930123", NULL },
        { "+4912345678901234", NULL },
        { "+44 7911 123456 7890 1234", NULL },
        { "0044 1234 5678 9012 345", NULL },
        { "+123456789012345678901234567890", NULL },
        { "12345", "NO" },
        { "0 12345", "DE" },
        { "0 1234", "DE" },
        { "0 12345 6789 01234", "DE" },
        { "0", "IT" },

        /* calling code 1 is 1 + 10 digits */
        { "+1 415 555 267", NULL },
        { "+1 415 555 26710", NULL },
        { "555 2671", "US" },
        { "415 555 267", "US" },
        { "415 555 26710", "US" },
        { "1 415 555 26710", "US" },
        { "011 1 415 555 267", "US" },

        /* "(0)" is dropped only after a calling code */
        { "+(0)44 20 7946 0958", NULL },

        { NULL, NULL }
    };

    for (i = 0; bad[i].in != NULL; i++) {
        rc = phone(bad[i].in, (size_t) -1, bad[i].country, &out);

        if (!is_int(rc, LOYALTY_DECLINED, "phone declined")) {
            diag("  input \"%s\" in %s gave \"%.*s\"", bad[i].in,
                 bad[i].country ? bad[i].country : "NULL", (int) out.len,
                 out.data ? (const char *) out.data : "");
        }
    }

    rc = phone("+447911\0" "123456", 14, NULL, &out);
    is_int(rc, LOYALTY_DECLINED, "phone: NUL byte declined");

    rc = phone("+447911123456\0", 14, NULL, &out);
    is_int(rc, LOYALTY_DECLINED, "phone: trailing NUL byte declined");
}


static void
test_phone_country(void)
{
    size_t  i;

    static const char  *known[] = {
        /* EU */
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE",
        "GR", "HU", "IE", "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT",
        "RO", "SK", "SI", "ES", "SE",
        /* rest of Europe */
        "GB", "CH", "NO", "IS", "LI", "MC", "SM", "TR", "UA", "RS", "RU",
        /* Americas */
        "US", "CA", "MX", "BR", "AR", "CL", "CO", "PE",
        /* Asia-Pacific */
        "AU", "NZ", "JP", "CN", "IN", "SG", "HK", "KR", "TW", "TH", "MY",
        "ID", "PH", "VN",
        /* Middle East and Africa */
        "AE", "SA", "QA", "IL", "ZA", "EG", "NG", "KE", "MA",
        /* either case */
        "gb", "us", "De",
        NULL
    };

    static const char  *unknown[] = {
        "", "G", "GBR", "UK", "EU", "XX", "ZZ", "AA", "G1", "1G", " G",
        "GB ", "KZ", "PR", NULL
    };

    for (i = 0; known[i] != NULL; i++) {
        if (!ok(loyalty_identity_country_known(known[i]),
                "country known: %s", known[i]))
        {
            continue;
        }
    }

    ok(i >= 50, "at least 50 countries known (%zu)", i);

    for (i = 0; unknown[i] != NULL; i++) {
        ok(!loyalty_identity_country_known(unknown[i]),
           "country unknown: \"%s\"", unknown[i]);
    }

    ok(!loyalty_identity_country_known(NULL), "country unknown: NULL");
}


static void
test_phone_memory(void)
{
    int             rc;
    loyalty_str_t   in, out;

    lt_arena_free(&arena);

    in.data = (const u_char *) "+447911123456";
    in.len = 13;

    /* exactly one allocation, of "+", the digits and the NUL */
    rc = loyalty_identity_phone(&in, NULL, &alloc, &out);
    is_int(rc, LOYALTY_OK, "phone: accepted");
    is_int(arena.calls, 1, "phone: one allocation");

    arena.fail_at = arena.calls + 1;
    rc = loyalty_identity_phone(&in, NULL, &alloc, &out);
    is_int(rc, LOYALTY_ERROR, "phone: allocation failure is LOYALTY_ERROR");

    in.data = (const u_char *) "07911 123456";
    in.len = 12;
    arena.fail_at = arena.calls + 1;
    rc = loyalty_identity_phone(&in, "GB", &alloc, &out);
    is_int(rc, LOYALTY_ERROR, "phone: national, allocation failure");

    /* a declined value allocates nothing */
    lt_arena_free(&arena);
    rc = loyalty_identity_phone(&in, NULL, &alloc, &out);
    is_int(rc, LOYALTY_DECLINED, "phone: national without a country");

    in.data = (const u_char *) "+44 7911 123456 ext 1";
    in.len = 21;
    rc = loyalty_identity_phone(&in, "GB", &alloc, &out);
    is_int(rc, LOYALTY_DECLINED, "phone: extension declined");
    is_int(arena.calls, 0, "phone: declined values allocate nothing");
}


int
main(void)
{
    test_normalise();
    test_reject();
    test_length();
    test_memory();
    test_phone();
    test_phone_reject();
    test_phone_country();
    test_phone_memory();

    lt_arena_free(&arena);

    return done_testing();
}
