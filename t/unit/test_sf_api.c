/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_sf_api: the Collections body, per-record results mapped back
 * in order, single answers of every status Salesforce uses, the class of
 * each error code, and Sforce-Limit-Info.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_sf_api.h"
#include "loyalty_sf_field.h"
#include "loyalty_test.h"


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


#define str(s)      lt_arena_str(&arena, s)
#define eq(s, want) lt_str_eq(s, want)


static void
test_classify(void)
{
    static const struct {
        const char          *code;
        const char          *message;
        loyalty_sf_class_e   cls;
    } cases[] = {
        { "UNABLE_TO_LOCK_ROW", "", LOYALTY_SF_TRANSIENT },
        { "CANNOT_EXECUTE_FLOW_TRIGGER",
          "The flow failed: UNABLE_TO_LOCK_ROW, unable to obtain exclusive "
          "access to this record", LOYALTY_SF_TRANSIENT },
        { "CANNOT_EXECUTE_FLOW_TRIGGER", "a validation failed",
          LOYALTY_SF_PERMANENT },
        { "ALL_OR_NONE_OPERATION_ROLLED_BACK", "", LOYALTY_SF_TRANSIENT },
        { "SERVER_UNAVAILABLE", "", LOYALTY_SF_TRANSIENT },
        { "DUPLICATE_VALUE", "", LOYALTY_SF_CONFLICT },
        { "DUPLICATES_DETECTED", "", LOYALTY_SF_CONFLICT },
        { "INVALID_SESSION_ID", "", LOYALTY_SF_AUTH },
        { "REQUEST_LIMIT_EXCEEDED", "", LOYALTY_SF_LIMIT },
        { "OPERATION_ENQUEUED", "", LOYALTY_SF_SUCCESS },
        { "FIELD_CUSTOM_VALIDATION_EXCEPTION", "", LOYALTY_SF_PERMANENT },
        { "INVALID_FIELD", "", LOYALTY_SF_PERMANENT },
        { "INVALID_FIELD", "No such column 'Foo__c' on sobject of type "
          "Contact", LOYALTY_SF_PERMANENT },
        /* a lookup to a customer not written yet: it may come */
        { "INVALID_FIELD", "Foreign key external ID: cus_9 not found for "
          "field Loyalty_Id__c in entity Contact", LOYALTY_SF_TRANSIENT },
        { "FIELD_CUSTOM_VALIDATION_EXCEPTION", "Foreign key external ID: "
          "x not found", LOYALTY_SF_PERMANENT },
        { "STRING_TOO_LONG", "", LOYALTY_SF_PERMANENT },
        { "unable_to_lock_row", "", LOYALTY_SF_PERMANENT },
    };
    size_t         i;
    loyalty_str_t  c, m;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        c = str(cases[i].code);
        m = str(cases[i].message);
        is_str(loyalty_sf_class_name(loyalty_sf_classify(&c, &m)),
               loyalty_sf_class_name(cases[i].cls), cases[i].code);
    }
}


static void
test_body(void)
{
    loyalty_jw_t        w;
    loyalty_str_t       out, contact = loyalty_string("Contact"),
                        ext = loyalty_string("Loyalty_Id__c"),
                        pts = loyalty_string("Points__c");
    loyalty_sf_value_t  id1 = { LOYALTY_SF_JSON_STRING,
                                loyalty_string("eu:77") };
    loyalty_sf_value_t  id2 = { LOYALTY_SF_JSON_STRING,
                                loyalty_string("us:9") };
    loyalty_sf_value_t  p1 = { LOYALTY_SF_JSON_NUMBER,
                               loyalty_string("1250") };
    const char         *want;

    loyalty_jw_init(&w, &alloc, 64);
    loyalty_sf_collection_begin(&w, 0);
    loyalty_sf_record_begin(&w, &contact);
    loyalty_sf_value_write(&w, &ext, &id1);
    loyalty_sf_value_write(&w, &pts, &p1);
    loyalty_sf_record_end(&w);
    loyalty_sf_record_begin(&w, &contact);
    loyalty_sf_value_write(&w, &ext, &id2);
    loyalty_sf_record_end(&w);
    loyalty_sf_collection_end(&w);

    want = "{\"allOrNone\":false,\"records\":["
           "{\"attributes\":{\"type\":\"Contact\"},\"Loyalty_Id__c\":"
           "\"eu:77\",\"Points__c\":1250},"
           "{\"attributes\":{\"type\":\"Contact\"},\"Loyalty_Id__c\":"
           "\"us:9\"}]}";
    ok(loyalty_jw_finish(&w, &out) == LOYALTY_OK, "collection written");
    is_mem(out.data, out.len, want, strlen(want), "collection body");

    loyalty_jw_init(&w, &alloc, 64);
    loyalty_sf_collection_begin(&w, 1);
    loyalty_sf_collection_end(&w);
    ok(loyalty_jw_finish(&w, &out) == LOYALTY_OK
       && eq(&out, "{\"allOrNone\":true,\"records\":[]}"), "allOrNone true");
}


static void
test_results(void)
{
    int                  rc;
    loyalty_err_t        err;
    loyalty_str_t        body;
    loyalty_sf_result_t  r[4];

    body = str("[{\"id\":\"003000000000001AAA\",\"success\":true,"
               "\"errors\":[],\"created\":true},"
               "{\"id\":null,\"success\":false,\"errors\":[{\"statusCode\":"
               "\"DUPLICATE_VALUE\",\"message\":\"duplicate value found: "
               "Email\",\"fields\":[\"Email\",\"Phone\"]}]},"
               "{\"id\":null,\"success\":false,\"errors\":[{\"statusCode\":"
               "\"UNABLE_TO_LOCK_ROW\",\"message\":\"unable to obtain\","
               "\"fields\":[]}]},"
               "{\"id\":\"003000000000002AAA\",\"success\":true,"
               "\"errors\":[],\"created\":false}]");

    rc = loyalty_sf_results_parse(&body, 4, &alloc, r, &err);
    ok(rc == LOYALTY_OK, "four results parsed");
    ok(r[0].cls == LOYALTY_SF_SUCCESS && r[0].created
       && eq(&r[0].id, "003000000000001AAA"), "1: created with its id");
    ok(r[1].cls == LOYALTY_SF_CONFLICT && eq(&r[1].code, "DUPLICATE_VALUE")
       && eq(&r[1].fields, "Email,Phone") && r[1].id.len == 0,
       "2: duplicate, fields joined");
    ok(eq(&r[1].message, "duplicate value found: Email"), "2: message");
    ok(r[2].cls == LOYALTY_SF_TRANSIENT && r[2].fields.len == 0,
       "3: lock is transient");
    ok(r[3].cls == LOYALTY_SF_SUCCESS && !r[3].created, "4: updated");

    rc = loyalty_sf_results_parse(&body, 3, &alloc, r, &err);
    ok(rc == LOYALTY_DECLINED, "a count mismatch is refused");
    ok(strstr(err.msg, "3 results") != NULL, "reason: %s", err.msg);

    body = str("{\"id\":\"x\",\"success\":true}");
    ok(loyalty_sf_results_parse(&body, 1, &alloc, r, &err)
       == LOYALTY_DECLINED, "an object is not a result array");

    body = str("<html>Service Unavailable</html>");
    ok(loyalty_sf_results_parse(&body, 1, &alloc, r, &err)
       == LOYALTY_DECLINED, "HTML is refused");

    body = str("[{\"id\":\"x\"}]");
    ok(loyalty_sf_results_parse(&body, 1, &alloc, r, &err)
       == LOYALTY_DECLINED, "a result without success is refused");

    body = str("[{\"success\":false,\"errors\":[]}]");
    ok(loyalty_sf_results_parse(&body, 1, &alloc, r, &err)
       == LOYALTY_DECLINED, "a failure without errors is refused");

    body = str("");
    ok(loyalty_sf_results_parse(&body, 1, &alloc, r, &err)
       == LOYALTY_DECLINED, "an empty body is refused");

    body = str("[{\"id\":\"e00xx000000000B\",\"success\":true,\"errors\":"
               "[{\"statusCode\":\"OPERATION_ENQUEUED\",\"message\":"
               "\"a1b2\",\"fields\":[]}]}]");
    ok(loyalty_sf_results_parse(&body, 1, &alloc, r, &err) == LOYALTY_OK
       && r[0].cls == LOYALTY_SF_SUCCESS
       && eq(&r[0].code, "OPERATION_ENQUEUED"),
       "OPERATION_ENQUEUED is a success");
}


static void
test_answers(void)
{
    loyalty_err_t        err;
    loyalty_str_t        body;
    loyalty_sf_result_t  r;

    body = str("{\"id\":\"003000000000001AAA\",\"success\":true,"
               "\"errors\":[],\"created\":true}");
    ok(loyalty_sf_answer_parse(201, &body, &alloc, &r, &err) == LOYALTY_OK
       && r.cls == LOYALTY_SF_SUCCESS && r.created, "201 created");

    body = str("");
    ok(loyalty_sf_answer_parse(204, &body, &alloc, &r, &err) == LOYALTY_OK
       && r.cls == LOYALTY_SF_SUCCESS, "204 (API 45.0 and older)");

    body = str("[\"/services/data/v62.0/sobjects/Contact/003A\","
               "\"/services/data/v62.0/sobjects/Contact/003B\"]");
    ok(loyalty_sf_answer_parse(300, &body, &alloc, &r, &err) == LOYALTY_OK
       && r.cls == LOYALTY_SF_CONFLICT && eq(&r.code, "MULTIPLE_CHOICES"),
       "300 is a conflict");

    body = str("[{\"message\":\"Session expired or invalid\","
               "\"errorCode\":\"INVALID_SESSION_ID\"}]");
    ok(loyalty_sf_answer_parse(401, &body, &alloc, &r, &err) == LOYALTY_OK
       && r.cls == LOYALTY_SF_AUTH, "401 INVALID_SESSION_ID");

    body = str("[{\"message\":\"TotalRequests Limit exceeded.\","
               "\"errorCode\":\"REQUEST_LIMIT_EXCEEDED\"}]");
    ok(loyalty_sf_answer_parse(403, &body, &alloc, &r, &err) == LOYALTY_OK
       && r.cls == LOYALTY_SF_LIMIT, "403 REQUEST_LIMIT_EXCEEDED");

    body = str("[{\"message\":\"Tier: bad value for restricted picklist\","
               "\"errorCode\":\"INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST\","
               "\"fields\":[\"Tier__c\"]}]");
    ok(loyalty_sf_answer_parse(400, &body, &alloc, &r, &err) == LOYALTY_OK
       && r.cls == LOYALTY_SF_PERMANENT && eq(&r.fields, "Tier__c"),
       "400 validation is permanent, with its field");

    body = str("[{\"message\":\"An unexpected error occurred\","
               "\"errorCode\":\"SOMETHING_NEW\"}]");
    ok(loyalty_sf_answer_parse(500, &body, &alloc, &r, &err) == LOYALTY_OK
       && r.cls == LOYALTY_SF_TRANSIENT, "a 5xx is never permanent");

    body = str("<html>maintenance</html>");
    ok(loyalty_sf_answer_parse(503, &body, &alloc, &r, &err)
       == LOYALTY_DECLINED, "an unparseable answer is refused (transient)");

    body = str("{\"error\":\"x\"}");
    ok(loyalty_sf_answer_parse(400, &body, &alloc, &r, &err)
       == LOYALTY_DECLINED, "a 4xx without the error array is refused");
}


static void
test_usage(void)
{
    static const struct {
        const char  *header;
        int          rc;
        int64_t      used, limit;
    } cases[] = {
        { "api-usage=18/15000", LOYALTY_OK, 18, 15000 },
        { "api-usage=99123/100000; api-bursts=3/1000", LOYALTY_OK, 99123,
          100000 },
        { "api-bursts=3/1000; api-usage=7/5000000", LOYALTY_OK, 7, 5000000 },
        { "api-usage=0/15000", LOYALTY_OK, 0, 15000 },
        { "api-usage=18", LOYALTY_DECLINED, 0, 0 },
        { "api-usage=/15000", LOYALTY_DECLINED, 0, 0 },
        { "api-usage=18/", LOYALTY_DECLINED, 0, 0 },
        { "api-usage=18/15000x", LOYALTY_DECLINED, 0, 0 },
        { "api-usage=1234567890123456/1", LOYALTY_DECLINED, 0, 0 },
        { "usage=18/15000", LOYALTY_DECLINED, 0, 0 },
        { "", LOYALTY_DECLINED, 0, 0 },
    };
    size_t              i;
    loyalty_str_t       h;
    loyalty_sf_usage_t  u;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        h = str(cases[i].header);
        memset(&u, 0, sizeof(u));
        ok(loyalty_sf_usage_parse(&h, &u) == cases[i].rc
           && (cases[i].rc != LOYALTY_OK
               || (u.used == cases[i].used && u.limit == cases[i].limit)),
           "Sforce-Limit-Info \"%s\"", cases[i].header);
    }
}


int
main(void)
{
    test_classify();
    test_body();
    test_results();
    test_answers();
    test_usage();

    lt_arena_free(&arena);

    return done_testing();
}
