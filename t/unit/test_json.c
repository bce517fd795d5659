/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_json: one value per buffer, strict rejection of everything
 * else, compact dumps that keep number text, scalar extraction.
 *
 * check_ok() tests pin fixes of core bugs found while writing them.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_json.h"
#include "loyalty_test.h"


static int parse(const char *text, size_t len, json_object **obj,
    loyalty_err_t *err);
static int dump_is(const char *in, const char *exp, const char *name);
static void test_accept(void);
static void test_reject(void);
static void test_depth(void);
static void test_utf8(void);
static void test_numbers(void);
static void test_lax_numbers(void);
static void kept_or_declined(const char *in, const char *name);
static void test_dump(void);
static void test_scalar(void);
static void test_object(void);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


/* len (size_t) -1: strlen(text) */

static int
parse(const char *text, size_t len, json_object **obj, loyalty_err_t *err)
{
    loyalty_str_t  t;

    t.data = (const u_char *) text;
    t.len = (len == (size_t) -1) ? strlen(text) : len;

    memset(err, 0, sizeof(loyalty_err_t));
    *obj = (json_object *) &t;          /* must be overwritten */

    return loyalty_json_parse(&t, obj, err);
}


static int
dump_is(const char *in, const char *exp, const char *name)
{
    int             rc, pass;
    json_object    *obj;
    loyalty_err_t   err;
    loyalty_str_t   out;

    rc = parse(in, (size_t) -1, &obj, &err);
    if (rc != LOYALTY_OK) {
        ok(0, "%s", name);
        diag("  parse failed: %s", err.msg);
        return 0;
    }

    out.len = 0;
    out.data = NULL;

    rc = loyalty_json_dump(obj, &alloc, &out);
    json_object_put(obj);

    if (rc != LOYALTY_OK) {
        ok(0, "%s", name);
        diag("  dump failed");
        return 0;
    }

    pass = is_mem(out.data, out.len, exp, strlen(exp), name);

    if (out.data[out.len] != '\0') {
        ok(0, "%s: dump is NUL-terminated", name);
    }

    return pass;
}


static void
test_accept(void)
{
    int             rc;
    size_t          i;
    json_object    *obj;
    loyalty_err_t   err;

    static const struct {
        const char      *text;
        enum json_type   type;
    } good[] = {
        { "{}", json_type_object },
        { "[]", json_type_array },
        { "\"x\"", json_type_string },
        { " \t\r\n{\"a\":1} \t\r\n", json_type_object },
        { "\n[1, 2, {\"b\": null}]\n", json_type_array },
        { " 1 ", json_type_int },
        { " 1.5\n", json_type_double },
        { " true ", json_type_boolean },
        { "\"\"", json_type_string },
        { NULL, 0 }
    };

    for (i = 0; good[i].text != NULL; i++) {
        rc = parse(good[i].text, (size_t) -1, &obj, &err);

        if (!is_int(rc, LOYALTY_OK, "parse accepts one value")) {
            diag("  input %s: %s", good[i].text, err.msg);
            continue;
        }

        if (!ok(json_object_is_type(obj, good[i].type),
                       "parse: value has the expected type"))
        {
            diag("  input %s", good[i].text);
        }

        json_object_put(obj);
    }

    /*
     * A top-level null is refused: json-c represents it as a NULL object,
     * which *out cannot tell from a failure.  The message is json-c's
     * "success", though.
     */
    rc = parse(" null ", (size_t) -1, &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "parse: top-level null declined");
    is_int(err.code, LOYALTY_ERR_JSON, "top-level null: ERR_JSON");
    check_ok(strstr(err.msg, "success") == NULL, "message for null",
            "top-level null: message is not json-c's success (got \"%s\")",
            err.msg);

    /*
     * json-c leniencies that STRICT does not cover, pinned: the dump is
     * valid JSON again, so nothing invalid reaches the stream.
     */
    dump_is("{'a':1}", "{\"a\":1}",
            "lenient: single-quoted key accepted, dumped double-quoted");
    dump_is("{\"a\":\"tab\there\nx\x01\"}",
            "{\"a\":\"tab\\there\\nx\\u0001\"}",
            "lenient: raw control characters accepted, dumped escaped");

    /* the length bounds the input: bytes after it are never read */
    rc = parse("{\"a\":1}GARBAGE", 7, &obj, &err);
    is_int(rc, LOYALTY_OK, "parse: length-bounded buffer");
    json_object_put(obj);

    /*
     * A bare scalar that ends the buffer: json-c cannot tell whether more
     * digits or letters follow and returns json_tokener_continue, which
     * loyalty_json_parse reports as "truncated JSON".  RFC 8259 makes
     * "1", "true" and "null" complete JSON texts.
     */
    rc = parse("1", (size_t) -1, &obj, &err);
    check_ok(rc == LOYALTY_OK, "bare scalar at end of buffer",
            "parse: \"1\" is one value (got \"%s\")", err.msg);
    if (rc == LOYALTY_OK) {
        json_object_put(obj);
    }

    rc = parse("12.10", (size_t) -1, &obj, &err);
    check_ok(rc == LOYALTY_OK, "bare scalar at end of buffer",
            "parse: \"12.10\" is one value (got \"%s\")", err.msg);
    if (rc == LOYALTY_OK) {
        json_object_put(obj);
    }

    rc = parse("true", (size_t) -1, &obj, &err);
    check_ok(rc == LOYALTY_OK, "bare scalar at end of buffer",
            "parse: \"true\" is one value (got \"%s\")", err.msg);
    if (rc == LOYALTY_OK) {
        json_object_put(obj);
    }
}


static void
test_reject(void)
{
    int             rc;
    size_t          i;
    json_object    *obj;
    loyalty_err_t   err;

    static const char  *bad[] = {
        "   ",                              /* white space only */
        "{} {}",
        "{}x",
        "{}{}",
        "[1] [2]",
        "\"a\" \"b\"",
        " 1 2 ",
        "{",
        "{\"a\":",
        "{\"a\":1",
        "{\"a\":1,",
        "[1,2",
        "\"abc",
        "{\"a\":tru",
        "[1,]",
        "{\"a\":1,}",
        "{\"a\":'x'}",
        "{a:1}",
        "{\"a\":01}",
        "{\"a\":.5}",
        "{\"a\":+1}",
        "{\"a\":0x10}",
        "{\"a\":1e}",
        "{\"a\":\"\\x41\"}",
        "/* c */ {}",
        "{} // c",
        "\xef\xbb\xbf{}",                   /* byte order mark */
        "\f{}",                             /* not JSON white space */
        "{}\v",
        "]",
        "}",
        NULL
    };

    /* empty */
    rc = parse("", 0, &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "parse: empty declined");
    is_int(err.code, LOYALTY_ERR_JSON, "empty: ERR_JSON");
    ok(obj == NULL, "empty: *out is NULL");

    for (i = 0; bad[i] != NULL; i++) {
        rc = parse(bad[i], (size_t) -1, &obj, &err);

        if (!is_int(rc, LOYALTY_DECLINED, "parse declines malformed JSON")) {
            diag("  input \"%s\"", bad[i]);
            json_object_put(obj);
            continue;
        }

        if (!is_int(err.code, LOYALTY_ERR_JSON, "malformed: ERR_JSON")) {
            diag("  input \"%s\"", bad[i]);
        }

        ok(obj == NULL && err.msg[0] != '\0',
           "malformed: *out NULL and a message (%s)", err.msg);
    }

    /* truncated documents say so */
    rc = parse("{\"a\":[1,2", (size_t) -1, &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "parse: truncated declined");
    is_str(err.msg, "truncated JSON", "truncated: message");

    /* trailing garbage after a complete value */
    rc = parse("{} {}", (size_t) -1, &obj, &err);
    ok(rc == LOYALTY_DECLINED && strstr(err.msg, "offset 3") != NULL,
       "trailing value: offset of the garbage (%s)", err.msg);

    /* NUL bytes: inside a string, after the value, at the start */
    rc = parse("{\"a\":\"b\0c\"}", 11, &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "parse: raw NUL inside a string");
    is_int(err.code, LOYALTY_ERR_JSON, "raw NUL: ERR_JSON");

    rc = parse("{}\0", 3, &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "parse: NUL after the value");

    rc = parse("\0{}", 3, &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "parse: NUL before the value");

    rc = parse("{} \0 ", 5, &obj, &err);
    ok(rc == LOYALTY_DECLINED && obj == NULL,
       "parse: NUL between trailing spaces");
}


static void
test_depth(void)
{
    int             rc;
    size_t          n, d;
    char            buf[1024];
    json_object    *obj;
    loyalty_err_t   err;

    /* LOYALTY_JSON_MAX_DEPTH nested arrays parse, one more does not */
    for (d = 63; d <= 66; d++) {
        n = 0;
        memset(buf, '[', d);
        n += d;
        memset(buf + n, ']', d);
        n += d;

        rc = parse(buf, n, &obj, &err);

        if (d <= LOYALTY_JSON_MAX_DEPTH) {
            if (!is_int(rc, LOYALTY_OK, "depth: nested arrays within limit")) {
                diag("  depth %zu: %s", d, err.msg);
            }
            json_object_put(obj);

        } else {
            if (!is_int(rc, LOYALTY_DECLINED, "depth: too deep declined")) {
                diag("  depth %zu", d);
                json_object_put(obj);
            }
            is_int(err.code, LOYALTY_ERR_JSON, "too deep: ERR_JSON");
        }
    }

    /*
     * json-c counts the innermost scalar as a level: 63 objects around
     * a number are the deepest such document.
     */
    for (d = 63; d <= 64; d++) {
        size_t  i;

        n = 0;
        for (i = 0; i < d; i++) {
            memcpy(buf + n, "{\"a\":", 5);
            n += 5;
        }
        buf[n++] = '1';
        memset(buf + n, '}', d);
        n += d;

        rc = parse(buf, n, &obj, &err);

        if (d == 63) {
            is_int(rc, LOYALTY_OK, "depth: 63 objects around a number");
            json_object_put(obj);

        } else {
            is_int(rc, LOYALTY_DECLINED, "depth: 64 objects around a number");
            json_object_put(obj);
        }
    }

    /* much deeper: no recursion blow-up, just a refusal */
    memset(buf, '[', sizeof(buf));
    rc = parse(buf, sizeof(buf), &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "depth: 1024 open brackets declined");
}


/*
 * Invalid UTF-8 is refused (JSON_TOKENER_VALIDATE_UTF8): the stream and
 * every destination downstream get valid text only.
 */

static void
test_utf8(void)
{
    int             rc;
    json_object    *obj;
    loyalty_err_t   err;

    rc = parse("{\"a\":\"\xff\xfe\"}", (size_t) -1, &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "utf8: 0xff 0xfe declined");
    is_int(err.code, LOYALTY_ERR_JSON, "utf8: 0xff 0xfe is bad JSON");

    rc = parse("{\"a\":\"\xc3\x28\"}", (size_t) -1, &obj, &err);
    is_int(rc, LOYALTY_DECLINED, "utf8: bad continuation byte declined");

    rc = parse("{\"a\":\"\xed\xa0\x80\"}", (size_t) -1, &obj, &err);
    is_int(rc, LOYALTY_OK, "utf8: json-c accepts an encoded surrogate");
    json_object_put(obj);

    /* valid UTF-8 and escapes */
    dump_is("{\"a\":\"M\xc3\xbcnchen \xe2\x82\xac\"}",
            "{\"a\":\"M\xc3\xbcnchen \xe2\x82\xac\"}",
            "utf8: valid multibyte text dumped unescaped");

    dump_is("{\"a\":\"\\u00fc\"}", "{\"a\":\"\xc3\xbc\"}",
            "utf8: \\u00fc decoded to UTF-8");

    dump_is("{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":\"\xf0\x9f\x98\x80\"}",
            "utf8: surrogate pair decoded to one code point");

    /* a lone surrogate escape becomes U+FFFD (json-c) */
    dump_is("{\"a\":\"\\ud800\"}", "{\"a\":\"\xef\xbf\xbd\"}",
            "utf8: lone surrogate escape becomes U+FFFD");
}


static void
test_numbers(void)
{
    /* integers json-c stores as int64 or uint64, doubles as their text */
    dump_is("{\"a\":12.10}", "{\"a\":12.10}", "number: 12.10 keeps its zero");
    dump_is("{\"a\":0.10}", "{\"a\":0.10}", "number: 0.10");
    dump_is("{\"a\":18446744073709551615}", "{\"a\":18446744073709551615}",
            "number: UINT64_MAX");
    dump_is("{\"a\":9223372036854775807}", "{\"a\":9223372036854775807}",
            "number: INT64_MAX");
    dump_is("{\"a\":9223372036854775808}", "{\"a\":9223372036854775808}",
            "number: INT64_MAX + 1");
    dump_is("{\"a\":-9223372036854775808}", "{\"a\":-9223372036854775808}",
            "number: INT64_MIN");
    dump_is("{\"a\":820982911946154508}", "{\"a\":820982911946154508}",
            "number: a Shopify id, not rounded to a double");
    dump_is("{\"a\":1e400}", "{\"a\":1e400}", "number: 1e400 (overflows)");
    dump_is("{\"a\":1E2}", "{\"a\":1E2}", "number: 1E2 keeps its case");
    dump_is("{\"a\":-1.5e-3}", "{\"a\":-1.5e-3}", "number: -1.5e-3");
    dump_is("{\"a\":1.0e+00}", "{\"a\":1.0e+00}", "number: 1.0e+00");
    dump_is("{\"a\":0.1000000000000000055511151231257827}",
            "{\"a\":0.1000000000000000055511151231257827}",
            "number: long fraction");
    dump_is("[12.10, 1e400, 18446744073709551615]",
            "[12.10,1e400,18446744073709551615]",
            "number: text kept inside arrays");
    dump_is("{\"a\":-0.0}", "{\"a\":-0.0}", "number: -0.0");

    /*
     * Integers outside int64/uint64: json-c saturates them, so the text
     * changes silently (an id or amount becomes another number); "-0"
     * becomes "0".  Keeping the text or declining would both do.
     */
    kept_or_declined("{\"a\":18446744073709551616}",
                     "number: UINT64_MAX + 1 not saturated");
    kept_or_declined("{\"a\":99999999999999999999}",
                     "number: 20 nines not saturated");
    kept_or_declined("{\"a\":-9223372036854775809}",
                     "number: INT64_MIN - 1 not saturated");
    /* json-c writes -0 as 0: the same number, nothing else changes */
    dump_is("{\"a\":-0}", "{\"a\":0}", "number: -0 dumped as 0");
}


/*
 * json-c accepts tokens that are not JSON even with JSON_TOKENER_STRICT;
 * they would reach the stream inside data, where a strict reader fails.
 */

static void
test_lax_numbers(void)
{
    int             rc;
    size_t          i;
    json_object    *obj;
    loyalty_err_t   err;

    static const char  *lax[] = {
        "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}",
        "{\"a\":1.}", "{\"a\":-1.}", "{\"a\":1.e5}",
        NULL
    };

    for (i = 0; lax[i] != NULL; i++) {
        rc = parse(lax[i], (size_t) -1, &obj, &err);
        check_ok(rc == LOYALTY_DECLINED, "json-c accepts non-JSON numbers",
                "parse declines %s", lax[i]);
        if (rc == LOYALTY_OK) {
            json_object_put(obj);
        }
    }
}


static void
kept_or_declined(const char *in, const char *name)
{
    int             rc;
    json_object    *obj;
    loyalty_err_t   err;
    loyalty_str_t   out;

    rc = parse(in, (size_t) -1, &obj, &err);

    if (rc != LOYALTY_OK) {
        check_ok(1, "json-c saturates integers", "%s (declined)", name);
        return;
    }

    rc = loyalty_json_dump(obj, &alloc, &out);
    json_object_put(obj);

    check_ok(rc == LOYALTY_OK && out.len == strlen(in)
            && memcmp(out.data, in, out.len) == 0,
            "json-c saturates integers", "%s (got %s)", name,
            rc == LOYALTY_OK ? (const char *) out.data : "dump failed");
}


static void
test_dump(void)
{
    dump_is("{ \"a\" : [ 1 , 2 ] ,\n \"b\" : \"x/y\" }",
            "{\"a\":[1,2],\"b\":\"x/y\"}",
            "dump: compact, slashes not escaped");
    dump_is("{\"z\":1,\"a\":2,\"m\":3}", "{\"z\":1,\"a\":2,\"m\":3}",
            "dump: member order kept");
    dump_is("{\"a\":\"l1\\nl2\\t\\\"q\\\"\\\\\"}",
            "{\"a\":\"l1\\nl2\\t\\\"q\\\"\\\\\"}",
            "dump: control characters, quotes, backslash escaped");
    dump_is("{\"a\":\"x\\u0000y\"}", "{\"a\":\"x\\u0000y\"}",
            "dump: escaped NUL stays escaped");
    dump_is("{\"a\":true,\"b\":false,\"c\":null,\"d\":{},\"e\":[]}",
            "{\"a\":true,\"b\":false,\"c\":null,\"d\":{},\"e\":[]}",
            "dump: literals and empty containers");
    dump_is("\"only\"", "\"only\"", "dump: a string value");
}


static void
test_scalar(void)
{
    int             rc;
    json_object    *obj;
    loyalty_err_t   err;
    loyalty_str_t   v;

    static const char  *declined[] = {
        "obj", "arr", "nul", "t", "f", "empty", "missing", NULL
    };

    rc = parse("{\"s\":\"hello\",\"i\":42,\"neg\":-7,\"d\":12.10,"
               "\"big\":18446744073709551615,\"e\":1e400,"
               "\"nulbyte\":\"a\\u0000b\",\"obj\":{\"x\":1},\"arr\":[1],"
               "\"nul\":null,\"t\":true,\"f\":false,\"empty\":\"\","
               "\"zero\":0}", (size_t) -1, &obj, &err);

    if (!is_int(rc, LOYALTY_OK, "scalar: fixture parses")) {
        diag("  %s", err.msg);
        return;
    }

#define scalar_is(key, exp, elen, name)                                      \
    v.data = NULL; v.len = 0;                                                \
    rc = loyalty_json_scalar(obj, key, &v);                                  \
    is_int(rc, LOYALTY_OK, name ": found");                                  \
    if (rc == LOYALTY_OK) {                                                  \
        is_mem(v.data, v.len, exp, elen, name ": value");                    \
    }

    scalar_is("s", "hello", 5, "scalar: string");
    scalar_is("i", "42", 2, "scalar: integer text");
    scalar_is("neg", "-7", 2, "scalar: negative integer text");
    scalar_is("d", "12.10", 5, "scalar: double keeps its text");
    scalar_is("big", "18446744073709551615", 20, "scalar: UINT64_MAX text");
    scalar_is("e", "1e400", 5, "scalar: 1e400 text");
    scalar_is("nulbyte", "a\0b", 3, "scalar: string length covers NUL");
    scalar_is("zero", "0", 1, "scalar: zero is a value");

#undef scalar_is

    for (size_t i = 0; declined[i] != NULL; i++) {
        rc = loyalty_json_scalar(obj, declined[i], &v);
        if (!is_int(rc, LOYALTY_DECLINED, "scalar declines non-scalars")) {
            diag("  key %s", declined[i]);
        }
    }

    rc = loyalty_json_scalar(NULL, "s", &v);
    is_int(rc, LOYALTY_DECLINED, "scalar: NULL object declined");

    rc = loyalty_json_scalar(json_object_object_get(obj, "arr"), "s", &v);
    is_int(rc, LOYALTY_DECLINED, "scalar: an array is not an object");

    rc = loyalty_json_scalar(obj, "S", &v);
    is_int(rc, LOYALTY_DECLINED, "scalar: keys are case-sensitive");

    json_object_put(obj);
}


static void
test_object(void)
{
    int             rc;
    json_object    *obj, *o;
    loyalty_err_t   err;

    rc = parse("{\"o\":{\"x\":1},\"a\":[],\"s\":\"x\",\"n\":null}",
               (size_t) -1, &obj, &err);
    is_int(rc, LOYALTY_OK, "object: fixture parses");

    o = loyalty_json_object(obj, "o");
    ok(o != NULL && json_object_is_type(o, json_type_object),
       "object: member object returned");
    ok(loyalty_json_object(obj, "a") == NULL, "object: array member is NULL");
    ok(loyalty_json_object(obj, "s") == NULL, "object: string member is NULL");
    ok(loyalty_json_object(obj, "n") == NULL, "object: null member is NULL");
    ok(loyalty_json_object(obj, "none") == NULL, "object: missing is NULL");
    ok(loyalty_json_object(NULL, "o") == NULL, "object: NULL parent is NULL");

    json_object_put(obj);
}


int
main(void)
{
    test_accept();
    test_reject();
    test_depth();
    test_utf8();
    test_numbers();
    test_lax_numbers();
    test_dump();
    test_scalar();
    test_object();

    lt_arena_free(&arena);

    return done_testing();
}
