/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_sf_field: every Salesforce field type takes the values it
 * should, in one canonical form, and refuses the others with a reason.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_sf_field.h"
#include "loyalty_test.h"


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


/* json: one JSON value; want: the canonical text, or NULL for a refusal
 * whose message must contain why */

static void
check(const loyalty_sf_field_type_t *t, const char *json, const char *want,
    loyalty_sf_json_e kind, const char *why)
{
    int                 rc;
    loyalty_str_t       text;
    loyalty_err_t       err;
    loyalty_json_t     *v;
    loyalty_sf_value_t  out;
    char                name[160];

    snprintf(name, sizeof(name), "%s %s", loyalty_sf_type_name(t->type),
             json);
    text.data = lt_arena_dup(&arena, json, strlen(json));
    text.len = strlen(json);

    if (loyalty_json_parse(&text, &alloc, &v, &err) != LOYALTY_OK) {
        ok(0, "%s: test JSON does not parse: %s", name, err.msg);
        return;
    }

    memset(&err, 0, sizeof(err));
    rc = loyalty_sf_coerce(t, v, &alloc, &out, &err);

    if (want == NULL) {
        ok(rc == LOYALTY_DECLINED, "%s: refused", name);
        ok(why == NULL || strstr(err.msg, why) != NULL,
           "%s: reason \"%s\" has \"%s\"", name, err.msg, why ? why : "");
        return;
    }

    ok(rc == LOYALTY_OK, "%s: accepted (%s)", name, err.msg);
    if (rc != LOYALTY_OK) {
        return;
    }

    is_mem(out.text.data, out.text.len, want, strlen(want), name);
    ok(out.json == kind, "%s: JSON kind %d", name, (int) out.json);
}


static void
test_text(void)
{
    loyalty_sf_field_type_t  t = { .type = LOYALTY_SF_TEXT,
                                   .max_length = 5 };
    loyalty_sf_field_type_t  dflt = { .type = LOYALTY_SF_TEXT };
    char                     big[300], json[310];

    check(&t, "\"Gold\"", "Gold", LOYALTY_SF_JSON_STRING, NULL);
    check(&t, "\"12345\"", "12345", LOYALTY_SF_JSON_STRING, NULL);
    check(&t, "\"123456\"", NULL, 0, "6 characters, the field takes 5");
    /* five characters, ten bytes: Salesforce counts characters */
    check(&t, "\"\\u00e9t\\u00e9\\u00e9\\u00e9\"", "\xc3\xa9t\xc3\xa9\xc3\xa9"
          "\xc3\xa9", LOYALTY_SF_JSON_STRING, NULL);
    check(&t, "12", "12", LOYALTY_SF_JSON_STRING, NULL);
    check(&t, "true", NULL, 0, "not a string");
    check(&t, "{}", NULL, 0, "not a string");
    check(&t, "[\"a\"]", NULL, 0, "not a string");
    check(&t, "null", NULL, 0, "may not be cleared");

    memset(big, 'x', 256);
    big[256] = '\0';
    snprintf(json, sizeof(json), "\"%s\"", big);
    check(&dflt, json, NULL, 0, "256 characters, the field takes 255");
    big[255] = '\0';
    snprintf(json, sizeof(json), "\"%s\"", big);
    check(&dflt, json, big, LOYALTY_SF_JSON_STRING, NULL);

    dflt.nullable = 1;
    check(&dflt, "null", "", LOYALTY_SF_JSON_NULL, NULL);
}


static void
test_numbers(void)
{
    loyalty_sf_field_type_t  i = { .type = LOYALTY_SF_INTEGER };
    loyalty_sf_field_type_t  d = { .type = LOYALTY_SF_DECIMAL, .scale = 2 };
    loyalty_sf_field_type_t  m = { .type = LOYALTY_SF_DECIMAL, .scale = 2,
                                   .minor_units = 1 };
    loyalty_sf_field_type_t  p = { .type = LOYALTY_SF_INTEGER,
                                   .precision = 4 };
    loyalty_sf_field_type_t  d0 = { .type = LOYALTY_SF_DECIMAL };

    check(&i, "1250", "1250", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&i, "-40", "-40", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&i, "0", "0", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&i, "\"1250\"", "1250", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&i, "1250.0", "1250", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&i, "12.5", NULL, 0, "not an integer");
    check(&i, "1e3", NULL, 0, "not an integer");
    check(&i, "\"12 points\"", NULL, 0, "not an integer");
    check(&i, "true", NULL, 0, "not a number");
    check(&i, "999999999999999999", "999999999999999999",
          LOYALTY_SF_JSON_NUMBER, NULL);
    check(&i, "1000000000000000000", NULL, 0,
          "19 digits, the field takes 18");
    check(&i, "99999999999999999999999", NULL, 0, "not an integer");
    check(&p, "9999", "9999", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&p, "-10000", NULL, 0, "5 digits, the field takes 4");

    check(&d, "49.9", "49.90", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&d, "49", "49.00", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&d, "\"0.05\"", "0.05", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&d, "-0.5", "-0.50", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&d, "49.990", "49.99", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&d, "49.999", NULL, 0, "at most 2 decimal places");
    check(&d, "0", "0.00", LOYALTY_SF_JSON_NUMBER, NULL);

    /* canonical data carries money as integer minor units */
    check(&m, "4990", "49.90", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&m, "5", "0.05", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&m, "-199", "-1.99", LOYALTY_SF_JSON_NUMBER, NULL);
    check(&m, "49.9", NULL, 0, "not an integer");

    check(&d0, "7", "7", LOYALTY_SF_JSON_NUMBER, NULL);
}


static void
test_boolean(void)
{
    loyalty_sf_field_type_t  b = { .type = LOYALTY_SF_BOOLEAN };

    check(&b, "true", "true", LOYALTY_SF_JSON_BOOL, NULL);
    check(&b, "false", "false", LOYALTY_SF_JSON_BOOL, NULL);
    check(&b, "\"TRUE\"", "true", LOYALTY_SF_JSON_BOOL, NULL);
    check(&b, "\"false\"", "false", LOYALTY_SF_JSON_BOOL, NULL);
    check(&b, "1", NULL, 0, "not a boolean");
    check(&b, "\"yes\"", NULL, 0, "not a boolean");
}


static void
test_dates(void)
{
    loyalty_sf_field_type_t  d = { .type = LOYALTY_SF_DATE };
    loyalty_sf_field_type_t  dt = { .type = LOYALTY_SF_DATETIME };

    check(&d, "\"2026-11-24\"", "2026-11-24", LOYALTY_SF_JSON_STRING, NULL);
    check(&d, "\"2024-02-29\"", "2024-02-29", LOYALTY_SF_JSON_STRING, NULL);
    check(&d, "\"2026-02-29\"", NULL, 0, "not a date");
    check(&d, "\"2026-13-01\"", NULL, 0, "not a date");
    check(&d, "\"2026-11-24T23:30:00-02:00\"", "2026-11-25",
          LOYALTY_SF_JSON_STRING, NULL);
    check(&d, "\"2026-11-24T09:30:00\"", NULL, 0, "offset");
    check(&d, "\"24/11/2026\"", NULL, 0, "not a date");
    check(&d, "20261124", NULL, 0, "not a string");

    check(&dt, "\"2026-11-24T09:30:00Z\"", "2026-11-24T09:30:00.000Z",
          LOYALTY_SF_JSON_STRING, NULL);
    check(&dt, "\"2026-11-24T10:30:00.5+01:00\"", "2026-11-24T09:30:00.500Z",
          LOYALTY_SF_JSON_STRING, NULL);
    check(&dt, "\"2026-11-24T09:30:00.123456789Z\"",
          "2026-11-24T09:30:00.123Z", LOYALTY_SF_JSON_STRING, NULL);
    check(&dt, "\"2026-11-24 09:30:00+0000\"", "2026-11-24T09:30:00.000Z",
          LOYALTY_SF_JSON_STRING, NULL);
    check(&dt, "\"2026-11-24T09:30:00\"", NULL, 0, "with an offset");
    check(&dt, "\"2026-11-24\"", NULL, 0, "with an offset");
    check(&dt, "1795553266", NULL, 0, "not a string");
}


static void
test_picklist(void)
{
    static const char *const  tiers[] = { "Bronze", "Silver", "Gold" };
    loyalty_sf_field_type_t   p = { .type = LOYALTY_SF_PICKLIST,
                                    .allowed = tiers, .n_allowed = 3 };
    loyalty_sf_field_type_t   open = { .type = LOYALTY_SF_PICKLIST,
                                       .max_length = 8 };

    check(&p, "\"Gold\"", "Gold", LOYALTY_SF_JSON_STRING, NULL);
    check(&p, "\"gold\"", "Gold", LOYALTY_SF_JSON_STRING, NULL);
    check(&p, "\"SILVER\"", "Silver", LOYALTY_SF_JSON_STRING, NULL);
    check(&p, "\"Platinum\"", NULL, 0,
          "\"Platinum\" is not one of the picklist's values");
    check(&p, "\"Gol\"", NULL, 0, "not one of");
    check(&p, "3", NULL, 0, "not a string");
    check(&open, "\"Anything\"", "Anything", LOYALTY_SF_JSON_STRING, NULL);
    check(&open, "\"Anything1\"", NULL, 0, "9 characters");
}


static void
test_contact(void)
{
    loyalty_sf_field_type_t  e = { .type = LOYALTY_SF_EMAIL };
    loyalty_sf_field_type_t  ph = { .type = LOYALTY_SF_PHONE,
                                    .country = "SE" };
    loyalty_sf_field_type_t  intl = { .type = LOYALTY_SF_PHONE };
    char                     json[200];

    check(&e, "\" Ada.Lovelace@Example.COM \"", "ada.lovelace@example.com",
          LOYALTY_SF_JSON_STRING, NULL);
    check(&e, "\"not-an-address\"", NULL, 0, "not an e-mail address");
    check(&e, "42", NULL, 0, "not a string");
    snprintf(json, sizeof(json), "\"%.*s@example.com\"", 70,
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
             "aaaaaaa");
    check(&e, json, NULL, 0, "82 characters, the field takes 80");

    check(&ph, "\"070-123 45 67\"", "+46701234567", LOYALTY_SF_JSON_STRING,
          NULL);
    check(&ph, "\"+1 (555) 123-4567\"", "+15551234567",
          LOYALTY_SF_JSON_STRING, NULL);
    check(&ph, "\"call me\"", NULL, 0, "not a phone number");
    check(&intl, "\"070-123 45 67\"", NULL, 0, "in international form");
}


static void
test_write(void)
{
    loyalty_jw_t        w;
    loyalty_str_t       out, n1 = loyalty_string("Points__c"),
                        n2 = loyalty_string("Tier__c"),
                        n3 = loyalty_string("Opt_In__c"),
                        n4 = loyalty_string("Note__c");
    loyalty_sf_value_t  v1 = { LOYALTY_SF_JSON_NUMBER,
                               loyalty_string("1250") };
    loyalty_sf_value_t  v2 = { LOYALTY_SF_JSON_STRING,
                               loyalty_string("G\"old") };
    loyalty_sf_value_t  v3 = { LOYALTY_SF_JSON_BOOL,
                               loyalty_string("true") };
    loyalty_sf_value_t  v4 = { LOYALTY_SF_JSON_NULL, loyalty_string("") };
    const char         *want;

    loyalty_jw_init(&w, &alloc, 16);
    loyalty_jw_object(&w, NULL);
    loyalty_sf_value_write(&w, &n1, &v1);
    loyalty_sf_value_write(&w, &n2, &v2);
    loyalty_sf_value_write(&w, &n3, &v3);
    loyalty_sf_value_write(&w, &n4, &v4);
    loyalty_jw_end(&w);

    want = "{\"Points__c\":1250,\"Tier__c\":\"G\\\"old\",\"Opt_In__c\":true,"
           "\"Note__c\":null}";
    ok(loyalty_jw_finish(&w, &out) == LOYALTY_OK, "body written");
    is_mem(out.data, out.len, want, strlen(want), "body as Salesforce wants");
}


static void
test_type_names(void)
{
    loyalty_sf_type_e  t;
    const char        *names[] = { "text", "integer", "decimal", "boolean",
                                   "date", "datetime", "picklist", "email",
                                   "phone" };
    size_t             i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        ok(loyalty_sf_type_parse(names[i], &t) == LOYALTY_OK
           && strcmp(loyalty_sf_type_name(t), names[i]) == 0,
           "type %s round-trips", names[i]);
    }

    ok(loyalty_sf_type_parse("currency", &t) == LOYALTY_DECLINED,
       "unknown type declined");
    ok(loyalty_sf_type_parse("Text", &t) == LOYALTY_DECLINED,
       "type names are lower case");
}


int
main(void)
{
    test_text();
    test_numbers();
    test_boolean();
    test_dates();
    test_picklist();
    test_contact();
    test_write();
    test_type_names();

    lt_arena_free(&arena);

    return done_testing();
}
