/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_identity: email keys are trimmed and lower-cased, and anything
 * that is not a plain address is declined, never guessed.
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


int
main(void)
{
    test_normalise();
    test_reject();
    test_length();
    test_memory();

    lt_arena_free(&arena);

    return done_testing();
}
