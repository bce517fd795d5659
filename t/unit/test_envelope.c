/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_envelope: envelope v1 encode/decode (field order, absent
 * fields, version and required fields), canonical types, store / event
 * id / correlation id validation and RFC 3339 formatting.
 */


#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "loyalty_envelope.h"
#include "loyalty_test.h"


#define S(s)  ((loyalty_str_t) loyalty_string(s))

#define NFV   (2 * LOYALTY_ENVELOPE_FIELDS)


static void full_event(loyalty_event_t *ev);
static void min_event(loyalty_event_t *ev);
static int decode_pairs(const char **pairs, size_t n, loyalty_event_t *ev,
    loyalty_err_t *err);
static void test_encode_full(void);
static void test_encode_min(void);
static void test_roundtrip(void);
static void test_decode_reject(void);
static void test_decode_lenient(void);
static void test_canonical(void);
static void test_store(void);
static void test_event_id(void);
static void test_corr(void);
static void test_rfc3339(void);


/* design.md, "Envelope v1": every canonical type */
static const char  *canonical[] = {
    "customer.created", "customer.updated", "customer.deleted",
    "order.created", "order.paid", "order.refunded", "order.cancelled",
    "points.earned", "points.redeemed", "points.adjusted",
    "tier.changed",
    "referral.created", "referral.completed",
    "reward.issued", "reward.redeemed",
    "consent.changed",
    "receipt.created",
    NULL
};


static void
full_event(loyalty_event_t *ev)
{
    memset(ev, 0, sizeof(loyalty_event_t));

    ev->id = S("msg_p5jXN8AQM9LWM0D4loKWxJek");
    ev->src = S("standard");
    ev->store = S("eu");
    ev->type = S("customer.updated");
    ev->topic = S("contact.updated");
    ev->occurred = S("2024-01-02T03:04:05Z");
    ev->received = 1700000000123LL;
    ev->corr = S("550e8400-e29b-41d4-a716-446655440000");
    ev->email = S("a@b.co");
    ev->ext_id = S("x1");
    ev->store_cid = S("12345678901234567890");
    ev->phone = S("+4915112345678");
    ev->data = S("{\"customer\":{\"email\":\"a@b.co\"}}");
    ev->raw = S("{\"type\": \"contact.updated\"}");
}


static void
min_event(loyalty_event_t *ev)
{
    memset(ev, 0, sizeof(loyalty_event_t));

    ev->id = S("e1");
    ev->src = S("generic");
    ev->store = S("us");
    ev->type = S("unknown");
    ev->received = 0;
    ev->data = S("{}");
}


/* pairs of C strings; n counts strings, not pairs */

static int
decode_pairs(const char **pairs, size_t n, loyalty_event_t *ev,
    loyalty_err_t *err)
{
    size_t         i;
    loyalty_str_t  fv[64];

    for (i = 0; i < n; i++) {
        fv[i] = lt_str(pairs[i]);
    }

    memset(err, 0, sizeof(loyalty_err_t));

    return loyalty_envelope_decode(fv, n, ev, err);
}


static void
test_encode_full(void)
{
    size_t           n, i;
    loyalty_str_t    out[NFV + 2];
    loyalty_event_t  ev;

    static const char  *exp[] = {
        "v", "1",
        "id", "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "src", "standard",
        "store", "eu",
        "type", "customer.updated",
        "topic", "contact.updated",
        "occurred", "2024-01-02T03:04:05Z",
        "received", "1700000000123",
        "corr", "550e8400-e29b-41d4-a716-446655440000",
        "email", "a@b.co",
        "ext_id", "x1",
        "store_cid", "12345678901234567890",
        "phone", "+4915112345678",
        "data", "{\"customer\":{\"email\":\"a@b.co\"}}",
        "raw", "{\"type\": \"contact.updated\"}",
        NULL
    };

    full_event(&ev);

    /* a sentinel after the maximum: encode must not write past it */
    out[NFV].data = (const u_char *) "sentinel";
    out[NFV].len = 8;

    n = loyalty_envelope_encode(&ev, out);

    is_int(n, NFV, "encode full: 15 field/value pairs");
    lt_str_is(&out[NFV], "sentinel", "encode full: nothing written past 30");

    for (i = 0; exp[i] != NULL && i < n; i++) {
        if (!lt_str_is(&out[i], exp[i], "encode full: entry in order")) {
            diag("  entry %zu, expected \"%s\"", i, exp[i]);
        }
    }

    is_int(i, NFV, "encode full: every expected entry compared");

    /* values are the event's own memory, not copies */
    ok(out[3].data == ev.id.data, "encode: id value points into the event");
    ok(out[15].data == (const u_char *) ev.received_text,
       "encode: received is the event's received_text");
}


static void
test_encode_min(void)
{
    size_t           n, i;
    loyalty_str_t    out[NFV];
    loyalty_event_t  ev;

    static const char  *exp[] = {
        "v", "1",
        "id", "e1",
        "src", "generic",
        "store", "us",
        "type", "unknown",
        "received", "0",
        "data", "{}",
        NULL
    };

    min_event(&ev);

    n = loyalty_envelope_encode(&ev, out);

    is_int(n, 14, "encode minimal: absent fields left out");

    for (i = 0; exp[i] != NULL && i < n; i++) {
        if (!lt_str_is(&out[i], exp[i], "encode minimal: entry in order")) {
            diag("  entry %zu, expected \"%s\"", i, exp[i]);
        }
    }

    /* only some optional fields: order still fixed */
    min_event(&ev);
    ev.phone = S("+49");
    ev.occurred = S("2024-01-02T03:04:05Z");
    ev.received = INT64_MAX;

    n = loyalty_envelope_encode(&ev, out);

    is_int(n, 18, "encode partial: 9 pairs");
    lt_str_is(&out[10], "occurred", "encode partial: occurred after type");
    lt_str_is(&out[12], "received", "encode partial: received after occurred");
    lt_str_is(&out[13], "9223372036854775807",
           "encode partial: received INT64_MAX in decimal");
    lt_str_is(&out[14], "phone", "encode partial: phone after received");
    lt_str_is(&out[16], "data", "encode partial: data last");

    /* encoding twice gives the same text (received_text rewritten) */
    ev.received = 42;
    n = loyalty_envelope_encode(&ev, out);
    lt_str_is(&out[13], "42", "encode: received_text rewritten on re-encode");
}


static void
test_roundtrip(void)
{
    int              rc;
    size_t           n;
    loyalty_err_t    err;
    loyalty_str_t    out[NFV];
    loyalty_event_t  ev, back;

    full_event(&ev);
    n = loyalty_envelope_encode(&ev, out);

    memset(&err, 0, sizeof(loyalty_err_t));
    memset(&back, 0xa5, sizeof(loyalty_event_t));

    rc = loyalty_envelope_decode(out, n, &back, &err);

    is_int(rc, LOYALTY_OK, "decode full round trip");

#define same(f)                                                               \
    is_mem(back.f.data, back.f.len, ev.f.data, ev.f.len, "round trip: " #f)

    same(id);
    same(src);
    same(store);
    same(type);
    same(topic);
    same(occurred);
    same(corr);
    same(email);
    same(ext_id);
    same(store_cid);
    same(phone);
    same(data);
    same(raw);

#undef same

    is_int(back.received, 1700000000123LL, "round trip: received");
    ok(back.id.data == out[3].data, "decode: values point into the input");

    /* minimal event: absent fields come back empty, not stale */
    min_event(&ev);
    n = loyalty_envelope_encode(&ev, out);
    memset(&back, 0xa5, sizeof(loyalty_event_t));

    rc = loyalty_envelope_decode(out, n, &back, &err);

    is_int(rc, LOYALTY_OK, "decode minimal round trip");
    is_int(back.topic.len, 0, "minimal round trip: no topic");
    is_int(back.email.len, 0, "minimal round trip: no email");
    is_int(back.raw.len, 0, "minimal round trip: no raw");
    is_int(back.received, 0, "minimal round trip: received 0");
    lt_str_is(&back.data, "{}", "minimal round trip: data");

    /* 19 digits, the largest value received can hold */
    ev.received = INT64_MAX;
    n = loyalty_envelope_encode(&ev, out);
    rc = loyalty_envelope_decode(out, n, &back, &err);
    is_int(rc, LOYALTY_OK, "decode received INT64_MAX");
    ok(back.received == INT64_MAX, "round trip: received INT64_MAX");
}


static void
test_decode_reject(void)
{
    int              rc;
    size_t           i;
    loyalty_err_t    err;
    loyalty_event_t  ev;

    static const char  *base[] = {
        "v", "1", "id", "e1", "src", "generic", "store", "us",
        "type", "unknown", "received", "1", "data", "{}"
    };
    static const char  *required[] = { "id", "src", "store", "type", "data" };
    static const char  *bad_received[] = {
        "", "12a", "-1", "+1", " 1", "1 ", "0x10", "1.5",
        "12345678901234567890",             /* 20 digits */
        NULL
    };

    const char  *pairs[16];

    rc = decode_pairs(base, 14, &ev, &err);
    is_int(rc, LOYALTY_OK, "decode base event");

    /* odd field count */
    rc = decode_pairs(base, 13, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: odd field count declined");
    is_int(err.code, LOYALTY_ERR_INPUT, "odd field count: ERR_INPUT");

    rc = decode_pairs(base, 1, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: a single field declined");

    rc = decode_pairs(base, 0, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: empty entry declined");

    /* version */
    memcpy(pairs, base, sizeof(base));
    pairs[1] = "2";
    rc = decode_pairs(pairs, 14, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: version 2 declined");
    is_int(err.code, LOYALTY_ERR_INPUT, "version 2: ERR_INPUT");
    ok(strstr(err.msg, "\"2\"") != NULL, "version 2: message names it (%s)",
       err.msg);

    pairs[1] = "";
    rc = decode_pairs(pairs, 14, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: empty version declined");

    pairs[1] = "10";
    rc = decode_pairs(pairs, 14, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: version 10 declined");

    pairs[1] = "1 ";
    rc = decode_pairs(pairs, 14, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: version \"1 \" declined");

    /* no "v" at all: the pair renamed to an unknown field */
    memcpy(pairs, base, sizeof(base));
    pairs[0] = "version";
    rc = decode_pairs(pairs, 14, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: absent version declined");
    is_int(err.code, LOYALTY_ERR_INPUT, "absent version: ERR_INPUT");

    /* "V" is not "v" */
    pairs[0] = "V";
    rc = decode_pairs(pairs, 14, &ev, &err);
    is_int(rc, LOYALTY_DECLINED, "decode: field names are case-sensitive");

    /* each required field, absent and then empty */
    for (i = 0; i < sizeof(required) / sizeof(required[0]); i++) {
        size_t  k;

        memcpy(pairs, base, sizeof(base));

        for (k = 0; k < 14; k += 2) {
            if (strcmp(pairs[k], required[i]) == 0) {
                pairs[k] = "x-renamed";
            }
        }

        rc = decode_pairs(pairs, 14, &ev, &err);
        is_int(rc, LOYALTY_DECLINED, "decode: missing required field");
        if (rc != LOYALTY_DECLINED) {
            diag("  field %s", required[i]);
        }
        is_int(err.code, LOYALTY_ERR_INPUT, "missing field: ERR_INPUT");

        memcpy(pairs, base, sizeof(base));

        for (k = 0; k < 14; k += 2) {
            if (strcmp(pairs[k], required[i]) == 0) {
                pairs[k + 1] = "";
            }
        }

        rc = decode_pairs(pairs, 14, &ev, &err);
        is_int(rc, LOYALTY_DECLINED, "decode: empty required field");
        if (rc != LOYALTY_DECLINED) {
            diag("  field %s", required[i]);
        }
    }

    /* malformed received */
    for (i = 0; bad_received[i] != NULL; i++) {
        memcpy(pairs, base, sizeof(base));
        pairs[11] = bad_received[i];

        rc = decode_pairs(pairs, 14, &ev, &err);
        if (!is_int(rc, LOYALTY_DECLINED, "decode: malformed received")) {
            diag("  received \"%s\"", bad_received[i]);
        }
        is_int(err.code, LOYALTY_ERR_INPUT, "malformed received: ERR_INPUT");
    }

    /*
     * Not tested here: 19 digits above INT64_MAX ("9223372036854775808",
     * "9999999999999999999") overflow int64_t inside the decoder, which
     * the sanitized build aborts on (reported to the lead).
     */

    memcpy(pairs, base, sizeof(base));
    pairs[11] = "0009223372036854775";
    rc = decode_pairs(pairs, 14, &ev, &err);
    is_int(rc, LOYALTY_OK, "decode: received with leading zeros");
    ok(ev.received == 9223372036854775LL, "leading zeros: value");
}


static void
test_decode_lenient(void)
{
    int              rc;
    loyalty_err_t    err;
    loyalty_event_t  ev;

    static const char  *unknown[] = {
        "v", "1", "x-future", "anything", "id", "e1", "src", "generic",
        "store", "us", "type", "order.paid", "priority", "high",
        "data", "{\"a\":1}"
    };

    /* fields in another order than encode writes them */
    static const char  *shuffled[] = {
        "data", "{}", "type", "order.paid", "store", "us", "src", "shopify",
        "id", "e2", "v", "1", "email", "a@b.co"
    };

    rc = decode_pairs(unknown, 16, &ev, &err);
    is_int(rc, LOYALTY_OK, "decode: unknown fields ignored");
    lt_str_is(&ev.type, "order.paid", "unknown fields: type intact");
    lt_str_is(&ev.data, "{\"a\":1}", "unknown fields: data intact");
    is_int(ev.received, 0, "decode: received absent is 0");

    rc = decode_pairs(shuffled, 14, &ev, &err);
    is_int(rc, LOYALTY_OK, "decode: any field order");
    lt_str_is(&ev.src, "shopify", "any order: src");
    lt_str_is(&ev.email, "a@b.co", "any order: email");
}


static void
test_canonical(void)
{
    size_t         i;
    const char    *t;
    loyalty_str_t  s;

    static const char  *others[] = {
        "unknown", "", "customer", "customer.", "customer.update",
        "customer.updatedx", "Customer.updated", "CUSTOMER.UPDATED",
        " customer.updated", "customer.updated ", "orders/paid",
        "contact.created", "order.fulfilled", "points.spent",
        NULL
    };

    for (i = 0; canonical[i] != NULL; i++) {
        s = lt_str(canonical[i]);
        t = loyalty_canonical_type(&s);
        if (!is_str(t, canonical[i], "canonical type maps to itself")) {
            diag("  type %s", canonical[i]);
        }
    }

    is_int(i, 17, "design.md lists 17 canonical types");

    for (i = 0; others[i] != NULL; i++) {
        s = lt_str(others[i]);
        t = loyalty_canonical_type(&s);
        if (!is_str(t, "unknown", "non-canonical topic maps to unknown")) {
            diag("  topic \"%s\"", others[i]);
        }
    }

    /* the length bounds the comparison, not a terminating NUL */
    s.data = (const u_char *) "order.paidXYZ";
    s.len = sizeof("order.paid") - 1;
    is_str(loyalty_canonical_type(&s), "order.paid",
           "canonical type: length-bounded input");

    s.data = (const u_char *) "order.paid";
    s.len = 5;
    is_str(loyalty_canonical_type(&s), "unknown",
           "canonical type: prefix of a type is unknown");

    s.data = NULL;
    s.len = 0;
    is_str(loyalty_canonical_type(&s), "unknown",
           "canonical type: empty topic is unknown");
}


static void
test_store(void)
{
    char  buf[80];

    memset(buf, 'a', sizeof(buf));

    ok(loyalty_store_valid((u_char *) "eu", 2), "store: eu");
    ok(loyalty_store_valid((u_char *) "EU-1.shop_x", 11),
       "store: letters, digits, dot, underscore, dash");
    ok(loyalty_store_valid((u_char *) "0", 1), "store: one digit");
    ok(loyalty_store_valid((u_char *) buf, 64), "store: 64 characters");
    ok(!loyalty_store_valid((u_char *) buf, 65), "store: 65 rejected");
    ok(!loyalty_store_valid((u_char *) "", 0), "store: empty rejected");
    ok(!loyalty_store_valid(NULL, 0), "store: NULL empty rejected");
    ok(!loyalty_store_valid((u_char *) "eu:x", 4), "store: colon rejected");
    ok(!loyalty_store_valid((u_char *) "{eu}", 4), "store: braces rejected");
    ok(!loyalty_store_valid((u_char *) "e u", 3), "store: space rejected");
    ok(!loyalty_store_valid((u_char *) "eu/x", 4), "store: slash rejected");
    ok(!loyalty_store_valid((u_char *) "eu*", 3), "store: star rejected");
    ok(!loyalty_store_valid((u_char *) "m\xc3\xbcnchen", 8),
       "store: UTF-8 rejected");
    ok(!loyalty_store_valid((u_char *) "eu\0x", 4),
       "store: NUL inside rejected");
    ok(!loyalty_store_valid((u_char *) "eu\n", 3),
       "store: newline rejected");
    ok(loyalty_store_valid((u_char *) "eu:x", 2),
       "store: only len bytes are checked");
}


static void
test_event_id(void)
{
    int     c;
    size_t  n;
    char    buf[256];

    n = 0;

    for (c = 0x21; c < 0x7f; c++) {
        buf[n++] = (char) c;
    }

    ok(loyalty_event_id_valid((u_char *) buf, n),
       "event id: every printable ASCII character but space");

    memset(buf, 'x', sizeof(buf));

    ok(loyalty_event_id_valid((u_char *) buf, 200), "event id: 200 bytes");
    ok(!loyalty_event_id_valid((u_char *) buf, 201),
       "event id: 201 bytes rejected");
    ok(loyalty_event_id_valid((u_char *) "1", 1), "event id: one byte");
    ok(!loyalty_event_id_valid((u_char *) "", 0), "event id: empty rejected");
    ok(!loyalty_event_id_valid((u_char *) "msg 1", 5),
       "event id: space rejected");
    ok(!loyalty_event_id_valid((u_char *) "msg\t1", 5),
       "event id: tab rejected");
    ok(!loyalty_event_id_valid((u_char *) "msg\r\n", 5),
       "event id: CR LF rejected");
    ok(!loyalty_event_id_valid((u_char *) "msg\0" "1", 5),
       "event id: NUL rejected");
    ok(!loyalty_event_id_valid((u_char *) "msg\x7f", 4),
       "event id: DEL rejected");
    ok(!loyalty_event_id_valid((u_char *) "msg\x1b", 4),
       "event id: ESC rejected");
    ok(!loyalty_event_id_valid((u_char *) "caf\xc3\xa9", 5),
       "event id: UTF-8 rejected");
    ok(!loyalty_event_id_valid((u_char *) "\xff", 1),
       "event id: 0xff rejected");
}


static void
test_corr(void)
{
    size_t       i;
    char         buf[200];
    const char  *p;

    static const char  *good[] = {
        "550e8400-e29b-41d4-a716-446655440000",
        "req_1.2:3/4+5=",
        "ABCxyz019",
        "a",
        NULL
    };

    static const char  *bad[] = {
        "", "a b", "a@b", "a#b", "a%20", "a{b}", "a,b", "a;b", "a\"b",
        "a\tb", "a\nb", "caf\xc3\xa9", "a\\b", "a?b", "a*b",
        NULL
    };

    for (i = 0; good[i] != NULL; i++) {
        p = good[i];
        if (!ok(loyalty_corr_valid((u_char *) p, strlen(p)), "corr valid")) {
            diag("  corr \"%s\"", p);
        }
    }

    for (i = 0; bad[i] != NULL; i++) {
        p = bad[i];
        if (!ok(!loyalty_corr_valid((u_char *) p, strlen(p)),
                "corr rejected"))
        {
            diag("  corr \"%s\"", p);
        }
    }

    memset(buf, '7', sizeof(buf));

    ok(loyalty_corr_valid((u_char *) buf, 128), "corr: 128 bytes");
    ok(!loyalty_corr_valid((u_char *) buf, 129), "corr: 129 bytes rejected");
    ok(!loyalty_corr_valid((u_char *) "ab\0c", 4), "corr: NUL rejected");
}


static void
test_rfc3339(void)
{
    size_t   n;
    char    *buf;

    /* exactly the documented 21 bytes, so ASan sees any overrun */
    buf = malloc(21);
    if (buf == NULL) {
        diag("out of memory");
        exit(2);
    }

    n = loyalty_rfc3339(0, buf);
    is_int(n, 20, "rfc3339(0): length");
    is_str(buf, "1970-01-01T00:00:00Z", "rfc3339(0)");

    n = loyalty_rfc3339(1614265330, buf);
    is_int(n, 20, "rfc3339(1614265330): length");
    is_str(buf, "2021-02-25T15:02:10Z", "rfc3339(1614265330)");

    n = loyalty_rfc3339(1709210096, buf);
    is_int(n, 20, "rfc3339 leap day: length");
    is_str(buf, "2024-02-29T12:34:56Z", "rfc3339: 2024-02-29 (leap year)");

    n = loyalty_rfc3339(951868799, buf);
    is_str(buf, "2000-02-29T23:59:59Z", "rfc3339: 2000-02-29 (leap century)");

    n = loyalty_rfc3339(951868800, buf);
    is_str(buf, "2000-03-01T00:00:00Z", "rfc3339: day after 2000-02-29");

    n = loyalty_rfc3339(1700000000, buf);
    is_str(buf, "2023-11-14T22:13:20Z", "rfc3339(1700000000)");

    n = loyalty_rfc3339(253402300799LL, buf);
    is_int(n, 20, "rfc3339: 9999-12-31T23:59:59Z fits");
    is_str(buf, "9999-12-31T23:59:59Z", "rfc3339: last 4-digit year");

    /* year 10000 needs 21 characters: refused rather than overrun */
    n = loyalty_rfc3339(253402300800LL, buf);
    is_int(n, 0, "rfc3339: year 10000 does not fit, returns 0");

    free(buf);
}


int
main(void)
{
    test_encode_full();
    test_encode_min();
    test_roundtrip();
    test_decode_reject();
    test_decode_lenient();
    test_canonical();
    test_store();
    test_event_id();
    test_corr();
    test_rfc3339();

    return done_testing();
}
