/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_json: exactly one RFC 8259 value per buffer and strict
 * rejection of everything else, a tree in the caller's allocator,
 * compact dumps that keep number text and member order, member lookup,
 * scalar and int64 extraction, and clean failure when the allocator
 * runs dry.
 *
 * check_ok() tests pin fixes of core bugs found while writing them.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "loyalty_json.h"
#include "loyalty_test.h"


#define B(s)  { s, sizeof(s) - 1 }


typedef struct {
    const char  *text;
    size_t       len;
} bytes_t;


static int parse(const char *text, size_t len, loyalty_json_t **v,
    loyalty_err_t *err);
static int tree_ok(const loyalty_json_t *v, const loyalty_json_t *parent,
    size_t depth, const char **why);
static int utf8_ok(const u_char *p, size_t len);
static int dump_to(const loyalty_json_t *v, loyalty_str_t *out,
    const char *name);
static int dump_is(const char *in, const char *exp, const char *name);
static int dump_is_any(const char *in, const char *exp1, const char *exp2,
    const char *name);
static void declined(const char *text, size_t len, const char *name);
static void test_accept(void);
static void test_reject(void);
static void test_depth(void);
static void test_utf8(void);
static void test_numbers(void);
static void test_dump(void);
static void test_get(void);
static void test_scalar(void);
static void test_object(void);
static void test_int64(void);
static void test_large(void);
static void test_nomem(void);
static void nomem_parse(const char *in, const char *exp);
static void nomem_dump(const char *in);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };

/* what parse() leaves in *out before the call: must be overwritten */
static loyalty_json_t   sentinel;


/* len (size_t) -1: strlen(text) */

static int
parse(const char *text, size_t len, loyalty_json_t **v, loyalty_err_t *err)
{
    loyalty_str_t  t;

    t.data = (const u_char *) text;
    t.len = (len == (size_t) -1) ? strlen(text) : len;

    memset(err, 0, sizeof(loyalty_err_t));
    *v = &sentinel;

    return loyalty_json_parse(&t, &alloc, v, err);
}


/*
 * The tree is well formed: links, counts, parents, keys inside objects
 * only, no children under scalars, number text present.
 */

static int
tree_ok(const loyalty_json_t *v, const loyalty_json_t *parent, size_t depth,
    const char **why)
{
    size_t                 n;
    const loyalty_json_t  *c, *last;

    if (v == NULL || v == &sentinel) {
        *why = "NULL node";
        return 0;
    }

    if (v->parent != parent) {
        *why = "wrong parent";
        return 0;
    }

    if (depth > LOYALTY_JSON_MAX_DEPTH + 1) {
        *why = "deeper than the limit";
        return 0;
    }

    if (parent != NULL && parent->type == LOYALTY_JSON_OBJECT) {
        if (v->key.len && v->key.data == NULL) {
            *why = "member key without data";
            return 0;
        }
    }

    switch (v->type) {

    case LOYALTY_JSON_ARRAY:
    case LOYALTY_JSON_OBJECT:
        n = 0;
        last = NULL;

        for (c = v->child; c != NULL; c = c->next) {
            if (!tree_ok(c, v, depth + 1, why)) {
                return 0;
            }

            last = c;
            n++;

            if (n > v->n) {
                *why = "more children than n";
                return 0;
            }
        }

        if (n != v->n) {
            *why = "n is not the number of children";
            return 0;
        }

        if (v->last != last) {
            *why = "last is not the last child";
            return 0;
        }

        return 1;

    case LOYALTY_JSON_NUMBER:
        if (v->text.len == 0 || v->text.data == NULL) {
            *why = "number without text";
            return 0;
        }

        /* fall through */

    case LOYALTY_JSON_STRING:
        if (v->text.len && v->text.data == NULL) {
            *why = "string without data";
            return 0;
        }

        /* fall through */

    case LOYALTY_JSON_NULL:
    case LOYALTY_JSON_TRUE:
    case LOYALTY_JSON_FALSE:
        if (v->child != NULL || v->last != NULL || v->n != 0) {
            *why = "children under a scalar";
            return 0;
        }

        return 1;
    }

    *why = "unknown type";

    return 0;
}


/* RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF */

static int
utf8_ok(const u_char *p, size_t len)
{
    size_t    i, k, n;
    uint32_t  c, min;

    for (i = 0; i < len; /* void */) {
        c = p[i];

        if (c < 0x80) {
            i++;
            continue;
        }

        if (c >= 0xc2 && c <= 0xdf) {
            n = 1; c &= 0x1f; min = 0x80;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2; c &= 0x0f; min = 0x800;

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3; c &= 0x07; min = 0x10000;

        } else {
            return 0;
        }

        if (i + n >= len) {
            return 0;           /* cut short */
        }

        for (k = 1; k <= n; k++) {
            if ((p[i + k] & 0xc0) != 0x80) {
                return 0;
            }
            c = (c << 6) | (p[i + k] & 0x3f);
        }

        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return 0;
        }

        i += n + 1;
    }

    return 1;
}


static int
dump_to(const loyalty_json_t *v, loyalty_str_t *out, const char *name)
{
    int  rc;

    out->len = 0;
    out->data = NULL;

    rc = loyalty_json_dump(v, &alloc, out);

    if (rc != LOYALTY_OK) {
        ok(0, "%s", name);
        diag("  dump failed: %d", rc);
        return 0;
    }

    if (out->data == NULL) {
        ok(0, "%s", name);
        diag("  dump returned no data");
        return 0;
    }

    if (out->data[out->len] != '\0') {
        ok(0, "%s: dump is NUL-terminated", name);
    }

    if (!utf8_ok(out->data, out->len)) {
        ok(0, "%s: dump is valid UTF-8", name);
        tap_diag_hex("  dump", out->data, out->len);
    }

    return 1;
}


static int
dump_is(const char *in, const char *exp, const char *name)
{
    return dump_is_any(in, exp, NULL, name);
}


/* the dump of in is exp1, or exp2 where either form is right */

static int
dump_is_any(const char *in, const char *exp1, const char *exp2,
    const char *name)
{
    int              rc;
    loyalty_err_t    err;
    loyalty_str_t    out;
    loyalty_json_t  *v;

    rc = parse(in, (size_t) -1, &v, &err);
    if (rc != LOYALTY_OK) {
        ok(0, "%s", name);
        diag("  parse failed (%d): %s", rc, err.msg);
        return 0;
    }

    if (!dump_to(v, &out, name)) {
        return 0;
    }

    if (exp2 != NULL && out.len == strlen(exp2)
        && memcmp(out.data, exp2, out.len) == 0)
    {
        return ok(1, "%s", name);
    }

    return is_mem(out.data, out.len, exp1, strlen(exp1), name);
}


/* bad JSON: DECLINED, ERR_JSON, a message, *out NULL */

static void
declined(const char *text, size_t len, const char *name)
{
    int              rc;
    loyalty_err_t    err;
    loyalty_json_t  *v;

    rc = parse(text, len, &v, &err);

    if (!ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON
            && err.msg[0] != '\0' && v == NULL,
            "%s: declined, ERR_JSON, message (%s)", name, err.msg))
    {
        diag("  rc %d, code %d, *out %s", rc, err.code,
             v == NULL ? "NULL" : (v == &sentinel ? "untouched" : "a tree"));
        tap_diag_hex("  input", text,
                     len == (size_t) -1 ? strlen(text) : len);
    }
}


static void
test_accept(void)
{
    int              rc;
    size_t           i;
    const char      *why;
    loyalty_err_t    err;
    loyalty_json_t  *v;

    static const struct {
        const char           *text;
        loyalty_json_type_e   type;
        const char           *scalar;     /* text of a number or string */
        size_t                n;
    } good[] = {
        { "{}", LOYALTY_JSON_OBJECT, NULL, 0 },
        { "[]", LOYALTY_JSON_ARRAY, NULL, 0 },
        { "\"x\"", LOYALTY_JSON_STRING, "x", 0 },
        { "\"\"", LOYALTY_JSON_STRING, "", 0 },
        { " \t\r\n{\"a\":1} \t\r\n", LOYALTY_JSON_OBJECT, NULL, 1 },
        { "\n[1, 2, {\"b\": null}]\n", LOYALTY_JSON_ARRAY, NULL, 3 },
        { "{\"a\":1,\"b\":[],\"c\":{}}", LOYALTY_JSON_OBJECT, NULL, 3 },
        { "1", LOYALTY_JSON_NUMBER, "1", 0 },
        { " 1 ", LOYALTY_JSON_NUMBER, "1", 0 },
        { "12.10", LOYALTY_JSON_NUMBER, "12.10", 0 },
        { " 1.5\n", LOYALTY_JSON_NUMBER, "1.5", 0 },
        { "-0", LOYALTY_JSON_NUMBER, "-0", 0 },
        { "0", LOYALTY_JSON_NUMBER, "0", 0 },
        { "true", LOYALTY_JSON_TRUE, NULL, 0 },
        { " true ", LOYALTY_JSON_TRUE, NULL, 0 },
        { "false", LOYALTY_JSON_FALSE, NULL, 0 },
        { "null", LOYALTY_JSON_NULL, NULL, 0 },
        { " null ", LOYALTY_JSON_NULL, NULL, 0 },
        { "\r\nnull\t", LOYALTY_JSON_NULL, NULL, 0 },
        { NULL, 0, NULL, 0 }
    };

    for (i = 0; good[i].text != NULL; i++) {
        rc = parse(good[i].text, (size_t) -1, &v, &err);

        if (!is_int(rc, LOYALTY_OK, "parse accepts one value")) {
            diag("  input '%s': %s", good[i].text, err.msg);
            continue;
        }

        if (!ok(v != NULL && v != &sentinel && v->type == good[i].type,
                "parse: '%s' has the expected type", good[i].text))
        {
            diag("  type %d, expected %d", v ? (int) v->type : -1,
                 (int) good[i].type);
            continue;
        }

        why = "";
        if (!ok(tree_ok(v, NULL, 1, &why), "parse: '%s' tree well formed",
                good[i].text))
        {
            diag("  %s", why);
        }

        ok(v->n == good[i].n && v->next == NULL,
           "parse: '%s' has %zu children, no sibling", good[i].text,
           good[i].n);

        if (good[i].scalar) {
            lt_str_is(&v->text, good[i].scalar, "parse: scalar text");
        }
    }

    /* top-level null is a value now (json-c could not tell it apart) */
    rc = parse("null", (size_t) -1, &v, &err);
    check_ok(rc == LOYALTY_OK && v != NULL && v != &sentinel
             && v->type == LOYALTY_JSON_NULL, "top-level null declined",
             "parse: top-level null is a LOYALTY_JSON_NULL node");

    /* bare scalars ending the buffer are complete JSON texts */
    rc = parse("1", (size_t) -1, &v, &err);
    check_ok(rc == LOYALTY_OK, "bare scalar at end of buffer",
             "parse: \"1\" is one value (%s)", err.msg);

    rc = parse("12.10", (size_t) -1, &v, &err);
    check_ok(rc == LOYALTY_OK, "bare scalar at end of buffer",
             "parse: \"12.10\" is one value (%s)", err.msg);

    rc = parse("true", (size_t) -1, &v, &err);
    check_ok(rc == LOYALTY_OK, "bare scalar at end of buffer",
             "parse: \"true\" is one value (%s)", err.msg);

    dump_is("12.10", "12.10", "dump: top-level number");
    dump_is(" null ", "null", "dump: top-level null");
    dump_is("true", "true", "dump: top-level true");
    dump_is("false ", "false", "dump: top-level false");

    /* the length bounds the input: bytes after it are never read */
    rc = parse("{\"a\":1}GARBAGE", 7, &v, &err);
    is_int(rc, LOYALTY_OK, "parse: length-bounded buffer");

    rc = parse("12345", 2, &v, &err);
    ok(rc == LOYALTY_OK && v && v != &sentinel
       && v->type == LOYALTY_JSON_NUMBER
       && is_mem(v->text.data, v->text.len, "12", 2,
                 "parse: length-bounded number text"),
       "parse: length-bounded bare number is \"12\"");

    rc = parse("truex", 4, &v, &err);
    is_int(rc, LOYALTY_OK, "parse: length-bounded bare literal");

    /* the input buffer may go away: the tree owns its text */
    {
        char           buf[64];
        loyalty_str_t  out;

        strcpy(buf, "{\"key\":\"value\",\"n\":12.5}");
        rc = parse(buf, (size_t) -1, &v, &err);
        memset(buf, 'X', sizeof(buf));

        if (is_int(rc, LOYALTY_OK, "parse: fixture for a reused buffer")
            && dump_to(v, &out, "dump after the input was overwritten"))
        {
            lt_str_is(&out, "{\"key\":\"value\",\"n\":12.5}",
                      "dump: the tree does not point into the input");
        }
    }
}


static void
test_reject(void)
{
    size_t  i;

    static const bytes_t  bad[] = {
        /* empty and white space only */
        B(""), B(" "), B("   "), B("\t\r\n"),

        /* more than one value, trailing garbage */
        B("{} {}"), B("{}x"), B("{}{}"), B("[1] [2]"), B("\"a\" \"b\""),
        B(" 1 2 "), B("1 2"), B("null null"), B("true false"), B("{},"),
        B("[]]"), B("{}}"), B("1x"), B("truex"), B("nullx"), B("\"a\"x"),

        /* truncated */
        B("{"), B("["), B("{\"a\":"), B("{\"a\":1"), B("{\"a\":1,"),
        B("{\"a\""), B("{\"a"), B("[1,2"), B("[1,"), B("\"abc"), B("\""),
        B("{\"a\":tru"), B("tru"), B("nul"), B("fals"), B("-"), B("1e"),
        B("1e+"), B("1E-"), B("\"\\u00"), B("\"\\u00fc"), B("\"\\"),
        B("[[[]]"),

        /* structure */
        B("[1,]"), B("{\"a\":1,}"), B("[,1]"), B("{,}"), B("[1 2]"),
        B("{\"a\" 1}"), B("{\"a\":1 \"b\":2}"), B("{a:1}"), B("{1:1}"),
        B("{null:1}"), B("{\"a\"}"), B("{\"a\":}"), B("]"), B("}"),
        B(":"), B(","), B("[:]"),

        /* numbers that are not JSON */
        B("NaN"), B("Infinity"), B("-Infinity"), B("+Infinity"),
        B("{\"a\":NaN}"), B("{\"a\":Infinity}"), B("{\"a\":-Infinity}"),
        B("[nan]"), B("[inf]"),
        B("1."), B("-1."), B("1.e5"), B("{\"a\":1.}"), B("{\"a\":-1.}"),
        B("{\"a\":1.e5}"), B("[1.]"),
        B("01"), B("-01"), B("00"), B("0123"), B("{\"a\":01}"),
        B("[01]"), B("[-00]"), B("1.5.5"),
        B(".5"), B("{\"a\":.5}"), B("+1"), B("{\"a\":+1}"), B("0x10"),
        B("{\"a\":0x10}"), B("{\"a\":1e}"), B("1e5.5"), B("--1"),
        B("- 1"), B("1 .5"),

        /* literals */
        B("True"), B("NULL"), B("nil"), B("undefined"), B("tRue"),

        /* single quotes */
        B("'x'"), B("{'a':1}"), B("{\"a\":'x'}"), B("['a']"),

        /* comments */
        B("/* c */ {}"), B("{} // c"), B("{}/**/"), B("[1,/*c*/2]"),
        B("// c\n{}"), B("# c\n{}"), B("{} # c"),

        /* strings */
        B("{\"a\":\"\\x41\"}"), B("\"\\a\""), B("\"\\'\""), B("\"\\u12\""),
        B("\"\\u12g4\""), B("\"\\U00fc\""),

        /* raw control characters inside strings */
        B("\"a\tb\""), B("\"a\nb\""), B("\"a\rb\""), B("\"\x01\""),
        B("\"\x1f\""), B("\"\b\""), B("\"\f\""),
        B("{\"a\":\"tab\there\"}"), B("{\"k\x01\":1}"),

        /* NUL bytes: anywhere */
        B("\0"), B("\0{}"), B("{}\0"), B("{} \0 "), B(" \0{}"),
        B("{\"a\":\"b\0c\"}"), B("{\"a\0\":1}"), B("[1,\0 2]"), B("1\0"),
        B("\"x\"\0"),

        /* byte order mark, white space JSON does not have */
        B("\xef\xbb\xbf{}"), B("\f{}"), B("{}\f"), B("\v{}"), B("{}\v"),
        B("[1,\f2]"), B("{\"a\":\v1}"), B("\xc2\xa0{}"), B("{}\xc2\xa0"),

        { NULL, 0 }
    };

    for (i = 0; bad[i].text != NULL; i++) {
        char  name[96];

        snprintf(name, sizeof(name), "reject #%zu (%zu bytes)", i, bad[i].len);
        declined(bad[i].text, bad[i].len, name);
    }

    /* old pins on the messages: truncation and the offset of garbage */
    {
        int              rc;
        loyalty_err_t    err;
        loyalty_json_t  *v;

        rc = parse("{\"a\":[1,2", (size_t) -1, &v, &err);
        ok(rc == LOYALTY_DECLINED && strstr(err.msg, "truncated") != NULL,
           "truncated: the message says so (%s)", err.msg);

        rc = parse("{} {}", (size_t) -1, &v, &err);
        /* yajl counts the garbage token it read into the offset */
        ok(rc == LOYALTY_DECLINED && strstr(err.msg, "trailing") != NULL,
           "trailing value: the message says so (%s)", err.msg);
    }
}


/*
 * LOYALTY_JSON_MAX_DEPTH counts containers, objects and arrays alike; a
 * scalar inside the innermost container is not a level.  So 64 nested
 * arrays parse and 65 do not, and 64 nested objects with a number in
 * the innermost parse and 65 do not.
 */

static void
test_depth(void)
{
    int              rc;
    char            *buf;
    size_t           n, d, i, bufsize;
    loyalty_err_t    err;
    loyalty_json_t  *v;

    bufsize = 1 << 20;
    buf = malloc(bufsize);
    if (buf == NULL) {
        ok(0, "depth: malloc");
        return;
    }

    /* nested arrays */
    for (d = 62; d <= 67; d++) {
        memset(buf, '[', d);
        memset(buf + d, ']', d);
        n = 2 * d;

        rc = parse(buf, n, &v, &err);

        if (d <= LOYALTY_JSON_MAX_DEPTH) {
            if (!ok(rc == LOYALTY_OK, "depth: %zu nested arrays parse", d)) {
                diag("  %s", err.msg);
            }

        } else {
            ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON
               && err.msg[0] != '\0' && v == NULL,
               "depth: %zu nested arrays declined (%s)", d, err.msg);
        }
    }

    /* 64 arrays with a scalar inside the innermost */
    memset(buf, '[', 64);
    buf[64] = '1';
    memset(buf + 65, ']', 64);
    rc = parse(buf, 129, &v, &err);
    ok(rc == LOYALTY_OK, "depth: 64 arrays around a number parse (%s)",
       err.msg);

    /* nested objects, a number innermost */
    for (d = 63; d <= 66; d++) {
        n = 0;
        for (i = 0; i < d; i++) {
            memcpy(buf + n, "{\"a\":", 5);
            n += 5;
        }
        buf[n++] = '1';
        memset(buf + n, '}', d);
        n += d;

        rc = parse(buf, n, &v, &err);

        if (d <= LOYALTY_JSON_MAX_DEPTH) {
            if (!ok(rc == LOYALTY_OK,
                    "depth: %zu objects around a number parse", d))
            {
                diag("  %s", err.msg);
            }

        } else {
            ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_JSON
               && err.msg[0] != '\0' && v == NULL,
               "depth: %zu objects around a number declined (%s)", d,
               err.msg);
        }
    }

    /* 64 and 65 nested objects, the innermost empty */
    for (d = 64; d <= 65; d++) {
        n = 0;
        for (i = 0; i < d - 1; i++) {
            memcpy(buf + n, "{\"a\":", 5);
            n += 5;
        }
        memcpy(buf + n, "{}", 2);
        n += 2;
        memset(buf + n, '}', d - 1);
        n += d - 1;

        rc = parse(buf, n, &v, &err);
        ok(d <= LOYALTY_JSON_MAX_DEPTH ? rc == LOYALTY_OK
                                       : rc == LOYALTY_DECLINED,
           "depth: %zu nested objects, innermost empty: %s", d,
           d <= LOYALTY_JSON_MAX_DEPTH ? "parse" : "declined");
    }

    /* alternating arrays and objects */
    for (d = 64; d <= 65; d++) {
        n = 0;
        for (i = 0; i < d; i++) {
            if (i % 2) {
                memcpy(buf + n, "{\"k\":", 5);
                n += 5;
            } else {
                buf[n++] = '[';
            }
        }
        memcpy(buf + n, "null", 4);
        n += 4;
        for (i = d; i-- > 0; /* void */) {
            buf[n++] = (i % 2) ? '}' : ']';
        }

        rc = parse(buf, n, &v, &err);
        ok(d <= LOYALTY_JSON_MAX_DEPTH ? rc == LOYALTY_OK
                                       : rc == LOYALTY_DECLINED,
           "depth: %zu mixed containers: %s", d,
           d <= LOYALTY_JSON_MAX_DEPTH ? "parse" : "declined");
    }

    /* depth comes back down: many siblings at depth 64 are fine */
    n = 0;
    memset(buf, '[', 63);
    n = 63;
    for (i = 0; i < 100; i++) {
        memcpy(buf + n, "[],", 3);
        n += 3;
    }
    buf[n - 1] = ']';
    memset(buf + n, ']', 62);
    n += 62;
    rc = parse(buf, n, &v, &err);
    ok(rc == LOYALTY_OK, "depth: 100 siblings at depth 64 parse (%s)",
       err.msg);

    /* much deeper: no recursion blow-up, just a refusal */
    memset(buf, '[', 1024);
    rc = parse(buf, 1024, &v, &err);
    ok(rc == LOYALTY_DECLINED && v == NULL,
       "depth: 1024 open brackets declined");

    memset(buf, '[', bufsize / 2);
    memset(buf + bufsize / 2, ']', bufsize / 2);
    rc = parse(buf, bufsize, &v, &err);
    ok(rc == LOYALTY_DECLINED && v == NULL,
       "depth: 512Ki nested arrays declined");

    n = 0;
    for (i = 0; i < 100000; i++) {
        memcpy(buf + n, "{\"a\":", 5);
        n += 5;
    }
    rc = parse(buf, n, &v, &err);
    ok(rc == LOYALTY_DECLINED && v == NULL,
       "depth: 100000 open objects declined");

    free(buf);
}


static void
test_utf8(void)
{
    size_t  i;

    static const struct {
        bytes_t      in;
        const char  *name;
    } bad[] = {
        { B("\"\xff\xfe\""), "0xff 0xfe" },
        { B("{\"a\":\"\xff\xfe\"}"), "0xff 0xfe in a member" },
        { B("{\"a\":\"\xc3\x28\"}"), "bad continuation byte" },
        { B("\"\xe2\x82\x28\""), "bad third byte" },
        { B("\"\xf0\x9f\x98\x28\""), "bad fourth byte" },
        { B("\"\xc3\""), "sequence cut by the closing quote" },
        { B("\"\xe2\x82\""), "3-byte sequence cut short" },
        { B("\"\x80\""), "lone continuation byte" },
        { B("\"a\xbf\""), "continuation byte after ASCII" },
        { B("\"\xfe\""), "0xfe" },
        { B("{\"\xff\":1}"), "invalid UTF-8 in a key" },
        { B("\"\xc0\xaf\""), "overlong 2-byte '/'" },
        { B("\"\xc1\xbf\""), "overlong 2-byte (0xc1)" },
        { B("\"\xe0\x80\xaf\""), "overlong 3-byte '/'" },
        { B("\"\xf0\x80\x80\xaf\""), "overlong 4-byte '/'" },
        { B("\"\xed\xa0\x80\""), "encoded high surrogate U+D800" },
        { B("\"\xed\xbf\xbf\""), "encoded low surrogate U+DFFF" },
        { B("\"\xf4\x90\x80\x80\""), "above U+10FFFF" },
        { B("\"\xf5\x80\x80\x80\""), "0xf5 lead byte" },
        { B("\"\xf8\x88\x80\x80\x80\""), "5-byte form" },
        { { NULL, 0 }, NULL }
    };

    for (i = 0; bad[i].name != NULL; i++) {
        char  name[96];

        snprintf(name, sizeof(name), "utf8: %s", bad[i].name);
        declined(bad[i].in.text, bad[i].in.len, name);
    }

    /* valid UTF-8 and escapes */
    dump_is("{\"a\":\"M\xc3\xbcnchen \xe2\x82\xac\"}",
            "{\"a\":\"M\xc3\xbcnchen \xe2\x82\xac\"}",
            "utf8: valid multibyte text dumped unescaped");
    dump_is("[\"\xf0\x9f\x98\x80\",\"\xf4\x8f\xbf\xbf\",\"\xef\xbf\xbf\","
            "\"\xed\x9f\xbf\",\"\xee\x80\x80\",\"\xc2\x80\",\"\x7f\"]",
            "[\"\xf0\x9f\x98\x80\",\"\xf4\x8f\xbf\xbf\",\"\xef\xbf\xbf\","
            "\"\xed\x9f\xbf\",\"\xee\x80\x80\",\"\xc2\x80\",\"\x7f\"]",
            "utf8: boundaries (U+10FFFF, U+FFFF, U+D7FF, U+E000, U+80)");
    dump_is("{\"\xc3\xbc\":1}", "{\"\xc3\xbc\":1}",
            "utf8: multibyte key dumped unescaped");

    dump_is("{\"a\":\"\\u00fc\"}", "{\"a\":\"\xc3\xbc\"}",
            "utf8: \\u00fc decoded to UTF-8");
    dump_is("\"\\u00FC\\u20ac\\u0041\"", "\"\xc3\xbc\xe2\x82\xac" "A\"",
            "utf8: \\u escapes of 1, 2 and 3 bytes, either case");
    dump_is("{\"a\":\"\\ud83d\\ude00\"}", "{\"a\":\"\xf0\x9f\x98\x80\"}",
            "utf8: surrogate pair decoded to one code point");
    dump_is("\"\\uD83D\\uDE00x\"", "\"\xf0\x9f\x98\x80x\"",
            "utf8: upper-case surrogate pair");
    dump_is("\"\\udbff\\udfff\"", "\"\xf4\x8f\xbf\xbf\"",
            "utf8: highest surrogate pair is U+10FFFF");
    dump_is("{\"\\u00fc\":1}", "{\"\xc3\xbc\":1}",
            "utf8: escaped key decoded");

    /*
     * Broken surrogate escapes are refused (I-JSON, RFC 7493): never
     * invalid UTF-8, "?" or another character in the tree.
     */
    {
        size_t           i;
        loyalty_err_t    err;
        loyalty_json_t  *v;

        static const char  *unpaired[] = {
            "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"",
            "\"\\ud800x\"", "\"\\ude00\\ud83d\"", "{\"\\ud800\":1}",
            NULL
        };

        for (i = 0; unpaired[i] != NULL; i++) {
            ok(parse(unpaired[i], (size_t) -1, &v, &err) == LOYALTY_DECLINED
               && err.code == LOYALTY_ERR_JSON
               && strstr(err.msg, "surrogate") != NULL,
               "utf8: unpaired surrogate escape declined: %s", unpaired[i]);
        }

        /* an escaped backslash before "u" is no escape */
        dump_is("\"\\\\ud800\"", "\"\\\\ud800\"",
                "utf8: \\\\ud800 is a backslash and text");
    }
}


static void
test_numbers(void)
{
    size_t  i;
    char    in[256], exp[256];

    static const char  *kept[] = {
        "12.10", "0.10", "0", "-0", "-0.0", "0.0", "1e400", "-1e400",
        "1e-400", "1E2", "1e+2", "-1.5e-3", "1.0e+00", "0.1e-7", "0e0",
        "18446744073709551615", "18446744073709551616",
        "123456789012345678901234", "99999999999999999999",
        "9223372036854775807", "9223372036854775808",
        "-9223372036854775808", "-9223372036854775809",
        "-18446744073709551616", "820982911946154508",
        "0.1000000000000000055511151231257827",
        "100000000000000000000000000000000000000000000000000000000000.5",
        "1.7976931348623157e308", "4.9e-324", "2.2250738585072014E-308",
        NULL
    };

    for (i = 0; kept[i] != NULL; i++) {
        char  name[160];

        /* at the top level, as a member, as an element */
        snprintf(name, sizeof(name), "number: %s kept (top level)", kept[i]);
        dump_is(kept[i], kept[i], name);

        snprintf(in, sizeof(in), "{\"a\" : %s }", kept[i]);
        snprintf(exp, sizeof(exp), "{\"a\":%s}", kept[i]);
        snprintf(name, sizeof(name), "number: %s kept (member)", kept[i]);
        dump_is(in, exp, name);

        snprintf(in, sizeof(in), "[ %s ,%s]", kept[i], kept[i]);
        snprintf(exp, sizeof(exp), "[%s,%s]", kept[i], kept[i]);
        snprintf(name, sizeof(name), "number: %s kept (element)", kept[i]);
        dump_is(in, exp, name);
    }

    dump_is("[12.10, 1e400, 18446744073709551615]",
            "[12.10,1e400,18446744073709551615]",
            "number: text kept inside arrays");
}


static void
test_dump(void)
{
    int              rc;
    loyalty_err_t    err;
    loyalty_str_t    out;
    loyalty_json_t  *v, *m;

    dump_is("{ \"a\" : [ 1 , 2 ] ,\n \"b\" : \"x/y\" }",
            "{\"a\":[1,2],\"b\":\"x/y\"}",
            "dump: compact, slashes not escaped");
    dump_is("\"<\\/script>\"", "\"</script>\"",
            "dump: escaped solidus written plain");
    dump_is("{\"z\":1,\"a\":2,\"m\":3}", "{\"z\":1,\"a\":2,\"m\":3}",
            "dump: member order kept");
    dump_is("{\"a\":1,\"a\":2}", "{\"a\":1,\"a\":2}",
            "dump: repeated names kept, in order");
    dump_is("{\"a\":\"l1\\nl2\\t\\\"q\\\"\\\\\"}",
            "{\"a\":\"l1\\nl2\\t\\\"q\\\"\\\\\"}",
            "dump: control characters, quotes, backslash escaped");
    dump_is("{\"a\\\"b\\\\c\\nd\":1}", "{\"a\\\"b\\\\c\\nd\":1}",
            "dump: keys escaped as strings");
    dump_is("{\"a\":\"x\\u0000y\"}", "{\"a\":\"x\\u0000y\"}",
            "dump: escaped NUL stays escaped");
    dump_is_any("\"\\u0001\\u001f\"", "\"\\u0001\\u001f\"",
                "\"\\u0001\\u001F\"", "dump: \\u0001 \\u001f escaped");
    dump_is_any("\"\\r\"", "\"\\r\"", "\"\\u000d\"", "dump: \\r escaped");
    dump_is_any("\"\\b\\f\"", "\"\\b\\f\"", "\"\\u0008\\u000c\"",
                "dump: \\b \\f escaped");
    dump_is_any("\"\\u007f\"", "\"\x7f\"", "\"\\u007f\"",
                "dump: DEL written plain (or escaped)");
    dump_is("\"\\u0041\\u00e9\"", "\"A\xc3\xa9\"",
            "dump: \\u escapes of printable characters decoded");
    dump_is("{\"a\":true,\"b\":false,\"c\":null,\"d\":{},\"e\":[]}",
            "{\"a\":true,\"b\":false,\"c\":null,\"d\":{},\"e\":[]}",
            "dump: literals and empty containers");
    dump_is("\"only\"", "\"only\"", "dump: a string value");
    dump_is("{\"\":\"\"}", "{\"\":\"\"}", "dump: empty key and value");
    dump_is(" [ [ ] , { } , [ [ 1 ] ] ] ", "[[],{},[[1]]]",
            "dump: nested empty containers");

    /* a sub-tree dumps alone: no siblings, no parent */
    rc = parse("{\"id\":\"1\",\"data\":{\"b\":[1,{\"c\":12.10}],\"a\":\"x\"},"
               "\"z\":2}", (size_t) -1, &v, &err);

    if (!is_int(rc, LOYALTY_OK, "dump: sub-object fixture parses")) {
        diag("  %s", err.msg);
        return;
    }

    m = loyalty_json_object(v, "data");

    if (ok(m != NULL, "dump: data member found")
        && dump_to(m, &out, "dump of data"))
    {
        lt_str_is(&out, "{\"b\":[1,{\"c\":12.10}],\"a\":\"x\"}",
                  "dump: sub-object alone");
    }

    m = loyalty_json_get(v, "id");

    if (ok(m != NULL, "dump: id member found")
        && dump_to(m, &out, "dump of id"))
    {
        lt_str_is(&out, "\"1\"", "dump: a string member alone, no key");
    }

    m = loyalty_json_get(loyalty_json_object(v, "data"), "b");

    if (ok(m != NULL && m->type == LOYALTY_JSON_ARRAY && m->child != NULL,
           "dump: nested array found")
        && dump_to(m->child, &out, "dump of an element"))
    {
        lt_str_is(&out, "1", "dump: first element alone");
    }

    if (m != NULL && m->last != NULL && dump_to(m->last, &out, "dump last")) {
        lt_str_is(&out, "{\"c\":12.10}", "dump: last element alone");
    }

    if (dump_to(v, &out, "dump whole")) {
        lt_str_is(&out, "{\"id\":\"1\",\"data\":{\"b\":[1,{\"c\":12.10}],"
                  "\"a\":\"x\"},\"z\":2}", "dump: whole document");
    }

    /* dump, parse, dump: a fixed point */
    {
        static const char  *doc =
            " {\"a\\u00e9\\n\":[1,-0,1e400,\"\\ud83d\\ude00\\u0000\\\"\","
            "{\"\":null}, true,false ],\"b\":\"\\/\\b\\f\\r\\t\\u001f\"} ";
        loyalty_str_t  once, twice;

        rc = parse(doc, (size_t) -1, &v, &err);

        if (is_int(rc, LOYALTY_OK, "dump: round-trip fixture parses")
            && dump_to(v, &once, "round trip: first dump"))
        {
            rc = parse((const char *) once.data, once.len, &v, &err);

            if (is_int(rc, LOYALTY_OK, "round trip: the dump parses")
                && dump_to(v, &twice, "round trip: second dump"))
            {
                is_mem(twice.data, twice.len, once.data, once.len,
                       "round trip: dump(parse(dump)) is the same dump");
            }
        }
    }
}


static void
test_get(void)
{
    int              rc;
    loyalty_err_t    err;
    loyalty_str_t    s;
    loyalty_json_t  *v, *m;

    rc = parse("{\"a\":1,\"o\":{\"x\":1},\"a\":2,\"o\":{\"x\":2},"
               "\"abc\":3,\"k\\u0000z\":4,\"\":5,\"s\":\"v\",\"s\":\"w\","
               "\"arr\":[{\"a\":9}]}", (size_t) -1, &v, &err);

    if (!is_int(rc, LOYALTY_OK, "get: fixture parses")) {
        diag("  %s", err.msg);
        return;
    }

    ok(v->n == 10, "get: object has 10 members, repeats included (%zu)",
       v->n);

    m = loyalty_json_get(v, "a");
    ok(m != NULL && m->type == LOYALTY_JSON_NUMBER
       && m->text.len == 1 && m->text.data[0] == '1',
       "get: first of a repeated name");
    ok(m != NULL && m->key.len == 1 && m->key.data[0] == 'a'
       && m->parent == v, "get: member has its key and parent");

    m = loyalty_json_object(v, "o");
    ok(m != NULL && m->child != NULL && m->child->text.len == 1
       && m->child->text.data[0] == '1',
       "object: first of a repeated name");

    ok(loyalty_json_scalar(v, "s", &s) == LOYALTY_OK
       && s.len == 1 && s.data[0] == 'v', "scalar: first of a repeated name");

    ok(loyalty_json_get(v, "ab") == NULL, "get: a prefix does not match");
    ok(loyalty_json_get(v, "abcd") == NULL, "get: a longer name does not");
    ok(loyalty_json_get(v, "A") == NULL, "get: names are case-sensitive");
    ok(loyalty_json_get(v, "k") == NULL,
       "get: a name with an escaped NUL is not matched by its prefix");

    m = loyalty_json_get(v, "");
    ok(m != NULL && m->text.len == 1 && m->text.data[0] == '5',
       "get: the empty name");

    ok(loyalty_json_get(v, "missing") == NULL, "get: missing is NULL");
    ok(loyalty_json_get(NULL, "a") == NULL, "get: NULL object is NULL");

    /* elements of an array are not members */
    m = loyalty_json_get(v, "arr");
    ok(m != NULL && m->type == LOYALTY_JSON_ARRAY,
       "get: array member found");
    ok(loyalty_json_get(m, "a") == NULL, "get: an array has no members");
    ok(loyalty_json_get(m, "") == NULL,
       "get: an array has no member named \"\"");

    m = loyalty_json_get(v, "s");
    ok(loyalty_json_get(m, "s") == NULL, "get: a string has no members");
}


static void
test_scalar(void)
{
    int              rc;
    size_t           i;
    loyalty_err_t    err;
    loyalty_str_t    s;
    loyalty_json_t  *v, *t;

    static const char  *declines[] = {
        "obj", "arr", "nul", "t", "f", "empty", "missing", "emptyobj",
        "emptyarr", NULL
    };

    rc = parse("{\"s\":\"hello\",\"i\":42,\"neg\":-7,\"d\":12.10,"
               "\"big\":18446744073709551615,\"e\":1e400,\"mz\":-0,"
               "\"nulbyte\":\"a\\u0000b\",\"obj\":{\"x\":1},\"arr\":[1],"
               "\"nul\":null,\"t\":true,\"f\":false,\"empty\":\"\","
               "\"zero\":0,\"esc\":\"\\u00fc\\n\",\"emptyobj\":{},"
               "\"emptyarr\":[]}", (size_t) -1, &v, &err);

    if (!is_int(rc, LOYALTY_OK, "scalar: fixture parses")) {
        diag("  %s", err.msg);
        return;
    }

#define scalar_is(key, exp, elen, name)                                      \
    s.data = NULL; s.len = 0;                                                \
    rc = loyalty_json_scalar(v, key, &s);                                    \
    is_int(rc, LOYALTY_OK, name ": found");                                  \
    if (rc == LOYALTY_OK) {                                                  \
        is_mem(s.data, s.len, exp, elen, name ": value");                    \
    }

    scalar_is("s", "hello", 5, "scalar: string");
    scalar_is("i", "42", 2, "scalar: integer text");
    scalar_is("neg", "-7", 2, "scalar: negative integer text");
    scalar_is("d", "12.10", 5, "scalar: number keeps its text");
    scalar_is("big", "18446744073709551615", 20, "scalar: UINT64_MAX text");
    scalar_is("e", "1e400", 5, "scalar: 1e400 text");
    scalar_is("mz", "-0", 2, "scalar: -0 text");
    scalar_is("nulbyte", "a\0b", 3, "scalar: string length covers NUL");
    scalar_is("zero", "0", 1, "scalar: zero is a value");
    scalar_is("esc", "\xc3\xbc\n", 3, "scalar: string decoded");

#undef scalar_is

    for (i = 0; declines[i] != NULL; i++) {
        s.data = NULL;
        s.len = 0;
        rc = loyalty_json_scalar(v, declines[i], &s);

        if (!is_int(rc, LOYALTY_DECLINED, "scalar declines non-scalars")) {
            diag("  key %s", declines[i]);
        }
    }

    rc = loyalty_json_scalar(NULL, "s", &s);
    is_int(rc, LOYALTY_DECLINED, "scalar: NULL object declined");

    rc = loyalty_json_scalar(loyalty_json_get(v, "arr"), "s", &s);
    is_int(rc, LOYALTY_DECLINED, "scalar: an array is not an object");

    rc = loyalty_json_scalar(loyalty_json_get(v, "s"), "s", &s);
    is_int(rc, LOYALTY_DECLINED, "scalar: a string is not an object");

    rc = loyalty_json_scalar(loyalty_json_get(v, "missing"), "s", &s);
    is_int(rc, LOYALTY_DECLINED, "scalar: a missing parent declined");

    rc = loyalty_json_scalar(v, "S", &s);
    is_int(rc, LOYALTY_DECLINED, "scalar: keys are case-sensitive");

    /* nested: object of a member */
    t = loyalty_json_object(v, "obj");
    rc = loyalty_json_scalar(t, "x", &s);
    ok(rc == LOYALTY_OK && s.len == 1 && s.data[0] == '1',
       "scalar: member of a nested object");
}


static void
test_object(void)
{
    int              rc;
    loyalty_err_t    err;
    loyalty_json_t  *v, *o;

    rc = parse("{\"o\":{\"x\":1},\"a\":[],\"s\":\"x\",\"n\":null,\"i\":1,"
               "\"t\":true,\"e\":{}}", (size_t) -1, &v, &err);

    if (!is_int(rc, LOYALTY_OK, "object: fixture parses")) {
        diag("  %s", err.msg);
        return;
    }

    o = loyalty_json_object(v, "o");
    ok(o != NULL && o->type == LOYALTY_JSON_OBJECT && o->n == 1
       && o->parent == v, "object: member object returned");

    o = loyalty_json_object(v, "e");
    ok(o != NULL && o->type == LOYALTY_JSON_OBJECT && o->n == 0
       && o->child == NULL, "object: empty member object returned");

    ok(loyalty_json_object(v, "a") == NULL, "object: array member is NULL");
    ok(loyalty_json_object(v, "s") == NULL, "object: string member is NULL");
    ok(loyalty_json_object(v, "n") == NULL, "object: null member is NULL");
    ok(loyalty_json_object(v, "i") == NULL, "object: number member is NULL");
    ok(loyalty_json_object(v, "t") == NULL, "object: true member is NULL");
    ok(loyalty_json_object(v, "none") == NULL, "object: missing is NULL");
    ok(loyalty_json_object(NULL, "o") == NULL, "object: NULL parent is NULL");
    ok(loyalty_json_object(loyalty_json_get(v, "a"), "o") == NULL,
       "object: an array parent is NULL");

    /* an array holding an object: elements are not members */
    rc = parse("[{\"o\":{}}]", (size_t) -1, &v, &err);
    ok(rc == LOYALTY_OK && loyalty_json_object(v, "o") == NULL,
       "object: an array is not searched");
}


static void
test_int64(void)
{
    int              rc;
    size_t           i;
    int64_t          n;
    loyalty_err_t    err;
    loyalty_json_t  *v;

    static const struct {
        const char  *text;
        int64_t      value;
    } good[] = {
        { "0", 0 }, { "-0", 0 }, { "1", 1 }, { "42", 42 }, { "-7", -7 },
        { "820982911946154508", 820982911946154508LL },
        { "9223372036854775807", INT64_MAX },
        { "9223372036854775806", INT64_MAX - 1 },
        { "-9223372036854775808", INT64_MIN },
        { "-9223372036854775807", INT64_MIN + 1 },
        { "4294967296", 4294967296LL },
        { NULL, 0 }
    };

    static const char  *bad[] = {
        "9223372036854775808", "-9223372036854775809",
        "18446744073709551615", "18446744073709551616",
        "99999999999999999999", "123456789012345678901234",
        "-123456789012345678901234",
        "92233720368547758070", "9223372036854775817",
        "1.0", "12.10", "-0.0", "0.5", "1e2", "1E2", "1e+2", "1e-2", "0e0",
        "-1.5e-3", "1e400",
        "\"42\"", "\"\"", "true", "false", "null", "[]", "[1]", "{}",
        "{\"a\":1}",
        NULL
    };

    for (i = 0; good[i].text != NULL; i++) {
        rc = parse(good[i].text, (size_t) -1, &v, &err);

        if (!is_int(rc, LOYALTY_OK, "int64: fixture parses")) {
            continue;
        }

        n = 12345;
        rc = loyalty_json_int64(v, &n);

        if (!ok(rc == LOYALTY_OK && n == good[i].value,
                "int64: %s", good[i].text))
        {
            diag("  rc %d, value %lld", rc, (long long) n);
        }
    }

    for (i = 0; bad[i] != NULL; i++) {
        rc = parse(bad[i], (size_t) -1, &v, &err);

        if (!is_int(rc, LOYALTY_OK, "int64: fixture parses")) {
            continue;
        }

        rc = loyalty_json_int64(v, &n);
        ok(rc == LOYALTY_DECLINED, "int64: %s declined", bad[i]);
    }

    /* members, through get */
    rc = parse("{\"id\":820982911946154508,\"amount\":12.10}", (size_t) -1,
               &v, &err);

    if (is_int(rc, LOYALTY_OK, "int64: member fixture parses")) {
        rc = loyalty_json_int64(loyalty_json_get(v, "id"), &n);
        ok(rc == LOYALTY_OK && n == 820982911946154508LL,
           "int64: an id member");

        rc = loyalty_json_int64(loyalty_json_get(v, "amount"), &n);
        ok(rc == LOYALTY_DECLINED, "int64: an amount with a fraction");
    }
}


/* sizes no test above reaches: long strings, many members */

static void
test_large(void)
{
    int              rc;
    char            *buf;
    size_t           n, i, len;
    loyalty_err_t    err;
    loyalty_str_t    out;
    loyalty_json_t  *v, *c;

    len = 1 << 20;
    buf = malloc(len + 64);
    if (buf == NULL) {
        ok(0, "large: malloc");
        return;
    }

    /* a 1 MiB string of multibyte text */
    buf[0] = '"';
    for (i = 1; i + 2 <= len; i += 2) {
        buf[i] = '\xc3';
        buf[i + 1] = '\xbc';
    }
    buf[i++] = '"';
    n = i;

    rc = parse(buf, n, &v, &err);
    ok(rc == LOYALTY_OK && v->type == LOYALTY_JSON_STRING
       && v->text.len == n - 2 && memcmp(v->text.data, buf + 1, n - 2) == 0,
       "large: 1 MiB string kept");

    if (rc == LOYALTY_OK && dump_to(v, &out, "large: dump string")) {
        is_mem(out.data, out.len, buf, n, "large: 1 MiB string dumped");
    }

    /* 100000 elements */
    n = 0;
    buf[n++] = '[';
    for (i = 0; i < 100000; i++) {
        n += snprintf(buf + n, 16, "%zu,", i);
    }
    buf[n - 1] = ']';

    rc = parse(buf, n, &v, &err);
    ok(rc == LOYALTY_OK && v->n == 100000,
       "large: 100000 elements counted");

    if (rc == LOYALTY_OK) {
        c = v->last;
        ok(c != NULL && c->text.len == 5
           && memcmp(c->text.data, "99999", 5) == 0,
           "large: last element");

        if (dump_to(v, &out, "large: dump array")) {
            is_mem(out.data, out.len, buf, n, "large: array dumped");
        }
    }

    free(buf);
}


/*
 * Every allocation may fail: parse gives LOYALTY_ERROR with
 * LOYALTY_ERR_NOMEM and no tree, or LOYALTY_OK with the whole tree.
 */

static void
nomem_parse(const char *in, const char *exp)
{
    int              rc, bad;
    size_t           fail_at;
    const char      *why;
    loyalty_err_t    err;
    loyalty_str_t    out;
    loyalty_json_t  *v;

    bad = 0;

    for (fail_at = 1; fail_at < 100000; fail_at++) {
        lt_arena_free(&arena);
        arena.fail_at = fail_at;

        rc = parse(in, (size_t) -1, &v, &err);

        if (rc == LOYALTY_OK) {
            size_t  calls = arena.calls;

            why = "";
            arena.fail_at = 0;

            if (v == NULL || v == &sentinel || !tree_ok(v, NULL, 1, &why)
                || loyalty_json_dump(v, &alloc, &out) != LOYALTY_OK
                || out.len != strlen(exp)
                || memcmp(out.data, exp, out.len) != 0)
            {
                diag("  fail_at %zu: OK with a broken tree (%s)", fail_at,
                     why);
                bad++;
            }

            if (calls < fail_at) {
                break;          /* the failure point was never reached */
            }

            continue;
        }

        if (rc != LOYALTY_ERROR || err.code != LOYALTY_ERR_NOMEM
            || err.msg[0] == '\0' || v != NULL)
        {
            diag("  fail_at %zu: rc %d, code %d, \"%s\", *out %s", fail_at,
                 rc, err.code, err.msg, v == NULL ? "NULL" : "set");
            bad++;
        }
    }

    check_ok(bad == 0 && fail_at < 100000, "allocation failure in parse",
             "nomem: parse of %.40s: ERROR/NOMEM or a whole tree at each of "
             "%zu allocations", in, fail_at - 1);

    lt_arena_free(&arena);
}


/* dump: LOYALTY_ERROR or the whole text at each failure point */

static void
nomem_dump(const char *in)
{
    int              rc, bad;
    size_t           fail_at, base;
    loyalty_err_t    err;
    loyalty_str_t    out, good;
    loyalty_json_t  *v;

    lt_arena_free(&arena);

    rc = parse(in, (size_t) -1, &v, &err);
    if (rc != LOYALTY_OK || loyalty_json_dump(v, &alloc, &good) != LOYALTY_OK) {
        ok(0, "nomem: dump fixture");
        return;
    }

    bad = 0;

    for (fail_at = 1; fail_at < 100000; fail_at++) {
        base = arena.calls;
        arena.fail_at = base + fail_at;

        out.len = 0;
        out.data = NULL;
        rc = loyalty_json_dump(v, &alloc, &out);

        if (rc == LOYALTY_OK) {
            if (out.len != good.len || memcmp(out.data, good.data, good.len))
            {
                diag("  fail_at %zu: OK with the wrong text", fail_at);
                bad++;
            }

            if (arena.calls < base + fail_at) {
                break;
            }

            continue;
        }

        if (rc != LOYALTY_ERROR) {
            diag("  fail_at %zu: rc %d", fail_at, rc);
            bad++;
        }
    }

    arena.fail_at = 0;

    check_ok(bad == 0 && fail_at < 100000, "allocation failure in dump",
             "nomem: dump of %.40s: ERROR or the whole text at each of %zu "
             "allocations", in, fail_at - 1);

    lt_arena_free(&arena);
}


static void
test_nomem(void)
{
    static const char  *doc =
        "{\"a\":[1,2,{\"b\":\"c\\u00fcd\"}],\"s\":\"x\\ny\",\"n\":null,"
        "\"t\":true,\"f\":false,\"num\":12.10,\"k\\u00e9y\":\"v\","
        "\"o\":{},\"e\":[],\"\":\"\"}";

    nomem_parse(doc, "{\"a\":[1,2,{\"b\":\"c\xc3\xbc" "d\"}],\"s\":\"x\\ny\","
                "\"n\":null,\"t\":true,\"f\":false,\"num\":12.10,"
                "\"k\xc3\xa9y\":\"v\",\"o\":{},\"e\":[],\"\":\"\"}");
    nomem_parse(" \"str\\u00fc\" ", "\"str\xc3\xbc\"");
    nomem_parse("12.10", "12.10");
    nomem_parse("null", "null");
    nomem_parse("[[[[{\"deep\":[1]}]]]]", "[[[[{\"deep\":[1]}]]]]");

    nomem_dump(doc);
    nomem_dump("\"a long enough string to need its own buffer, perhaps\"");
}


static void
test_path(void)
{
    int              rc;
    size_t           i;
    loyalty_err_t    err;
    loyalty_json_t  *v, *m;
    static const struct {
        const char  *path;
        const char  *text;       /* the scalar found, NULL: none */
    } cases[] = {
        { "customer.email", "a@x.io" },
        { "customer.tier.name", "Gold" },
        { "items.0.sku", "TEE" },
        { "items.1.sku", "HOOD" },
        { "items.2.sku", NULL },
        { "items.1", "" },               /* an object: found, no text */
        { "items.x", NULL },
        { "items.-1", NULL },
        { "items.0000000001.sku", NULL },
        { "customer.email.x", NULL },
        { "customer..email", NULL },
        { "customer.", NULL },
        { ".customer", NULL },
        { "nope", NULL },
        { "a.b", "dotted" },
        { "total", "4990" },
    };

    rc = parse("{\"customer\":{\"email\":\"a@x.io\",\"tier\":"
               "{\"name\":\"Gold\"}},\"items\":[{\"sku\":\"TEE\"},"
               "{\"sku\":\"HOOD\"}],\"a\":{\"b\":\"dotted\"},"
               "\"total\":4990}", (size_t) -1, &v, &err);

    if (!is_int(rc, LOYALTY_OK, "path: fixture parses")) {
        return;
    }

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        m = loyalty_json_path(v, cases[i].path);

        if (cases[i].text == NULL) {
            ok(m == NULL, "path %s: none", cases[i].path);
        } else {
            ok(m != NULL && lt_str_eq(&m->text, cases[i].text),
               "path %s: %s", cases[i].path, cases[i].text);
        }
    }

    ok(loyalty_json_path(v, "") == v, "path: empty is the root");
    ok(loyalty_json_path(NULL, "a") == NULL, "path: NULL root");
}


int
main(void)
{
    test_accept();
    test_reject();
    test_depth();
    test_utf8();
    test_numbers();
    test_dump();
    test_get();
    test_scalar();
    test_object();
    test_int64();
    test_path();
    test_large();

    lt_arena_free(&arena);

    test_nomem();

    lt_arena_free(&arena);

    return done_testing();
}
