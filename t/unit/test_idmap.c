/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_idmap: match rules by name, an event's map fields in rule
 * order (absent and over-long keys left out), the stable id of a new
 * person (SHA-256 of its first key; a store customer id with its
 * store), and the reason of an ambiguous match, which names key kinds
 * and person ids only.
 */


#include <stdlib.h>
#include <string.h>

#include "loyalty_idmap.h"
#include "loyalty_test.h"


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };


static loyalty_str_t
str(const char *s)
{
    loyalty_str_t  v;

    v.data = (const u_char *) s;
    v.len = strlen(s);

    return v;
}


static void
test_rules(void)
{
    is_int(loyalty_idmap_kind("store_cid"), LOYALTY_IDMAP_CID, "store_cid");
    is_int(loyalty_idmap_kind("ext_id"), LOYALTY_IDMAP_EXT, "ext_id");
    is_int(loyalty_idmap_kind("email"), LOYALTY_IDMAP_EMAIL, "email");
    is_int(loyalty_idmap_kind("phone"), LOYALTY_IDMAP_PHONE, "phone");
    is_int(loyalty_idmap_kind("Email"), -1, "rule names are lower case");
    is_int(loyalty_idmap_kind("cid"), -1, "a prefix is no rule name");
    is_str(loyalty_idmap_rule(LOYALTY_IDMAP_CID), "store_cid", "rule name");
    is_str(loyalty_idmap_prefix(LOYALTY_IDMAP_EXT), "ext", "prefix");
    is_int(loyalty_idmap_prefix_kind((const u_char *) "phone", 5),
           LOYALTY_IDMAP_PHONE, "prefix kind");
    is_int(loyalty_idmap_prefix_kind((const u_char *) "phon", 4), -1,
           "unknown prefix");
}


static void
test_fields(void)
{
    size_t           n;
    loyalty_str_t    out[4];
    loyalty_event_t  ev;
    char             longv[300];
    unsigned         all[] = { 0, 1, 2, 3 };
    unsigned         order[] = { LOYALTY_IDMAP_EMAIL, LOYALTY_IDMAP_CID };

    memset(&ev, 0, sizeof(ev));
    ev.store_cid = str("42");
    ev.email = str("ada@example.com");
    ev.phone = str("+447700900123");

    ok(loyalty_idmap_fields(&ev, all, 4, &alloc, out, &n) == LOYALTY_OK,
       "fields");
    is_int(n, 3, "absent ext_id left out");
    is_mem(out[0].data, out[0].len, "cid:42", 6, "store_cid first");
    is_mem(out[1].data, out[1].len, "email:ada@example.com", 21, "email");
    is_mem(out[2].data, out[2].len, "phone:+447700900123", 19, "phone");
    is_int(out[0].data[out[0].len], '\0', "NUL-terminated (script args)");

    ok(loyalty_idmap_fields(&ev, order, 2, &alloc, out, &n) == LOYALTY_OK
       && n == 2, "configured order");
    is_mem(out[0].data, out[0].len, "email:ada@example.com", 21,
           "email first when configured first");
    is_mem(out[1].data, out[1].len, "cid:42", 6, "then store_cid");

    ok(loyalty_idmap_fields(&ev, order + 1, 1, &alloc, out, &n) == LOYALTY_OK
       && n == 1, "a rule not listed is not used");

    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    memset(&ev, 0, sizeof(ev));
    ev.ext_id = str(longv);

    ok(loyalty_idmap_fields(&ev, all, 4, &alloc, out, &n) == LOYALTY_OK,
       "over-long value");
    is_int(n, 0, "an over-long value is no key");
}


static void
test_person(void)
{
    loyalty_str_t  f;
    char           p1[LOYALTY_IDMAP_PERSON_LEN + 1];
    char           p2[LOYALTY_IDMAP_PERSON_LEN + 1];

    /* expected values: sha256 of the text, first 12 bytes in hex */
    f = str("email:ada@example.com");
    ok(loyalty_idmap_person("eu", &f, p1) == LOYALTY_OK, "person id");
    is_str(p1, "p_9b62a3a2bce7c868f30d60f0", "sha256 of the e-mail field");
    ok(loyalty_idmap_person("us", &f, p2) == LOYALTY_OK
       && strcmp(p1, p2) == 0, "a global key: same id from any store");

    f = str("cid:42");
    ok(loyalty_idmap_person("eu", &f, p1) == LOYALTY_OK, "cid person");
    is_str(p1, "p_036fcd57f20f4f65ddf746cb", "cid hashed with its store");
    ok(loyalty_idmap_person("us", &f, p2) == LOYALTY_OK, "cid other store");
    is_str(p2, "p_8adf7580f814a41df51b177c",
           "one cid in two stores: two persons");

    f = str("ext:cus_77");
    ok(loyalty_idmap_person("eu", &f, p1) == LOYALTY_OK
       && strcmp(p1, "p_efe40efb0347268ac263a953") == 0, "ext id");
    is_int(strlen(p1), LOYALTY_IDMAP_PERSON_LEN, "fixed length");
    ok(loyalty_idmap_person_valid((const u_char *) p1, strlen(p1)),
       "our ids are valid person ids");

    f = str("");
    ok(loyalty_idmap_person("eu", &f, p1) == LOYALTY_ERROR, "empty field");
}


static void
test_reason(void)
{
    size_t         n;
    loyalty_str_t  pairs[6];
    char           buf[200];

    pairs[0] = str("ext");
    pairs[1] = str("p_b");
    pairs[2] = str("email");
    pairs[3] = str("p_a");

    n = loyalty_idmap_reason(pairs, 4, buf, sizeof(buf));
    is_str(buf, "identity: ambiguous match: ext_id -> p_b, email -> p_a",
           "kinds and persons");
    is_int(n, strlen(buf), "length");

    pairs[4] = str("cid");
    pairs[5] = str("ada@example.com");
    (void) loyalty_idmap_reason(pairs, 6, buf, sizeof(buf));
    ok(strstr(buf, "store_cid -> ?") != NULL
       && strstr(buf, "example") == NULL,
       "a value that is not a person id is never copied");

    n = loyalty_idmap_reason(pairs, 4, buf, 20);
    is_int(n, 19, "truncated to the buffer");
    is_int(strlen(buf), 19, "NUL-terminated");

    ok(!loyalty_idmap_person_valid((const u_char *) "a b", 3),
       "spaces are not in person ids");
}


int
main(void)
{
    test_rules();
    test_fields();
    test_person();
    test_reason();

    lt_arena_free(&arena);

    return done_testing();
}
