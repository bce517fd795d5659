/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_sf_bulk: job info of every state, sf__Error cells (codes,
 * messages holding colons, several fields, no fields, no code) and
 * their classes, and the /limits answer.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_sf_bulk.h"
#include "loyalty_test.h"


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


#define str(s)      lt_arena_str(&arena, s)
#define eq(s, want) lt_str_eq(s, want)


static void
test_job(void)
{
    size_t            i;
    loyalty_err_t     err;
    loyalty_str_t     body;
    loyalty_sf_job_t  job;
    static const struct {
        const char              *name;
        loyalty_sf_job_state_e   state;
        int                      done;
    } states[] = {
        { "Open", LOYALTY_SF_JOB_OPEN, 0 },
        { "UploadComplete", LOYALTY_SF_JOB_UPLOAD_COMPLETE, 0 },
        { "InProgress", LOYALTY_SF_JOB_IN_PROGRESS, 0 },
        { "JobComplete", LOYALTY_SF_JOB_COMPLETE, 1 },
        { "Failed", LOYALTY_SF_JOB_FAILED, 1 },
        { "Aborted", LOYALTY_SF_JOB_ABORTED, 1 },
        { "Sleeping", LOYALTY_SF_JOB_UNKNOWN, 0 },
    };
    char              text[256];

    for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
        snprintf(text, sizeof(text), "{\"id\":\"7505g00000ABCDEAA1\","
                 "\"operation\":\"upsert\",\"state\":\"%s\","
                 "\"numberRecordsProcessed\":120,"
                 "\"numberRecordsFailed\":2}", states[i].name);
        body = str(text);
        memset(&err, 0, sizeof(err));

        ok(loyalty_sf_job_parse(&body, &alloc, &job, &err) == LOYALTY_OK
           && job.state == states[i].state
           && loyalty_sf_job_done(job.state) == states[i].done
           && eq(&job.id, "7505g00000ABCDEAA1") && job.processed == 120
           && job.failed == 2, "job info, state %s", states[i].name);
    }

    body = str("{\"id\":\"750x\",\"state\":\"Failed\",\"errorMessage\":"
               "\"LineEnding is invalid on user data.\"}");
    ok(loyalty_sf_job_parse(&body, &alloc, &job, &err) == LOYALTY_OK
       && eq(&job.error, "LineEnding is invalid on user data."),
       "a failed job's errorMessage");

    body = str("{\"state\":\"Open\"}");
    ok(loyalty_sf_job_parse(&body, &alloc, &job, &err) == LOYALTY_DECLINED,
       "job info without an id is refused");

    body = str("[{\"errorCode\":\"INVALIDJOB\"}]");
    ok(loyalty_sf_job_parse(&body, &alloc, &job, &err) == LOYALTY_DECLINED,
       "an error array is not job info");

    body = str("{\"id\":");
    ok(loyalty_sf_job_parse(&body, &alloc, &job, &err) == LOYALTY_DECLINED,
       "broken JSON is refused");
}


static void
test_error(void)
{
    size_t               i;
    loyalty_str_t        e;
    loyalty_sf_result_t  r;
    static const struct {
        const char          *cell;
        const char          *code;
        const char          *message;
        const char          *fields;
        loyalty_sf_class_e   cls;
    } cases[] = {
        { "FIELD_CUSTOM_VALIDATION_EXCEPTION:Points must be positive:"
          "Points__c --", "FIELD_CUSTOM_VALIDATION_EXCEPTION",
          "Points must be positive", "Points__c", LOYALTY_SF_PERMANENT },
        { "UNABLE_TO_LOCK_ROW:unable to obtain exclusive access to this "
          "record:--", "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive "
          "access to this record", "", LOYALTY_SF_TRANSIENT },
        { "DUPLICATE_VALUE:duplicate value found: Loyalty_Id__c "
          "duplicates value on record with id: 003000000000001:"
          "Loyalty_Id__c --", "DUPLICATE_VALUE", "duplicate value found: "
          "Loyalty_Id__c duplicates value on record with id: "
          "003000000000001", "Loyalty_Id__c", LOYALTY_SF_CONFLICT },
        { "REQUIRED_FIELD_MISSING:Required fields are missing: "
          "[LastName]:LastName,Email --", "REQUIRED_FIELD_MISSING",
          "Required fields are missing: [LastName]", "LastName,Email",
          LOYALTY_SF_PERMANENT },
        { "STRING_TOO_LONG:too long", "STRING_TOO_LONG", "too long", "",
          LOYALTY_SF_PERMANENT },
        { "something went wrong", "UNKNOWN_BULK_ERROR",
          "something went wrong", "", LOYALTY_SF_PERMANENT },
        { "", "UNKNOWN_BULK_ERROR", "", "", LOYALTY_SF_PERMANENT },
        { "lower:case code", "UNKNOWN_BULK_ERROR", "lower:case code", "",
          LOYALTY_SF_PERMANENT },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        e = str(cases[i].cell);
        loyalty_sf_bulk_error_parse(&e, &r);

        ok(eq(&r.code, cases[i].code) && eq(&r.message, cases[i].message)
           && eq(&r.fields, cases[i].fields) && r.cls == cases[i].cls,
           "sf__Error \"%.30s\": %s", cases[i].cell, cases[i].code);
    }
}


static void
test_limits(void)
{
    loyalty_err_t       err;
    loyalty_str_t       body;
    loyalty_sf_usage_t  u;

    body = str("{\"DailyApiRequests\":{\"Max\":15000,\"Remaining\":14250},"
               "\"DailyBulkApiBatches\":{\"Max\":15000,\"Remaining\":15000}}");
    memset(&err, 0, sizeof(err));
    ok(loyalty_sf_limits_parse(&body, &alloc, &u, &err) == LOYALTY_OK
       && u.used == 750 && u.limit == 15000, "limits: used = Max - "
       "Remaining");

    body = str("{\"DailyApiRequests\":{\"Max\":100,\"Remaining\":-3}}");
    ok(loyalty_sf_limits_parse(&body, &alloc, &u, &err) == LOYALTY_OK
       && u.used == 100, "limits: over the limit reads as all used");

    body = str("{\"DailyApiRequests\":{\"Max\":0,\"Remaining\":0}}");
    ok(loyalty_sf_limits_parse(&body, &alloc, &u, &err) == LOYALTY_DECLINED,
       "limits: no Max refused");

    body = str("{\"DailyBulkApiBatches\":{\"Max\":1}}");
    ok(loyalty_sf_limits_parse(&body, &alloc, &u, &err) == LOYALTY_DECLINED,
       "limits: no DailyApiRequests refused");

    body = str("[]");
    ok(loyalty_sf_limits_parse(&body, &alloc, &u, &err) == LOYALTY_DECLINED,
       "limits: not an object refused");
}


int
main(void)
{
    test_job();
    test_error();
    test_limits();

    lt_arena_free(&arena);

    return done_testing();
}
