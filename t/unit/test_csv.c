/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_csv: what the writer quotes, that the reader gives back
 * exactly what was written (round trips of awkward values), Bulk API
 * result files with CRLF and quoted errors, and malformed input refused
 * with its line.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_csv.h"
#include "loyalty_test.h"


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


#define str(s)      lt_arena_str(&arena, s)
#define eq(s, want) lt_str_eq(s, want)


static void
test_write(void)
{
    loyalty_csv_t  c;
    loyalty_str_t  out;
    const char    *want;

    loyalty_csv_init(&c, &alloc, 8);        /* grows several times */
    loyalty_csv_cfield(&c, "Loyalty_Id__c");
    loyalty_csv_cfield(&c, "LastName");
    loyalty_csv_cfield(&c, "Note__c");
    loyalty_csv_row_end(&c);
    loyalty_csv_cfield(&c, "eu:77");
    loyalty_csv_cfield(&c, "O'Brien, Jr.");
    loyalty_csv_cfield(&c, "said \"hi\"\nthen left");
    loyalty_csv_row_end(&c);
    loyalty_csv_cfield(&c, "us:9");
    loyalty_csv_cfield(&c, " padded ");
    loyalty_csv_cfield(&c, "");
    loyalty_csv_row_end(&c);

    want = "Loyalty_Id__c,LastName,Note__c\n"
           "eu:77,\"O'Brien, Jr.\",\"said \"\"hi\"\"\nthen left\"\n"
           "us:9,\" padded \",\n";
    ok(loyalty_csv_finish(&c, &out) == LOYALTY_OK, "written");
    is_mem(out.data, out.len, want, strlen(want), "quoting");
    ok(out.data[out.len] == '\0', "NUL-terminated");
}


static void
test_round_trip(void)
{
    static const char  *values[] = {
        "plain", "", "a,b", "\"", "\"\"", "x\"y", "line\nbreak",
        "cr\r\nlf", " lead", "trail ", "\xc3\xa9t\xc3\xa9", ",,,",
        "\"quoted\"", "#N/A",
    };
    size_t                nv, i, n;
    loyalty_csv_t         c;
    loyalty_err_t         err;
    loyalty_str_t         out, f[32];
    loyalty_csv_reader_t  r;

    nv = sizeof(values) / sizeof(values[0]);

    loyalty_csv_init(&c, &alloc, 16);
    for (i = 0; i < nv; i++) {
        loyalty_csv_cfield(&c, values[i]);
    }
    loyalty_csv_row_end(&c);
    loyalty_csv_cfield(&c, "second");
    loyalty_csv_row_end(&c);
    ok(loyalty_csv_finish(&c, &out) == LOYALTY_OK, "round trip written");

    loyalty_csv_reader_init(&r, &out, &alloc);
    ok(loyalty_csv_next(&r, f, 32, &n, &err) == LOYALTY_OK, "row 1 read");
    is_int((int) n, (int) nv, "row 1 field count");
    for (i = 0; i < nv && i < n; i++) {
        ok(eq(&f[i], values[i]), "round trip value %zu", i);
    }
    ok(loyalty_csv_next(&r, f, 32, &n, &err) == LOYALTY_OK && n == 1
       && eq(&f[0], "second"), "row 2");
    ok(loyalty_csv_next(&r, f, 32, &n, &err) == LOYALTY_DECLINED,
       "then the end");
}


static void
test_results(void)
{
    size_t                n;
    loyalty_err_t         err;
    loyalty_str_t         text, f[8];
    loyalty_csv_reader_t  r;

    /* a failedResults file: CRLF, quoted error with a comma */
    text = str("\"sf__Id\",\"sf__Error\",Loyalty_Id__c,LastName\r\n"
               "\"\",\"DUPLICATE_VALUE:duplicate value found: "
               "Loyalty_Id__c duplicates value on record with id: "
               "003xx, Email\",eu:77,Smith\r\n"
               "\"\",\"FIELD_CUSTOM_VALIDATION_EXCEPTION:Tier: bad\","
               "us:9,Jones");

    loyalty_csv_reader_init(&r, &text, &alloc);
    ok(loyalty_csv_next(&r, f, 8, &n, &err) == LOYALTY_OK && n == 4
       && eq(&f[0], "sf__Id") && eq(&f[3], "LastName"), "header");
    ok(loyalty_csv_next(&r, f, 8, &n, &err) == LOYALTY_OK && n == 4
       && eq(&f[0], "") && eq(&f[2], "eu:77")
       && eq(&f[1], "DUPLICATE_VALUE:duplicate value found: Loyalty_Id__c "
                    "duplicates value on record with id: 003xx, Email"),
       "failed row with its error");
    ok(loyalty_csv_next(&r, f, 8, &n, &err) == LOYALTY_OK && n == 4
       && eq(&f[3], "Jones"), "last row without a line end");
    ok(loyalty_csv_next(&r, f, 8, &n, &err) == LOYALTY_DECLINED, "end");

    text = str("a,b,\n");
    loyalty_csv_reader_init(&r, &text, &alloc);
    ok(loyalty_csv_next(&r, f, 8, &n, &err) == LOYALTY_OK && n == 3
       && eq(&f[2], ""), "a trailing comma is an empty last field");

    text = str("");
    loyalty_csv_reader_init(&r, &text, &alloc);
    ok(loyalty_csv_next(&r, f, 8, &n, &err) == LOYALTY_DECLINED,
       "empty text: no record");
}


static void
test_malformed(void)
{
    static const struct {
        const char  *text;
        const char  *why;
    } cases[] = {
        { "a,\"open\n", "line 1: unterminated quote" },
        { "ok\na,\"x\"y\n", "line 2: text after a closing quote" },
        { "a,b\"c\n", "line 1: quote inside a field" },
        { "1,2,3,4,5,6,7,8,9\n", "line 1: more than 8 fields" },
    };
    size_t                i, n;
    int                   rc;
    loyalty_err_t         err;
    loyalty_str_t         text, f[8];
    loyalty_csv_reader_t  r;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        text = str(cases[i].text);
        loyalty_csv_reader_init(&r, &text, &alloc);
        memset(&err, 0, sizeof(err));

        do {
            rc = loyalty_csv_next(&r, f, 8, &n, &err);
        } while (rc == LOYALTY_OK);

        ok(rc == LOYALTY_ERROR && strcmp(err.msg, cases[i].why) == 0,
           "malformed: %s (%s)", cases[i].why, err.msg);
    }
}


int
main(void)
{
    test_write();
    test_round_trip();
    test_results();
    test_malformed();

    lt_arena_free(&arena);

    return done_testing();
}
