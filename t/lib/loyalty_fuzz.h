/*
 * Copyright (C) loyalty-edge authors
 *
 * What every sender fuzz target checks of every event a normaliser
 * gives: the invariants the module, Redis and the worker rely on.  A
 * broken invariant aborts, which libFuzzer reports as a crash.
 */

#ifndef _LOYALTY_FUZZ_H_INCLUDED_
#define _LOYALTY_FUZZ_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_test.h"


#define lt_fuzz_check(cond)                                                  \
    if (!(cond)) {                                                           \
        fprintf(stderr, "invariant failed at %s:%d: %s\n", __FILE__,         \
                __LINE__, #cond);                                            \
        abort();                                                             \
    }


static inline void
lt_fuzz_event(loyalty_event_t *ev, const char *src, int64_t received,
    const loyalty_alloc_t *a)
{
    size_t           i, n;
    loyalty_json_t  *obj;
    loyalty_err_t    err;
    loyalty_str_t    fv[2 * LOYALTY_ENVELOPE_FIELDS], t, redump, again;
    loyalty_event_t  back;

    const loyalty_str_t  *f[] = {
        &ev->id, &ev->alt_id, &ev->src, &ev->type, &ev->topic,
        &ev->occurred, &ev->email, &ev->phone, &ev->ext_id, &ev->store_cid,
        &ev->data
    };

    for (i = 0; i < sizeof(f) / sizeof(f[0]); i++) {
        lt_fuzz_check(f[i]->len == 0 || f[i]->data != NULL);
    }

    /* the dedupe keys become Redis key names */
    lt_fuzz_check(loyalty_event_id_valid(ev->id.data, ev->id.len));
    lt_fuzz_check(ev->alt_id.len == 0
                  || loyalty_event_id_valid(ev->alt_id.data,
                                            ev->alt_id.len));

    lt_fuzz_check(ev->src.len == strlen(src)
                  && memcmp(ev->src.data, src, ev->src.len) == 0);
    lt_fuzz_check(ev->received == received);

    /* canonical, or unknown */
    t = ev->type;
    lt_fuzz_check(t.len != 0);
    lt_fuzz_check(strcmp(loyalty_canonical_type(&t), "unknown") != 0
                  || (t.len == 7 && memcmp(t.data, "unknown", 7) == 0));

    /* RFC 3339 UTC: consumers order events by comparing these strings */
    lt_fuzz_check(ev->occurred.len >= 20 && ev->occurred.data[4] == '-'
                  && ev->occurred.data[10] == 'T'
                  && ev->occurred.data[ev->occurred.len - 1] == 'Z');

    if (ev->email.len) {
        lt_fuzz_check(memchr(ev->email.data, '@', ev->email.len) != NULL);
        for (i = 0; i < ev->email.len; i++) {
            lt_fuzz_check(ev->email.data[i] > 0x20
                          && ev->email.data[i] != 0x7f
                          && !(ev->email.data[i] >= 'A'
                               && ev->email.data[i] <= 'Z'));
        }
    }

    if (ev->phone.len) {
        lt_fuzz_check(ev->phone.data[0] == '+' && ev->phone.len <= 16);
        for (i = 1; i < ev->phone.len; i++) {
            lt_fuzz_check(ev->phone.data[i] >= '0'
                          && ev->phone.data[i] <= '9');
        }
    }

    lt_fuzz_check(ev->ext_id.len == 0
                  || loyalty_event_id_valid(ev->ext_id.data,
                                            ev->ext_id.len));
    lt_fuzz_check(ev->store_cid.len == 0
                  || loyalty_event_id_valid(ev->store_cid.data,
                                            ev->store_cid.len));

    /*
     * data is a JSON object that survives a round trip; the writer and
     * loyalty_json_dump escape control characters differently (\u0008,
     * \b), so texts are compared after one round through the parser
     */
    lt_fuzz_check(ev->data.len != 0);
    lt_fuzz_check(loyalty_json_parse(&ev->data, a, &obj, &err)
                  == LOYALTY_OK);
    lt_fuzz_check(obj->type == LOYALTY_JSON_OBJECT);
    lt_fuzz_check(loyalty_json_dump(obj, a, &redump) == LOYALTY_OK);
    lt_fuzz_check(loyalty_json_parse(&redump, a, &obj, &err) == LOYALTY_OK);
    lt_fuzz_check(loyalty_json_dump(obj, a, &again) == LOYALTY_OK);
    lt_fuzz_check(again.len == redump.len
                  && memcmp(again.data, redump.data, again.len) == 0);

    /* and the event survives the envelope */
    ev->store.data = (const u_char *) "eu";
    ev->store.len = 2;
    ev->corr.data = (const u_char *) "fuzz";
    ev->corr.len = 4;

    n = loyalty_envelope_encode(ev, fv);
    lt_fuzz_check(n <= 2 * LOYALTY_ENVELOPE_FIELDS && n % 2 == 0);
    lt_fuzz_check(loyalty_envelope_decode(fv, n, &back, &err)
                  == LOYALTY_OK);
    lt_fuzz_check(back.received == ev->received);
    lt_fuzz_check(back.id.len == ev->id.len
                  && back.data.len == ev->data.len);
}


/* conf for the named sender with one secret; aborts on any failure */

static inline void
lt_fuzz_conf(loyalty_provider_conf_t *conf, const char *name,
    const char *secret)
{
    loyalty_err_t  err;
    loyalty_str_t  s;

    loyalty_provider_conf_init(conf);
    loyalty_provider_conf_set(conf,
        loyalty_provider_find((const u_char *) name, strlen(name)));

    s = lt_str(secret);

    if (conf->provider == NULL
        || loyalty_provider_add_secret(conf, &s, &err) != LOYALTY_OK)
    {
        abort();
    }
}


/*
 * normalize of a verified request, with allocation fail_at of the arena
 * failing when it is not 0, and every event checked; a single-event
 * sender's batch holds at most one
 */

static inline void
lt_fuzz_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, lt_arena_t *arena,
    const loyalty_alloc_t *alloc, size_t fail_at, int64_t received)
{
    int              rc;
    size_t           i;
    loyalty_err_t    err;
    loyalty_batch_t  batch;

    memset(&err, 0, sizeof(err));
    memset(&batch, 0, sizeof(batch));

    arena->fail_at = fail_at;

    rc = conf->provider->normalize(conf, req, alloc, &batch, &err);

    lt_fuzz_check(memchr(err.msg, '\0', sizeof(err.msg)) != NULL);

    if (rc == LOYALTY_OK) {
        lt_fuzz_check(batch.nevents <= 1);
        lt_fuzz_check(batch.nevents == 0 || batch.events != NULL);
        arena->fail_at = 0;

        for (i = 0; i < batch.nevents; i++) {
            lt_fuzz_event(&batch.events[i], conf->provider->name, received,
                          alloc);
        }

    } else if (rc == LOYALTY_DECLINED) {
        lt_fuzz_check(err.code == LOYALTY_ERR_JSON
                      || err.code == LOYALTY_ERR_INPUT);

    } else {
        lt_fuzz_check(rc == LOYALTY_ERROR && err.code == LOYALTY_ERR_NOMEM);
        lt_fuzz_check(fail_at != 0);
    }
}


#endif /* _LOYALTY_FUZZ_H_INCLUDED_ */
