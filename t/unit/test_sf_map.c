/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_sf_map: a loyalty event mapped to Salesforce fields writes the
 * loyalty-owned and shared fields, never a CRM-owned one (and the other
 * way round), reports values that cannot be written with the field,
 * type and source, and leaves out what the event does not carry.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_sf_map.h"
#include "loyalty_test.h"


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };

static const char *const  tiers[] = { "Bronze", "Silver", "Gold" };

/* designated: the map entry has more members (lookups, fixed values) */
static const loyalty_sf_map_field_t  map[] = {
    { .field = "Loyalty_Points__c", .from = "loyalty.points",
      .type = { .type = LOYALTY_SF_INTEGER },
      .owner = LOYALTY_SF_OWNER_LOYALTY },
    { .field = "Loyalty_Tier__c", .from = "loyalty.tier",
      .type = { .type = LOYALTY_SF_PICKLIST, .allowed = tiers,
                .n_allowed = 3 },
      .owner = LOYALTY_SF_OWNER_LOYALTY },
    { .field = "HasOptedOutOfEmail", .from = "consent.email_opt_out",
      .type = { .type = LOYALTY_SF_BOOLEAN }, .owner = LOYALTY_SF_OWNER_CRM },
    { .field = "Email", .from = "customer.email",
      .type = { .type = LOYALTY_SF_EMAIL }, .owner = LOYALTY_SF_OWNER_EITHER },
    { .field = "Referral_URL__c", .from = "loyalty.referral_url",
      .type = { .type = LOYALTY_SF_TEXT, .max_length = 30, .nullable = 1 },
      .owner = LOYALTY_SF_OWNER_LOYALTY },
    { .field = "Tier_Expiry__c", .from = "loyalty.tier_expires",
      .type = { .type = LOYALTY_SF_DATE },
      .owner = LOYALTY_SF_OWNER_LOYALTY },
};

#define NMAP  (sizeof(map) / sizeof(map[0]))


static loyalty_json_t *
json(const char *text)
{
    loyalty_str_t    s;
    loyalty_err_t    err;
    loyalty_json_t  *v;

    s.len = strlen(text);
    s.data = lt_arena_dup(&arena, text, s.len);

    if (loyalty_json_parse(&s, &alloc, &v, &err) != LOYALTY_OK) {
        diag("fixture: %s", err.msg);
        exit(2);
    }

    return v;
}


static const loyalty_sf_mapped_t *
find(const loyalty_sf_mapped_t *m, size_t n, const char *field)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        if (strcmp(m[i].map->field, field) == 0) {
            return &m[i];
        }
    }

    return NULL;
}


static int
value_is(const loyalty_sf_mapped_t *m, const char *text)
{
    return m != NULL && m->status == LOYALTY_SF_MAPPED
           && m->value.text.len == strlen(text)
           && memcmp(m->value.text.data, text, m->value.text.len) == 0;
}


static void
test_to_crm(void)
{
    int                         rc;
    size_t                      n;
    loyalty_sf_mapped_t         out[NMAP];
    const loyalty_sf_mapped_t  *m;

    rc = loyalty_sf_map_apply(map, NMAP, LOYALTY_SF_TO_CRM,
        json("{\"loyalty\":{\"points\":1250,\"tier\":\"gold\","
             "\"referral_url\":null},\"consent\":{\"email_opt_out\":true},"
             "\"customer\":{\"email\":\"Ada@Example.com\"}}"),
        &alloc, out, &n);

    ok(rc == LOYALTY_OK, "to crm: all writable values valid");
    is_int((int) n, 5, "to crm: five fields present in the event");
    ok(value_is(find(out, n, "Loyalty_Points__c"), "1250"), "points");
    ok(value_is(find(out, n, "Loyalty_Tier__c"), "Gold"),
       "tier in the picklist's spelling");
    ok(value_is(find(out, n, "Email"), "ada@example.com"),
       "email (either owner) normalized");
    m = find(out, n, "Referral_URL__c");
    ok(m && m->status == LOYALTY_SF_MAPPED
       && m->value.json == LOYALTY_SF_JSON_NULL, "null clears a nullable");
    m = find(out, n, "HasOptedOutOfEmail");
    ok(m && m->status == LOYALTY_SF_NOT_OWNER,
       "consent (crm-owned) is not written by a loyalty flow");
    ok(m && strcmp(m->reason, "HasOptedOutOfEmail is owned by crm") == 0,
       "reason: %s", m ? m->reason : "");
    ok(m && m->source && m->source->type == LOYALTY_JSON_TRUE,
       "the refused value is kept for the conflict report");
    ok(find(out, n, "Tier_Expiry__c") == NULL, "absent source left out");
}


static void
test_to_loyalty(void)
{
    int                         rc;
    size_t                      n;
    loyalty_sf_mapped_t         out[NMAP];

    rc = loyalty_sf_map_apply(map, NMAP, LOYALTY_SF_TO_LOYALTY,
        json("{\"loyalty\":{\"points\":99,\"tier\":\"Silver\"},"
             "\"consent\":{\"email_opt_out\":false}}"),
        &alloc, out, &n);

    ok(rc == LOYALTY_OK, "to loyalty: ok");
    ok(find(out, n, "Loyalty_Points__c")->status == LOYALTY_SF_NOT_OWNER,
       "a CRM flow never writes the balance");
    ok(find(out, n, "Loyalty_Tier__c")->status == LOYALTY_SF_NOT_OWNER,
       "nor the tier");
    ok(value_is(find(out, n, "HasOptedOutOfEmail"), "false"),
       "but writes consent");
}


static void
test_invalid(void)
{
    int                         rc;
    size_t                      n;
    loyalty_sf_mapped_t         out[NMAP];
    const loyalty_sf_mapped_t  *m;

    rc = loyalty_sf_map_apply(map, NMAP, LOYALTY_SF_TO_CRM,
        json("{\"loyalty\":{\"points\":12.5,\"tier\":\"Platinum\","
             "\"referral_url\":\"https://example.com/r/ABCDEFGHIJKLMNOP\","
             "\"tier_expires\":\"2027-02-30\"}}"),
        &alloc, out, &n);

    ok(rc == LOYALTY_DECLINED, "invalid values: declined");
    is_int((int) n, 4, "every present field reported");

    m = find(out, n, "Loyalty_Points__c");
    ok(m && m->status == LOYALTY_SF_INVALID
       && strcmp(m->reason, "Loyalty_Points__c (integer from loyalty.points)"
                 ": not an integer") == 0,
       "reason names field, type and source: %s", m ? m->reason : "");
    m = find(out, n, "Loyalty_Tier__c");
    ok(m && m->status == LOYALTY_SF_INVALID && strstr(m->reason, "Platinum"),
       "picklist: %s", m ? m->reason : "");
    m = find(out, n, "Referral_URL__c");
    ok(m && m->status == LOYALTY_SF_INVALID
       && strstr(m->reason, "the field takes 30"), "length: %s",
       m ? m->reason : "");
    m = find(out, n, "Tier_Expiry__c");
    ok(m && m->status == LOYALTY_SF_INVALID, "date: %s", m ? m->reason : "");

    rc = loyalty_sf_map_apply(map, NMAP, LOYALTY_SF_TO_CRM, json("{}"),
                              &alloc, out, &n);
    ok(rc == LOYALTY_OK && n == 0, "an event without mapped values");

    rc = loyalty_sf_map_apply(map, NMAP, LOYALTY_SF_TO_CRM,
                              json("{\"loyalty\":[1,2]}"), &alloc, out, &n);
    ok(rc == LOYALTY_OK && n == 0, "a path through an array by name: none");
}


static void
test_owner(void)
{
    loyalty_sf_owner_e  o;

    ok(loyalty_sf_owner_parse("crm", &o) == LOYALTY_OK
       && o == LOYALTY_SF_OWNER_CRM, "owner crm");
    ok(loyalty_sf_owner_parse("loyalty", &o) == LOYALTY_OK
       && o == LOYALTY_SF_OWNER_LOYALTY, "owner loyalty");
    ok(loyalty_sf_owner_parse("either", &o) == LOYALTY_OK
       && o == LOYALTY_SF_OWNER_EITHER, "owner either");
    ok(loyalty_sf_owner_parse("CRM", &o) == LOYALTY_DECLINED,
       "owner names are lower case");
    ok(loyalty_sf_may_write(LOYALTY_SF_OWNER_EITHER, LOYALTY_SF_TO_CRM)
       && loyalty_sf_may_write(LOYALTY_SF_OWNER_EITHER,
                               LOYALTY_SF_TO_LOYALTY), "either: both ways");
}


/* lookups by external id, fixed values, platform events */

static void
test_targets(void)
{
    size_t                  n;
    loyalty_jw_t            w;
    loyalty_str_t           out;
    loyalty_json_t          fixed;
    loyalty_sf_mapped_t     m[3];
    loyalty_sf_map_field_t  t[3];

    memset(t, 0, sizeof(t));
    memset(&fixed, 0, sizeof(fixed));
    fixed.type = LOYALTY_JSON_STRING;
    fixed.text.data = (const u_char *) "Closed - Converted";
    fixed.text.len = strlen("Closed - Converted");

    t[0].field = "Contact__r";
    t[0].from = "$.ext_id";
    t[0].type.type = LOYALTY_SF_TEXT;
    t[0].lookup_object = "Contact";
    t[0].lookup_external_id = "Loyalty_Id__c";
    t[1].field = "Status";
    t[1].from = "value";
    t[1].type.type = LOYALTY_SF_TEXT;
    t[1].constant = &fixed;
    t[2].field = "Points__c";
    t[2].from = "points";
    t[2].type.type = LOYALTY_SF_INTEGER;

    ok(loyalty_sf_map_apply(t, 3, LOYALTY_SF_TO_CRM,
                            json("{\"points\":5,\"$\":{\"ext_id\":"
                                 "\"cus_\\\"7\"}}"),
                            &alloc, m, &n) == LOYALTY_OK && n == 3,
       "a lookup, a fixed value and a plain field are mapped");

    loyalty_jw_init(&w, &alloc, 64);
    loyalty_jw_object(&w, NULL);
    loyalty_sf_mapped_write(&w, &m[0]);
    loyalty_sf_mapped_write(&w, &m[1]);
    loyalty_sf_mapped_write(&w, &m[2]);
    loyalty_jw_end(&w);

    ok(loyalty_jw_finish(&w, &out) == LOYALTY_OK, "body written");
    is_str((const char *) out.data,
           "{\"Contact__r\":{\"attributes\":{\"type\":\"Contact\"},"
           "\"Loyalty_Id__c\":\"cus_\\\"7\"},"
           "\"Status\":\"Closed - Converted\",\"Points__c\":5}",
           "a lookup is the other record's external id, with its type");

    ok(loyalty_sf_map_apply(t, 2, LOYALTY_SF_TO_CRM, json("{}"), &alloc, m,
                            &n) == LOYALTY_OK && n == 1
       && strcmp(m[0].map->field, "Status") == 0,
       "an absent lookup value is not sent; a fixed value always is");

    ok(loyalty_sf_is_event("Loyalty_Update__e"), "__e: a platform event");
    ok(!loyalty_sf_is_event("Loyalty_Event__c"), "__c: a record");
    ok(!loyalty_sf_is_event("__e"), "__e alone is no name");
}


int
main(void)
{
    test_to_crm();
    test_to_loyalty();
    test_invalid();
    test_owner();
    test_targets();

    lt_arena_free(&arena);

    return done_testing();
}
