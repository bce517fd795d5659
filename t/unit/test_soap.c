/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty_soap: Salesforce Outbound Messages as apis.md 9.1 and the
 * samples in t/data/salesforce show them, the limits (1..100
 * notifications), strict envelope structure, refusal of DTDs, entities
 * and non-UTF-8 bodies, a SessionId that never comes out, nothing
 * printed by libxml2, and clean failure at every allocation.
 *
 * Inputs are copied into exact-size heap buffers, wiped and freed once
 * parsed: ASan sees over-reads, and results that point into the input.
 */


#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libxml/xmlmemory.h>

#include "loyalty_soap.h"
#include "loyalty_test.h"


#define ENV_OPEN                                                             \
    "<soapenv:Envelope"                                                      \
    " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\""          \
    " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"             \
    "<soapenv:Body>"                                                         \
    "<notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">"

#define ENV_CLOSE  "</notifications></soapenv:Body></soapenv:Envelope>"

#define ORG        "<OrganizationId>00D5g000004ElLmEAK</OrganizationId>"

#define SOBJ_OPEN                                                            \
    "<sObject xsi:type=\"sf:Contact\""                                       \
    " xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">"

/* a minimal message around one Notification's inside */
#define MSG(notification)                                                    \
    ENV_OPEN ORG "<Notification>" notification "</Notification>" ENV_CLOSE

/* ... and around one sObject's inside */
#define MSG_FIELDS(fields)                                                   \
    MSG("<Id>04l5g00000AbCdEAAZ</Id>" SOBJ_OPEN fields "</sObject>")

#define SESSION_TOKEN  "AQ8AQJ0d3Jd5fake.session.token"


/* apis.md 9.1, verbatim, "..." and comments included */
static const char  *apis_example =
    "<soapenv:Envelope"
    " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">\n"
    " <soapenv:Body>\n"
    "  <notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n"
    "   <OrganizationId>00D\xe2\x80\xa6</OrganizationId>"
    "<ActionId>04k\xe2\x80\xa6</ActionId>\n"
    "   <SessionId xsi:nil=\"true\"/>   <!-- only if \"send session id\" is"
    " enabled -->\n"
    "   <EnterpriseUrl>https://\xe2\x80\xa6/services/Soap/c/60.0/"
    "00D\xe2\x80\xa6</EnterpriseUrl>\n"
    "   <PartnerUrl>https://\xe2\x80\xa6/services/Soap/u/60.0/"
    "00D\xe2\x80\xa6</PartnerUrl>\n"
    "   <Notification><Id>04l\xe2\x80\xa6</Id>\n"
    "     <sObject xsi:type=\"sf:Contact\""
    " xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">\n"
    "       <sf:Id>003\xe2\x80\xa6</sf:Id><sf:Email>a@b.c</sf:Email>"
    "<sf:ExtId__c>X1</sf:ExtId__c></sObject>\n"
    "   </Notification>   <!-- up to 100 Notification elements -->\n"
    "  </notifications></soapenv:Body></soapenv:Envelope>\n";


static int parse(const char *text, size_t len, loyalty_soap_message_t *m,
    loyalty_err_t *err);
static char *slurp(const char *path, size_t *len);
static char *build(size_t n, int pretty, size_t *len);
static char *deep(size_t depth, size_t *len);
static char *big(size_t size, size_t *len);
static int str_ok(const loyalty_str_t *s);
static int msg_ok(const loyalty_soap_message_t *m, const char **why);
static int msg_eq(const loyalty_soap_message_t *a,
    const loyalty_soap_message_t *b);
static int str_same(const loyalty_str_t *a, const loyalty_str_t *b);
static int zeroed(const loyalty_soap_message_t *m);
static const loyalty_soap_field_t *field(
    const loyalty_soap_notification_t *nt, const char *name);
static int field_is(const loyalty_soap_notification_t *nt, const char *name,
    const char *value, const char *what);
static int field_nil(const loyalty_soap_notification_t *nt,
    const char *name, const char *what);
static int contains(const loyalty_str_t *s, const char *needle, size_t n);
static int leaks_token(const loyalty_soap_message_t *m, const char *token);
static void accepted(const char *text, size_t len, loyalty_soap_message_t *m,
    const char *name);
static void declined(const char *text, size_t len, const char *expect,
    const char *name);
static void test_ack(void);
static void test_example(void);
static void test_files(void);
static void test_limits(void);
static void test_nil(void);
static void test_structure(void);
static void test_namespaces(void);
static void test_not_xml(void);
static void test_truncated(void);
static void test_dtd(void);
static void test_encoding(void);
static void test_text(void);
static void test_attributes(void);
static void test_quiet(void);
static void test_nomem(void);
static void nomem_parse(const char *text, size_t len, const char *name);
static void test_xml_nomem(void);
static void xml_nomem(const char *text, size_t len, const char *name);
static void *xml_malloc(size_t size);
static void *xml_realloc(void *p, size_t size);
static char *xml_strdup(const char *s);


static lt_arena_t       arena;
static loyalty_alloc_t  alloc = { lt_arena_alloc, &arena };

/* libxml2's own allocations, made to fail one at a time */
static size_t           xml_calls;
static size_t           xml_fail_at;


/* len (size_t) -1: strlen(text) */

static int
parse(const char *text, size_t len, loyalty_soap_message_t *m,
    loyalty_err_t *err)
{
    int            rc;
    u_char        *buf;
    loyalty_str_t  x;

    if (len == (size_t) -1) {
        len = strlen(text);
    }

    buf = malloc(len ? len : 1);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, text, len);

    x.data = buf;
    x.len = len;

    memset(err, 0, sizeof(loyalty_err_t));
    memset(m, 0xa5, sizeof(loyalty_soap_message_t));

    rc = loyalty_soap_parse(&x, &alloc, m, err);

    /* nothing returned may point into the request body */
    memset(buf, 'X', len);
    free(buf);

    return rc;
}


static char *
slurp(const char *path, size_t *len)
{
    long   n;
    char  *buf;
    FILE  *f;

    f = fopen(path, "rb");
    if (f == NULL) {
        return NULL;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fclose(f);
        return NULL;
    }

    buf = malloc(n ? (size_t) n : 1);

    if (buf == NULL || fread(buf, 1, (size_t) n, f) != (size_t) n) {
        free(buf);
        fclose(f);
        return NULL;
    }

    fclose(f);
    *len = (size_t) n;

    return buf;
}


/*
 * The apis.md shape with n notifications 04l000000000001.. and contacts
 * c1@b.c..; pretty: one element per line, indented, else no white space
 * between elements at all.
 */

static char *
build(size_t n, int pretty, size_t *len)
{
    size_t       i, size;
    char        *buf, *p;
    const char  *nl, *in;

    nl = pretty ? "\n" : "";
    in = pretty ? "    " : "";
    size = 1024 + n * 512;

    buf = malloc(size);
    if (buf == NULL) {
        abort();
    }

    p = buf;
    p += sprintf(p,
                 "%s<soapenv:Envelope"
                 " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\""
                 " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
                 "%s%s<soapenv:Body>%s%s<notifications"
                 " xmlns=\"http://soap.sforce.com/2005/09/outbound\">%s"
                 "%s<OrganizationId>00D5g000004ElLmEAK</OrganizationId>%s"
                 "%s<ActionId>04k5g000000XyZ1AAK</ActionId>%s"
                 "%s<SessionId>00D!" SESSION_TOKEN "</SessionId>%s"
                 "%s<EnterpriseUrl>https://x.my.salesforce.com/c"
                 "</EnterpriseUrl>%s"
                 "%s<PartnerUrl>https://x.my.salesforce.com/u</PartnerUrl>"
                 "%s",
                 pretty ? "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" : "",
                 nl, in, nl, in, nl, in, nl, in, nl, in, nl, in, nl, in, nl);

    for (i = 1; i <= n; i++) {
        p += sprintf(p,
                     "%s<Notification>%s"
                     "%s%s<Id>04l%012zu</Id>%s"
                     "%s%s<sObject xsi:type=\"sf:Contact\""
                     " xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\">%s"
                     "%s%s%s<sf:Id>003%012zu</sf:Id>%s"
                     "%s%s%s<sf:Email>c%zu@b.c</sf:Email>%s"
                     "%s%s%s<sf:ExtId__c xsi:nil=\"true\"/>%s"
                     "%s%s</sObject>%s"
                     "%s</Notification>%s",
                     in, nl, in, in, i, nl, in, in, nl, in, in, in, i, nl,
                     in, in, in, i, nl, in, in, in, nl, in, in, nl, in, nl);
    }

    p += sprintf(p, "%s</notifications>%s%s</soapenv:Body>%s"
                 "</soapenv:Envelope>%s", in, nl, in, nl, nl);

    *len = p - buf;

    return buf;
}


/* a message whose one field holds depth - 1 nested elements */

static char *
deep(size_t depth, size_t *len)
{
    size_t  i, size;
    char   *buf, *p;

    size = sizeof(MSG_FIELDS("")) + depth * 16;

    buf = malloc(size);
    if (buf == NULL) {
        abort();
    }

    p = buf;
    p += sprintf(p, "%s", ENV_OPEN ORG "<Notification><Id>04l1</Id>"
                 SOBJ_OPEN);

    for (i = 0; i < depth; i++) {
        p += sprintf(p, "<sf:A>");
    }

    for (i = 0; i < depth; i++) {
        p += sprintf(p, "</sf:A>");
    }

    p += sprintf(p, "%s", "</sObject></Notification>" ENV_CLOSE);

    *len = p - buf;

    return buf;
}


/*
 * A message of exactly size bytes, nearly all of it one field's text
 * with a character reference every 4 KB, so that libxml2 grows the text
 * node by pieces.
 */

static char *
big(size_t size, size_t *len)
{
    size_t       head, tail, i;
    char        *buf;
    const char  *h, *t;

    h = ENV_OPEN ORG "<Notification><Id>04l1</Id>" SOBJ_OPEN "<sf:Big>";
    t = "</sf:Big></sObject></Notification>" ENV_CLOSE;
    head = strlen(h);
    tail = strlen(t);

    buf = malloc(size);
    if (buf == NULL) {
        abort();
    }

    memcpy(buf, h, head);
    memset(buf + head, 'a', size - head - tail);

    for (i = head + 4096; i + 5 < size - tail; i += 4096) {
        memcpy(buf + i, "&#98;", 5);
    }

    memcpy(buf + size - tail, t, tail);
    *len = size;

    return buf;
}


/* a returned string: data when it has a length, NUL-terminated */

static int
str_ok(const loyalty_str_t *s)
{
    if (s->data == NULL) {
        return s->len == 0;
    }

    return s->data[s->len] == '\0' && memchr(s->data, '\0', s->len) == NULL;
}


static int
msg_ok(const loyalty_soap_message_t *m, const char **why)
{
    size_t                              i, j;
    const loyalty_soap_notification_t  *nt;

    if (!str_ok(&m->organization_id) || !str_ok(&m->action_id)
        || !str_ok(&m->enterprise_url) || !str_ok(&m->partner_url))
    {
        *why = "a header string is broken";
        return 0;
    }

    if (m->organization_id.len == 0) {
        *why = "empty organization id";
        return 0;
    }

    if (m->nnotifications == 0
        || m->nnotifications > LOYALTY_SOAP_MAX_NOTIFICATIONS
        || m->notifications == NULL)
    {
        *why = "notification count";
        return 0;
    }

    for (i = 0; i < m->nnotifications; i++) {
        nt = &m->notifications[i];

        if (nt->id.len == 0 || !str_ok(&nt->id) || !str_ok(&nt->type)) {
            *why = "notification id or type";
            return 0;
        }

        if ((nt->nfields == 0) != (nt->fields == NULL)) {
            *why = "fields array";
            return 0;
        }

        for (j = 0; j < nt->nfields; j++) {
            if (nt->fields[j].name.len == 0 || !str_ok(&nt->fields[j].name)
                || !str_ok(&nt->fields[j].value)
                || (nt->fields[j].nil && nt->fields[j].value.len))
            {
                *why = "a field";
                return 0;
            }
        }
    }

    return 1;
}


static int
str_same(const loyalty_str_t *a, const loyalty_str_t *b)
{
    return a->len == b->len && (a->data == NULL) == (b->data == NULL)
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


static int
msg_eq(const loyalty_soap_message_t *a, const loyalty_soap_message_t *b)
{
    size_t                              i, j;
    const loyalty_soap_notification_t  *x, *y;

    if (!str_same(&a->organization_id, &b->organization_id)
        || !str_same(&a->action_id, &b->action_id)
        || !str_same(&a->enterprise_url, &b->enterprise_url)
        || !str_same(&a->partner_url, &b->partner_url)
        || a->nnotifications != b->nnotifications)
    {
        return 0;
    }

    for (i = 0; i < a->nnotifications; i++) {
        x = &a->notifications[i];
        y = &b->notifications[i];

        if (!str_same(&x->id, &y->id) || !str_same(&x->type, &y->type)
            || x->nfields != y->nfields)
        {
            return 0;
        }

        for (j = 0; j < x->nfields; j++) {
            if (!str_same(&x->fields[j].name, &y->fields[j].name)
                || !str_same(&x->fields[j].value, &y->fields[j].value)
                || x->fields[j].nil != y->fields[j].nil)
            {
                return 0;
            }
        }
    }

    return 1;
}


static int
zeroed(const loyalty_soap_message_t *m)
{
    loyalty_soap_message_t  z;

    memset(&z, 0, sizeof(loyalty_soap_message_t));

    return memcmp(m, &z, sizeof(loyalty_soap_message_t)) == 0;
}


static const loyalty_soap_field_t *
field(const loyalty_soap_notification_t *nt, const char *name)
{
    size_t  i;

    for (i = 0; i < nt->nfields; i++) {
        if (loyalty_str_eq(&nt->fields[i].name, name)) {
            return &nt->fields[i];
        }
    }

    return NULL;
}


static int
field_is(const loyalty_soap_notification_t *nt, const char *name,
    const char *value, const char *what)
{
    const loyalty_soap_field_t  *f;

    f = field(nt, name);

    if (f == NULL || f->nil) {
        ok(0, "%s: %s present, not nil", what, name);
        return 0;
    }

    return lt_str_is(&f->value, value, what);
}


static int
field_nil(const loyalty_soap_notification_t *nt, const char *name,
    const char *what)
{
    const loyalty_soap_field_t  *f;

    f = field(nt, name);

    return ok(f != NULL && f->nil && f->value.len == 0
              && f->value.data == NULL, "%s", what);
}


static int
contains(const loyalty_str_t *s, const char *needle, size_t n)
{
    size_t  i;

    for (i = 0; s->data != NULL && i + n <= s->len; i++) {
        if (memcmp(s->data + i, needle, n) == 0) {
            return 1;
        }
    }

    return 0;
}


/* the session token is in none of the strings handed back */

static int
leaks_token(const loyalty_soap_message_t *m, const char *token)
{
    size_t                              i, j, n;
    const loyalty_str_t                *s;
    const loyalty_soap_notification_t  *nt;

    n = strlen(token);

#define LEAKS(str)  (s = (str), contains(s, token, n))

    if (LEAKS(&m->organization_id) || LEAKS(&m->action_id)
        || LEAKS(&m->enterprise_url) || LEAKS(&m->partner_url))
    {
        return 1;
    }

    for (i = 0; i < m->nnotifications; i++) {
        nt = &m->notifications[i];

        if (LEAKS(&nt->id) || LEAKS(&nt->type)) {
            return 1;
        }

        for (j = 0; j < nt->nfields; j++) {
            if (LEAKS(&nt->fields[j].name) || LEAKS(&nt->fields[j].value)) {
                return 1;
            }
        }
    }

#undef LEAKS

    return 0;
}


static void
accepted(const char *text, size_t len, loyalty_soap_message_t *m,
    const char *name)
{
    int             rc;
    const char     *why;
    loyalty_err_t   err;

    rc = parse(text, len, m, &err);

    if (!ok(rc == LOYALTY_OK, "%s: accepted", name)) {
        diag("  rc %d, code %d: %s", rc, err.code, err.msg);
        memset(m, 0, sizeof(loyalty_soap_message_t));
        return;
    }

    why = "";
    if (!ok(msg_ok(m, &why), "%s: well-formed result", name)) {
        diag("  %s", why);
    }
}


/*
 * DECLINED, ERR_INPUT, a message containing expect (NULL: any), *out
 * all zero.
 */

static void
declined(const char *text, size_t len, const char *expect, const char *name)
{
    int                     rc;
    loyalty_err_t           err;
    loyalty_soap_message_t  m;

    rc = parse(text, len, &m, &err);

    if (!ok(rc == LOYALTY_DECLINED && err.code == LOYALTY_ERR_INPUT
            && err.msg[0] != '\0'
            && (expect == NULL || strstr(err.msg, expect) != NULL)
            && zeroed(&m),
            "%s: declined (%s)", name, err.msg))
    {
        diag("  rc %d, code %d, expected \"%s\", out %s", rc, err.code,
             expect ? expect : "", zeroed(&m) ? "zero" : "not zero");
    }
}


static void
test_ack(void)
{
    const char  *exp, *p;

    exp = "<soapenv:Envelope"
          " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
          "<soapenv:Body><notificationsResponse"
          " xmlns=\"http://soap.sforce.com/2005/09/outbound\">"
          "<Ack>true</Ack></notificationsResponse></soapenv:Body>"
          "</soapenv:Envelope>";

    ok(loyalty_soap_ack.data != NULL
       && loyalty_soap_ack.len == strlen((const char *) loyalty_soap_ack.data),
       "ack: length matches the text");

    p = (const char *) loyalty_soap_ack.data;

    ok(strncmp(p, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>", 38) == 0,
       "ack: UTF-8 XML declaration");

    is_str(p + 38, exp, "ack: the envelope Salesforce expects, no white space");
}


static void
test_example(void)
{
    char                                *doc;
    size_t                               len, i;
    const char                          *why;
    char                                 want[64];
    loyalty_soap_message_t               m;
    const loyalty_soap_notification_t   *nt;

    /* the documentation's sample, with its unbound xsi prefix */
    accepted(apis_example, (size_t) -1, &m, "apis.md example");

    if (m.nnotifications == 1) {
        lt_str_is(&m.organization_id, "00D\xe2\x80\xa6", "example: org id");
        lt_str_is(&m.action_id, "04k\xe2\x80\xa6", "example: action id");
        lt_str_is(&m.enterprise_url,
                  "https://\xe2\x80\xa6/services/Soap/c/60.0/00D\xe2\x80\xa6",
                  "example: enterprise url");
        lt_str_is(&m.partner_url,
                  "https://\xe2\x80\xa6/services/Soap/u/60.0/00D\xe2\x80\xa6",
                  "example: partner url");

        nt = &m.notifications[0];
        lt_str_is(&nt->id, "04l\xe2\x80\xa6", "example: notification id");
        lt_str_is(&nt->type, "Contact", "example: sf:Contact -> Contact");
        is_int(nt->nfields, 3, "example: three fields");

        if (nt->nfields == 3) {
            lt_str_is(&nt->fields[0].name, "Id", "example: field 1 name");
            lt_str_is(&nt->fields[0].value, "003\xe2\x80\xa6",
                      "example: field 1 value");
            lt_str_is(&nt->fields[1].name, "Email", "example: field 2 name");
            lt_str_is(&nt->fields[1].value, "a@b.c",
                      "example: field 2 value");
            lt_str_is(&nt->fields[2].name, "ExtId__c",
                      "example: field 3 name");
            lt_str_is(&nt->fields[2].value, "X1", "example: field 3 value");
            ok(!nt->fields[0].nil && !nt->fields[1].nil && !nt->fields[2].nil,
               "example: no field is nil");
        }
    }

    lt_arena_free(&arena);

    /* the same shape with 100 notifications, the documented maximum */
    doc = build(100, 1, &len);
    accepted(doc, len, &m, "100 notifications");
    free(doc);

    if (is_int(m.nnotifications, 100, "100 notifications: all of them")) {
        why = NULL;

        for (i = 0; i < 100 && why == NULL; i++) {
            nt = &m.notifications[i];

            snprintf(want, sizeof(want), "04l%012zu", i + 1);
            if (!loyalty_str_eq(&nt->id, want)) {
                why = "id";
            }

            snprintf(want, sizeof(want), "c%zu@b.c", i + 1);
            if (nt->nfields != 3 || !loyalty_str_eq(&nt->fields[1].value, want)
                || !nt->fields[2].nil || !loyalty_str_eq(&nt->type, "Contact"))
            {
                why = "fields";
            }
        }

        if (!ok(why == NULL, "100 notifications: in document order, each "
                "with its own id and fields"))
        {
            diag("  notification %zu: %s", i, why);
        }

        ok(!leaks_token(&m, SESSION_TOKEN),
           "100 notifications: SessionId not returned");
    }

    lt_arena_free(&arena);
}


static void
test_files(void)
{
    char                                *doc;
    size_t                               len;
    loyalty_soap_message_t               m;
    const loyalty_soap_notification_t   *nt;

    doc = slurp("t/data/salesforce/contact-1.xml", &len);
    if (!ok(doc != NULL, "contact-1.xml: readable from the repo root")) {
        return;
    }

    accepted(doc, len, &m, "contact-1.xml");
    free(doc);

    if (m.nnotifications == 1) {
        lt_str_is(&m.organization_id, "00D5g000004ElLmEAK",
                  "contact-1: org id");
        lt_str_is(&m.action_id, "04k5g000000XyZ1AAK", "contact-1: action id");
        lt_str_is(&m.enterprise_url, "https://acme.my.salesforce.com/"
                  "services/Soap/c/60.0/00D5g000004ElLm",
                  "contact-1: enterprise url");
        lt_str_is(&m.partner_url, "https://acme.my.salesforce.com/"
                  "services/Soap/u/60.0/00D5g000004ElLm",
                  "contact-1: partner url");

        nt = &m.notifications[0];
        lt_str_is(&nt->id, "04l5g00000AbCdEAAZ", "contact-1: notification id");
        lt_str_is(&nt->type, "Contact", "contact-1: type");
        is_int(nt->nfields, 6, "contact-1: six fields");
        field_is(nt, "Id", "0035g00000KxYzQAAV", "contact-1: Id");
        field_is(nt, "Email", "ana.lopez@example.com", "contact-1: Email");
        field_is(nt, "ExtId__c", "LOY-100042", "contact-1: ExtId__c");
        field_is(nt, "LastName", "L\xc3\xb3pez & Hijos",
                 "contact-1: character and entity references decoded");
        field_nil(nt, "MobilePhone", "contact-1: MobilePhone is nil");
    }

    lt_arena_free(&arena);

    doc = slurp("t/data/salesforce/contacts-3.xml", &len);
    if (!ok(doc != NULL, "contacts-3.xml: readable from the repo root")) {
        return;
    }

    accepted(doc, len, &m, "contacts-3.xml");
    free(doc);

    if (is_int(m.nnotifications, 3, "contacts-3: three notifications")) {
        lt_str_is(&m.notifications[0].id, "04l5g00000AbCdFAAZ",
                  "contacts-3: first id");
        lt_str_is(&m.notifications[1].id, "04l5g00000AbCdGAAZ",
                  "contacts-3: second id");
        lt_str_is(&m.notifications[2].id, "04l5g00000AbCdHAAZ",
                  "contacts-3: third id");
        lt_str_is(&m.notifications[0].type, "Contact", "contacts-3: Contact");
        lt_str_is(&m.notifications[1].type, "Lead", "contacts-3: Lead");
        lt_str_is(&m.notifications[2].type, "Contact", "contacts-3: Contact");
        field_is(&m.notifications[1], "Company", "Globex",
                 "contacts-3: Lead Company");
        field_nil(&m.notifications[1], "ExtId__c",
                  "contacts-3: Lead ExtId__c is nil");
        field_is(&m.notifications[2], "Email", "dana.o'neil@example.ie",
                 "contacts-3: apostrophe kept");

        /* "send session id" was on for this one */
        ok(!leaks_token(&m, "fake.session.token"),
           "contacts-3: the SessionId is in no returned string");
    }

    lt_arena_free(&arena);
}


static void
test_limits(void)
{
    char                    *doc;
    size_t                   len;
    loyalty_soap_message_t   m;

    doc = build(1, 0, &len);
    accepted(doc, len, &m, "1 notification, compact");
    is_int(m.nnotifications, 1, "1 notification: counted");
    free(doc);
    lt_arena_free(&arena);

    doc = build(101, 1, &len);
    declined(doc, len, "more than 100 notifications", "101 notifications");
    free(doc);

    doc = build(1000, 0, &len);
    declined(doc, len, "more than 100 notifications", "1000 notifications");
    free(doc);

    /* libxml2's own limits stay on (no XML_PARSE_HUGE) */
    doc = deep(300, &len);
    declined(doc, len, "malformed XML", "fields nested 300 deep");
    free(doc);

    doc = deep(200, &len);
    accepted(doc, len, &m, "fields nested 200 deep");
    free(doc);
    lt_arena_free(&arena);

    doc = big(10000000 + 1, &len);
    declined(doc, len, "body larger than 10000000 bytes", "a 10 MB body");
    free(doc);

    /* one text node grown by pieces to nearly the limit */
    doc = big(10000000, &len);
    accepted(doc, len, &m, "a body of exactly 10000000 bytes");
    free(doc);

    ok(m.nnotifications == 1 && m.notifications[0].nfields == 1
       && m.notifications[0].fields[0].value.len > 9980000,
       "the whole text node came back");
    lt_arena_free(&arena);

    /* nothing to acknowledge */
    declined(ENV_OPEN ORG ENV_CLOSE, (size_t) -1, "no Notification",
             "zero notifications");
    declined(ENV_OPEN ORG "<SessionId xsi:nil=\"true\"/>"
             "<notification><Id>x</Id></notification>" ENV_CLOSE,
             (size_t) -1, "no Notification",
             "notification, lower case, is not a Notification");

    lt_arena_free(&arena);
}


static void
test_nil(void)
{
    loyalty_soap_message_t               m;
    const loyalty_soap_notification_t   *nt;

    accepted(MSG_FIELDS("<sf:A xsi:nil=\"true\"/>"
                        "<sf:B xsi:nil=\"1\"></sf:B>"
                        "<sf:C xsi:nil=\" true \"/>"
                        "<sf:D xsi:nil=\"false\">d</sf:D>"
                        "<sf:E xsi:nil=\"0\"/>"
                        "<sf:F xsi:nil=\"true\">ignored</sf:F>"
                        "<sf:G nil=\"true\">g</sf:G>"
                        "<sf:H xmlns:y=\"urn:other\" y:nil=\"true\">h</sf:H>"
                        "<sf:I xsi:nil=\"TRUE\">i</sf:I>"
                        "<sf:J></sf:J>"),
             (size_t) -1, &m, "nil fields");

    if (m.nnotifications == 1) {
        nt = &m.notifications[0];
        is_int(nt->nfields, 10, "nil: every field kept");
        field_nil(nt, "A", "nil: xsi:nil=\"true\"");
        field_nil(nt, "B", "nil: xsi:nil=\"1\"");
        field_nil(nt, "C", "nil: white space around true collapsed");
        field_is(nt, "D", "d", "nil: xsi:nil=\"false\" keeps the value");
        field_is(nt, "E", "", "nil: xsi:nil=\"0\" is an empty value");
        field_nil(nt, "F", "nil: nil wins over content");
        field_is(nt, "G", "g", "nil: nil without the xsi namespace");
        field_is(nt, "H", "h", "nil: nil in another namespace");
        field_is(nt, "I", "i", "nil: TRUE is not an xs:boolean");

        ok(field(nt, "J") != NULL && field(nt, "J")->value.data != NULL
           && field(nt, "J")->value.len == 0,
           "nil: an empty element is an empty string, not nil");
    }

    /* the SessionId, nil or not, never counts as a field or a value */
    accepted(ENV_OPEN ORG "<SessionId>00D!" SESSION_TOKEN "</SessionId>"
             "<Notification><Id>04l1</Id>" SOBJ_OPEN "<sf:Id>1</sf:Id>"
             "</sObject></Notification>" ENV_CLOSE,
             (size_t) -1, &m, "SessionId present");
    ok(!leaks_token(&m, SESSION_TOKEN),
       "SessionId present: not in any returned string");

    lt_arena_free(&arena);
}


static void
test_structure(void)
{
    loyalty_soap_message_t               m;
    const loyalty_soap_notification_t   *nt;

    declined(ENV_OPEN "<Notification><Id>1</Id>" SOBJ_OPEN "</sObject>"
             "</Notification>" ENV_CLOSE, (size_t) -1, "no OrganizationId",
             "missing OrganizationId");
    declined(ENV_OPEN "<OrganizationId></OrganizationId>"
             "<Notification><Id>1</Id>" SOBJ_OPEN "</sObject>"
             "</Notification>" ENV_CLOSE, (size_t) -1, "empty OrganizationId",
             "empty OrganizationId");
    declined(ENV_OPEN "<OrganizationId xsi:nil=\"true\"/>"
             "<Notification><Id>1</Id>" SOBJ_OPEN "</sObject>"
             "</Notification>" ENV_CLOSE, (size_t) -1, "empty OrganizationId",
             "nil OrganizationId");
    declined(ENV_OPEN "<OrganizationId> \n\t </OrganizationId>"
             "<Notification><Id>1</Id>" SOBJ_OPEN "</sObject>"
             "</Notification>" ENV_CLOSE, (size_t) -1, "empty OrganizationId",
             "white-space OrganizationId");
    declined(ENV_OPEN ORG ORG "<Notification><Id>1</Id>" SOBJ_OPEN
             "</sObject></Notification>" ENV_CLOSE, (size_t) -1,
             "more than one OrganizationId", "two OrganizationIds");

    declined(ENV_OPEN ORG
             "<Notification><Id>a</Id>" SOBJ_OPEN "</sObject></Notification>"
             "<Notification>" SOBJ_OPEN "</sObject></Notification>"
             ENV_CLOSE, (size_t) -1, "notification 2 has no Id",
             "a Notification without Id");
    declined(ENV_OPEN ORG
             "<Notification><Id>a</Id>" SOBJ_OPEN "</sObject></Notification>"
             "<Notification><Id>b</Id>" SOBJ_OPEN "</sObject></Notification>"
             "<Notification><Id> </Id>" SOBJ_OPEN "</sObject></Notification>"
             ENV_CLOSE, (size_t) -1, "notification 3 has an empty Id",
             "a Notification with an empty Id");
    declined(MSG("<Id>a</Id><Id>b</Id>" SOBJ_OPEN "</sObject>"), (size_t) -1,
             "notification 1 has more than one Id", "two Ids");
    declined(MSG("<Id>a</Id>"), (size_t) -1, "notification 1 has no sObject",
             "a Notification without sObject");
    declined(MSG("<Id>a</Id>" SOBJ_OPEN "</sObject>" SOBJ_OPEN "</sObject>"),
             (size_t) -1, "more than one sObject", "two sObjects");
    declined(MSG("<sf:Id xmlns:sf=\"urn:x\">a</sf:Id>" SOBJ_OPEN
                 "</sObject>"),
             (size_t) -1, "has no Id", "an Id in another namespace");

    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"/>",
             (size_t) -1, "no SOAP Body", "no Body");
    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
             "<soapenv:Body/><soapenv:Body/></soapenv:Envelope>",
             (size_t) -1, "more than one SOAP Body", "two Bodies");
    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
             "<soapenv:Body/></soapenv:Envelope>",
             (size_t) -1, "no notifications", "empty Body");
    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
             "<soapenv:Body>"
             "<n:notifications xmlns:n=\"http://soap.sforce.com/2005/09/"
             "outbound\"/><n:notifications xmlns:n=\"http://soap.sforce.com/"
             "2005/09/outbound\"/></soapenv:Body></soapenv:Envelope>",
             (size_t) -1, "more than one notifications",
             "two notifications elements");
    declined("<soapenv:Body"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"/>",
             (size_t) -1, "not a SOAP envelope", "Body as the root");

    /* what is not part of the shape is skipped, wherever it stands */
    accepted("<?xml version=\"1.0\"?>\n"
             "<!-- a comment -->\n<?pi ignored?>\n"
             "<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\""
             " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">"
             "<soapenv:Header><x:Trace xmlns:x=\"urn:x\">1</x:Trace>"
             "</soapenv:Header>"
             "<soapenv:Body>stray text<x:Other xmlns:x=\"urn:x\"/>"
             "<notifications xmlns=\"http://soap.sforce.com/2005/09/outbound\">"
             "<!-- c --><Extra>e</Extra>" ORG
             "<Notification><Unknown/><Id>04l1</Id><!-- c --><?p?>"
             SOBJ_OPEN "<sf:Id>1</sf:Id></sObject><Trailer/></Notification>"
             "<x:Notification xmlns:x=\"urn:not-outbound\"><x:Id/>"
             "</x:Notification>"
             ENV_CLOSE "\n<!-- after -->\n",
             (size_t) -1, &m, "unknown elements, comments, PIs");
    is_int(m.nnotifications, 1,
           "unknown elements: a Notification in another namespace skipped");
    lt_str_is(&m.notifications[0].id, "04l1",
              "unknown elements: the Notification is read");

    /* field order and duplicates, as sent */
    accepted(MSG_FIELDS("<sf:Phone>1</sf:Phone><sf:Email>a@b.c</sf:Email>"
                        "<sf:Phone>2</sf:Phone>"
                        "<sf:Nested><sf:Inner>x</sf:Inner>t</sf:Nested>"),
             (size_t) -1, &m, "duplicate fields");

    if (m.nnotifications == 1 && m.notifications[0].nfields == 4) {
        nt = &m.notifications[0];
        ok(loyalty_str_eq(&nt->fields[0].name, "Phone")
           && loyalty_str_eq(&nt->fields[0].value, "1")
           && loyalty_str_eq(&nt->fields[1].name, "Email")
           && loyalty_str_eq(&nt->fields[2].name, "Phone")
           && loyalty_str_eq(&nt->fields[2].value, "2"),
           "duplicate fields: both kept, in document order");
        lt_str_is(&nt->fields[3].value, "t",
                  "nested element: only the field's own text");

    } else {
        ok(0, "duplicate fields: four fields");
    }

    accepted(MSG("<Id>04l1</Id>" SOBJ_OPEN "</sObject>"), (size_t) -1, &m,
             "an sObject without fields");
    ok(m.nnotifications == 1 && m.notifications[0].nfields == 0
       && m.notifications[0].fields == NULL,
       "an sObject without fields: none, NULL array");

    /* optional header elements may be absent */
    accepted(MSG("<Id>04l1</Id>" SOBJ_OPEN "</sObject>"), (size_t) -1, &m,
             "no ActionId or URLs");
    ok(m.action_id.len == 0 && m.action_id.data == NULL
       && m.enterprise_url.data == NULL && m.partner_url.data == NULL,
       "no ActionId or URLs: null strings");

    lt_arena_free(&arena);
}


static void
test_namespaces(void)
{
    loyalty_soap_message_t  m;

    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://www.w3.org/2003/05/soap-envelope\">"
             "<soapenv:Body><notifications"
             " xmlns=\"http://soap.sforce.com/2005/09/outbound\">" ORG
             "<Notification><Id>1</Id><sObject/></Notification>"
             ENV_CLOSE, (size_t) -1, "not a SOAP envelope",
             "SOAP 1.2 envelope namespace");
    declined("<Envelope><Body><notifications>" ORG
             "<Notification><Id>1</Id><sObject/></Notification>"
             "</notifications></Body></Envelope>",
             (size_t) -1, "not a SOAP envelope", "no namespaces at all");
    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
             "<soapenv:Body><notifications"
             " xmlns=\"http://soap.sforce.com/2005/09/outbound/\">" ORG
             "<Notification><Id>1</Id><sObject/></Notification>"
             ENV_CLOSE, (size_t) -1, "no notifications",
             "outbound namespace with a trailing slash");
    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
             "<soapenv:Body><notifications>" ORG
             "<Notification><Id>1</Id><sObject/></Notification>"
             "</notifications></soapenv:Body></soapenv:Envelope>",
             (size_t) -1, "no notifications", "notifications without one");
    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
             "<Body><notifications"
             " xmlns=\"http://soap.sforce.com/2005/09/outbound\">" ORG
             "<Notification><Id>1</Id><sObject/></Notification>"
             "</notifications></Body></soapenv:Envelope>",
             (size_t) -1, "no SOAP Body", "Body outside the SOAP namespace");
    declined("<x:Envelope xmlns:x=\"urn:x\"/>", (size_t) -1,
             "not a SOAP envelope", "Envelope in another namespace");
    declined("<soapenv:Envelope><soapenv:Body/></soapenv:Envelope>",
             (size_t) -1, "namespace error", "unbound soapenv prefix");

    /* other prefixes, the default namespace, the partner WSDL's sObject */
    accepted("<E:Envelope"
             " xmlns:E=\"http://schemas.xmlsoap.org/soap/envelope/\">"
             "<E:Body><o:notifications"
             " xmlns:o=\"http://soap.sforce.com/2005/09/outbound\">"
             "<o:OrganizationId>00D1</o:OrganizationId>"
             "<o:Notification><o:Id>04l1</o:Id>"
             "<o:sObject xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\""
             " i:type=\"p:Account\" xmlns:p=\"urn:sobject.partner.soap."
             "sforce.com\"><p:Name>Acme</p:Name><p:Site i:nil=\"true\"/>"
             "</o:sObject></o:Notification>"
             "</o:notifications></E:Body></E:Envelope>",
             (size_t) -1, &m, "other prefixes");

    if (m.nnotifications == 1) {
        lt_str_is(&m.notifications[0].type, "Account",
                  "other prefixes: xsi bound to i");
        field_is(&m.notifications[0], "Name", "Acme",
                 "other prefixes: partner namespace field");
        field_nil(&m.notifications[0], "Site",
                  "other prefixes: i:nil is xsi:nil");
    }

    /* names that do not resolve (libxml2 would keep "zz:Email") */
    declined(MSG("<Id>04l1</Id><sObject><zz:Email>a@b.c</zz:Email>"
                 "</sObject>"),
             (size_t) -1, "namespace error", "unbound field prefix");
    declined(MSG_FIELDS("<sf:Email:x>a@b.c</sf:Email:x>"), (size_t) -1,
             "namespace error", "two colons in a field name");
    declined(MSG_FIELDS("<sf:ExtId__c: n=\"true\"/>"), (size_t) -1,
             "namespace error", "trailing colon (found by fuzz_soap)");
    declined(MSG_FIELDS("<sf:A zz:b=\"1\">a</sf:A>"), (size_t) -1,
             "namespace error", "unbound attribute prefix other than xsi");
    declined("<soapenv:Envelope"
             " xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">"
             "<soapenv:Body><notifications"
             " xmlns=\"http://soap.sforce.com/2005/09/outbound\">" ORG
             "<Notification><Id>1</Id><sObject><xsi:A/></sObject>"
             "</Notification>" ENV_CLOSE,
             (size_t) -1, "namespace error",
             "unbound xsi prefix on an element");
    declined(MSG_FIELDS("<sf:A xsi:nil=\"true\""
                        " xmlns:i=\"http://www.w3.org/2001/XMLSchema-instance\""
                        " i:nil=\"true\"/>"), (size_t) -1,
             "namespace error", "xsi:nil twice under two prefixes");

    accepted(MSG("<Id>04l1</Id><sObject xmlns:sf=\"not a URI\">"
                 "<sf:Email>a@b.c</sf:Email></sObject>"),
             (size_t) -1, &m, "a namespace name that is not a URI");

    if (m.nnotifications == 1 && m.notifications[0].nfields == 1) {
        lt_str_is(&m.notifications[0].fields[0].name, "Email",
                  "a namespace name that is not a URI: local name");
        ok(m.notifications[0].type.len == 0
           && m.notifications[0].type.data == NULL,
           "no xsi:type: type left empty");
    }

    lt_arena_free(&arena);
}


static void
test_not_xml(void)
{
    declined("", 0, "empty body", "empty body");
    declined(" ", (size_t) -1, "malformed XML", "one space");
    declined("\n\r\n\t", (size_t) -1, "malformed XML", "white space only");
    declined("hello", (size_t) -1, "malformed XML", "plain text");
    declined("{\"OrganizationId\":\"00D\"}", (size_t) -1, "malformed XML",
             "JSON");
    declined("<", (size_t) -1, "malformed XML", "a single <");
    declined("<a>", (size_t) -1, "malformed XML", "unclosed element");
    declined("<a></b>", (size_t) -1, "malformed XML", "mismatched tags");
    declined("<a/><b/>", (size_t) -1, "malformed XML", "two roots");
    declined("<a x='1' x='2'/>", (size_t) -1, "malformed XML",
             "duplicate attribute");
    declined("<a>&nbsp;</a>", (size_t) -1, "malformed XML",
             "undeclared entity");
    declined("<a>&#0;</a>", (size_t) -1, "malformed XML",
             "character reference to NUL");
    declined("<a>\0</a>", 8, "malformed XML", "raw NUL byte");
    declined("<?xml version=\"1.0\"?>", (size_t) -1, "malformed XML",
             "a declaration only");
    declined("  <?xml version=\"1.0\"?><a/>", (size_t) -1, "malformed XML",
             "a declaration after white space");
    declined(MSG_FIELDS("<sf:A>x</sf:A>") "<trailing/>", (size_t) -1,
             "malformed XML", "an element after the envelope");
    declined("HTTP/1.1 200 OK\r\n\r\n" MSG_FIELDS(""), (size_t) -1,
             "malformed XML", "text before the envelope");
}


/* every cut of a good body short of its last '>' is refused */

static void
test_truncated(void)
{
    int                      rc;
    char                    *doc;
    size_t                   len, cut, end, bad;
    loyalty_err_t            err;
    loyalty_soap_message_t   m;

    doc = slurp("t/data/salesforce/contacts-3.xml", &len);
    if (!ok(doc != NULL, "truncated: fixture")) {
        return;
    }

    for (end = len; end > 0 && doc[end - 1] != '>'; end--) {
        /* void */
    }

    bad = 0;

    for (cut = 0; cut < end; cut++) {
        rc = parse(doc, cut, &m, &err);

        if (rc != LOYALTY_DECLINED || err.code != LOYALTY_ERR_INPUT
            || !zeroed(&m))
        {
            if (bad++ < 5) {
                diag("  cut at %zu: rc %d, %s", cut, rc, err.msg);
            }
        }

        lt_arena_free(&arena);
    }

    ok(bad == 0, "truncated: all %zu cuts of contacts-3.xml declined", end);

    rc = parse(doc, end, &m, &err);
    ok(rc == LOYALTY_OK && m.nnotifications == 3,
       "truncated: the whole body still parses");

    free(doc);
    lt_arena_free(&arena);
}


static void
test_dtd(void)
{
    loyalty_soap_message_t               m;
    const loyalty_soap_field_t          *f;

    declined("<?xml version=\"1.0\"?>\n"
             "<!DOCTYPE lolz [\n"
             " <!ENTITY lol \"lol\">\n"
             " <!ENTITY lol1 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\n"
             " <!ENTITY lol2 \"&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;\">\n"
             " <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\n"
             " <!ENTITY lol4 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">\n"
             " <!ENTITY lol5 \"&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;\">\n"
             " <!ENTITY lol6 \"&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;\">\n"
             " <!ENTITY lol7 \"&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;\">\n"
             " <!ENTITY lol8 \"&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;\">\n"
             " <!ENTITY lol9 \"&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;\">\n"
             "]>\n"
             MSG_FIELDS("<sf:Email>&lol9;</sf:Email>"),
             (size_t) -1, "DOCTYPE not allowed", "billion laughs");
    declined("<?xml version=\"1.0\"?>\n"
             "<!DOCTYPE soapenv:Envelope [\n"
             " <!ENTITY xxe SYSTEM \"file:///etc/passwd\">\n"
             "]>\n"
             MSG_FIELDS("<sf:Email>&xxe;</sf:Email>"),
             (size_t) -1, "DOCTYPE not allowed", "external entity, file");
    declined("<!DOCTYPE soapenv:Envelope [\n"
             " <!ENTITY xxe SYSTEM \"http://169.254.169.254/latest/\">\n"
             "]>"
             MSG_FIELDS("<sf:Email>&xxe;</sf:Email>"),
             (size_t) -1, "DOCTYPE not allowed", "external entity, http");
    declined("<!DOCTYPE x [ <!ENTITY % p SYSTEM \"file:///etc/passwd\"> %p;"
             " ]>" MSG_FIELDS(""),
             (size_t) -1, "DOCTYPE not allowed", "parameter entity");
    declined("<!DOCTYPE soapenv:Envelope SYSTEM \"file:///etc/passwd\">"
             MSG_FIELDS(""),
             (size_t) -1, "DOCTYPE not allowed", "external DTD");
    declined("<!DOCTYPE soapenv:Envelope>" MSG_FIELDS(""),
             (size_t) -1, "DOCTYPE not allowed", "a bare DOCTYPE");
    declined("<!DOCTYPE soapenv:Envelope [\n"
             " <!ATTLIST sObject xsi:type CDATA \"sf:Contact\">\n"
             "]>" MSG_FIELDS(""),
             (size_t) -1, "DOCTYPE not allowed", "DTD default attributes");
    declined("<!DOCTYPE soapenv:Envelope [ <!ENTITY e \"x\"> ]",
             (size_t) -1, "DOCTYPE not allowed", "DOCTYPE, nothing after");
    declined("<!ENTITY e \"x\">" MSG_FIELDS(""), (size_t) -1,
             "malformed XML", "an ENTITY outside any DOCTYPE");

    /* XInclude is never processed: the element is just a field */
    accepted(MSG_FIELDS("<xi:include"
                        " xmlns:xi=\"http://www.w3.org/2001/XInclude\""
                        " href=\"file:///etc/passwd\" parse=\"text\"/>"),
             (size_t) -1, &m, "XInclude");

    f = m.nnotifications == 1 ? field(&m.notifications[0], "include") : NULL;
    ok(f != NULL && f->value.len == 0,
       "XInclude: not expanded, an empty field named include");

    lt_arena_free(&arena);
}


static void
test_encoding(void)
{
    loyalty_soap_message_t  m;

    static const char  utf16le[] =
        "\xff\xfe<\0s\0o\0a\0p\0e\0n\0v\0:\0E\0n\0v\0";
    static const char  utf16be_nobom[] =
        "\0<\0?\0x\0m\0l\0 \0v\0e\0r\0s\0i\0o\0n\0";
    static const char  ucs4[] = "\0\0\0<\0\0\0a\0\0\0/\0\0\0>";
    static const char  ebcdic[] = "\x4c\x6f\xa7\x94\x93\x40";

    declined("<a>caf\xe9</a>", (size_t) -1, "malformed XML",
             "Latin-1 byte in a UTF-8 body");
    declined(MSG_FIELDS("<sf:LastName>M\xfcller</sf:LastName>"), (size_t) -1,
             "malformed XML", "Latin-1 byte in a field");
    declined(MSG_FIELDS("<sf:A>\xc0\xaf</sf:A>"), (size_t) -1,
             "malformed XML", "overlong UTF-8");
    declined(MSG_FIELDS("<sf:A>\xed\xa0\x80</sf:A>"), (size_t) -1,
             "malformed XML", "UTF-8 encoded surrogate");
    declined(MSG_FIELDS("<sf:A>\xf4\x90\x80\x80</sf:A>"), (size_t) -1,
             "malformed XML", "above U+10FFFF");
    declined(MSG_FIELDS("<sf:A>\xe2\x82</sf:A>"), (size_t) -1,
             "malformed XML", "truncated sequence");
    declined(utf16le, sizeof(utf16le) - 1, "not UTF-8", "UTF-16LE with BOM");
    declined("\xfe\xff\0<", 4, "not UTF-8", "UTF-16BE with BOM");
    declined(utf16be_nobom, sizeof(utf16be_nobom) - 1, "not UTF-8",
             "UTF-16BE without BOM");
    declined(ucs4, sizeof(ucs4) - 1, "not UTF-8", "UCS-4");
    declined(ebcdic, sizeof(ebcdic) - 1, "not UTF-8", "EBCDIC");

    declined("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
             MSG_FIELDS("<sf:A>caf\xe9</sf:A>"), (size_t) -1,
             "encoding \"ISO-8859-1\" declared", "Latin-1 declared");
    declined("<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
             MSG_FIELDS("<sf:A>ascii only</sf:A>"), (size_t) -1,
             "not UTF-8", "Latin-1 declared, ASCII content");
    declined("<?xml version=\"1.0\" encoding=\"UTF-16\"?>" MSG_FIELDS(""),
             (size_t) -1, "not UTF-8", "UTF-16 declared on UTF-8 bytes");
    declined("<?xml version=\"1.0\" encoding = 'UTF-7'?>" MSG_FIELDS(""),
             (size_t) -1, "not UTF-8", "UTF-7 declared, spaced, quoted");

    accepted("<?xml version=\"1.0\" encoding='utf-8'?>"
             MSG_FIELDS("<sf:A>caf\xc3\xa9</sf:A>"), (size_t) -1, &m,
             "utf-8 declared in lower case");
    accepted("<?xml version=\"1.0\" encoding=\"UTF8\"?>" MSG_FIELDS(""),
             (size_t) -1, &m, "UTF8 declared");
    accepted("<?xml version=\"1.0\" standalone=\"yes\"?>" MSG_FIELDS(""),
             (size_t) -1, &m, "no encoding declared");
    accepted("\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
             MSG_FIELDS("<sf:A>\xf0\x9f\x98\x80 \xe4\xb8\xad</sf:A>"),
             (size_t) -1, &m, "UTF-8 BOM, 4-byte and CJK characters");

    if (m.nnotifications == 1) {
        field_is(&m.notifications[0], "A", "\xf0\x9f\x98\x80 \xe4\xb8\xad",
                 "UTF-8 characters kept as bytes");
    }

    lt_arena_free(&arena);
}


static void
test_text(void)
{
    char                                *compact, *pretty;
    size_t                               clen, plen;
    loyalty_soap_message_t               m, c;
    const loyalty_soap_notification_t   *nt;

    accepted(MSG_FIELDS("<sf:A><![CDATA[a&b<c>@x.y]]></sf:A>"
                        "<sf:B>x<![CDATA[&]]>y&lt;z&gt;&quot;&apos;</sf:B>"
                        "<sf:C><![CDATA[]]></sf:C>"
                        "<sf:D>&#x1F600;&#233;&#10;</sf:D>"
                        "<sf:E>  two  spaces  </sf:E>"
                        "<sf:F>line1\r\nline2</sf:F>"
                        "<sf:G>a<!-- hidden -->b<?pi?>c</sf:G>"
                        "<sf:H>]]&gt;</sf:H>"),
             (size_t) -1, &m, "text content");

    if (m.nnotifications == 1) {
        nt = &m.notifications[0];
        field_is(nt, "A", "a&b<c>@x.y", "CDATA content, markup kept as text");
        field_is(nt, "B", "x&y<z>\"'", "CDATA between text, entities");
        field_is(nt, "C", "", "empty CDATA");
        field_is(nt, "D", "\xf0\x9f\x98\x80\xc3\xa9\n",
                 "character references");
        field_is(nt, "E", "  two  spaces  ", "field values are not trimmed");
        field_is(nt, "F", "line1\nline2", "CR LF normalised by XML");
        field_is(nt, "G", "abc", "comments and PIs inside text dropped");
        field_is(nt, "H", "]]>", "escaped ]]>");
    }

    /* identifiers a pretty-printer wrapped are trimmed */
    accepted(ENV_OPEN "<OrganizationId>\n  00D1\n</OrganizationId>"
             "<ActionId> 04k1 </ActionId>"
             "<Notification><Id>\n\t04l1\n</Id>"
             "<sObject xsi:type=\" sf:Lead \" xmlns:sf=\"urn:x\"/>"
             "</Notification>" ENV_CLOSE,
             (size_t) -1, &m, "wrapped identifiers");
    lt_str_is(&m.organization_id, "00D1", "wrapped OrganizationId trimmed");
    lt_str_is(&m.action_id, "04k1", "wrapped ActionId trimmed");

    if (m.nnotifications == 1) {
        lt_str_is(&m.notifications[0].id, "04l1", "wrapped Id trimmed");
        lt_str_is(&m.notifications[0].type, "Lead", "spaced xsi:type");
    }

    /* pretty-printed and compact forms of one message are one message */
    compact = build(7, 0, &clen);
    pretty = build(7, 1, &plen);

    accepted(compact, clen, &c, "compact message");
    accepted(pretty, plen, &m, "pretty-printed message");
    ok(c.nnotifications == 7 && msg_eq(&c, &m),
       "pretty-printed and compact parse alike");
    ok(memchr(compact, '\n', clen) == NULL && plen > clen + 100,
       "the two fixtures do differ in white space");

    free(compact);
    free(pretty);
    lt_arena_free(&arena);
}


static void
test_attributes(void)
{
    loyalty_soap_message_t               m;
    const loyalty_soap_notification_t   *nt;

    accepted(MSG("<Id a=\"1\">04l1</Id>"
                 "<sObject foo=\"bar\" xsi:type=\"sf:Contact\""
                 " xmlns:sf=\"urn:sobject.enterprise.soap.sforce.com\""
                 " xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\""
                 " sf:extra=\"&lt;&amp;&gt;\">"
                 "<sf:Email type=\"work\" xsi:type=\"xsd:string\">a@b.c"
                 "</sf:Email></sObject>"),
             (size_t) -1, &m, "attributes on sObject and fields");

    if (m.nnotifications == 1) {
        nt = &m.notifications[0];
        lt_str_is(&nt->type, "Contact", "attributes: xsi:type still read");
        is_int(nt->nfields, 1, "attributes: attributes are not fields");
        field_is(nt, "Email", "a@b.c", "attributes: field value");
    }

    accepted(MSG("<Id>04l1</Id><sObject xsi:type=\"Contact\"/>"),
             (size_t) -1, &m, "xsi:type without prefix");
    lt_str_is(&m.notifications[0].type, "Contact",
              "xsi:type without prefix: whole value");

    /* not a QName, but no prefix may survive (found by fuzz_soap) */
    accepted(MSG("<Id>04l1</Id><sObject xsi:type=\"s:http://x/y:Lead\"/>"),
             (size_t) -1, &m, "xsi:type with two colons");
    lt_str_is(&m.notifications[0].type, "Lead",
              "xsi:type with two colons: after the last one");

    accepted(MSG("<Id>04l1</Id><sObject xsi:type=\"sf:\"/>"),
             (size_t) -1, &m, "xsi:type with a prefix only");
    ok(m.notifications[0].type.len == 0
       && m.notifications[0].type.data != NULL,
       "xsi:type with a prefix only: empty type");

    accepted(MSG("<Id>04l1</Id><sObject xsi:type=\"\"/>"),
             (size_t) -1, &m, "empty xsi:type");
    ok(m.notifications[0].type.len == 0, "empty xsi:type: empty type");

    accepted(MSG("<Id>04l1</Id><sObject type=\"sf:Contact\"/>"),
             (size_t) -1, &m, "type without xsi");
    ok(m.notifications[0].type.len == 0,
       "type without xsi: not the xsi:type");

    lt_arena_free(&arena);
}


/*
 * libxml2 prints nothing, on fd 2 or anywhere else, whatever the input:
 * stderr goes to a temporary file while bad bodies are parsed.
 */

static void
test_quiet(void)
{
    int                      fd, saved, rc[8];
    FILE                    *tmp;
    size_t                   i;
    struct stat              st;
    loyalty_err_t            err;
    loyalty_soap_message_t   m;

    static const char  *bad[] = {
        "<a></b>",
        "<!DOCTYPE a [ <!ENTITY e SYSTEM \"file:///etc/passwd\"> ]><a>&e;</a>",
        "<a>&undefined;</a>",
        "<a>caf\xe9</a>",
        "<?xml version=\"1.0\" encoding=\"nonsense\"?><a/>",
        "<soapenv:Envelope><x:y/></soapenv:Envelope>",
        "<a xmlns:p=\"not a uri\" p:b=\"1\" xsi:nil=\"true\"/>",
        "<?xml version=\"9.9\"?><a/>"
    };

    fflush(stderr);

    tmp = tmpfile();
    if (tmp == NULL) {
        ok(0, "quiet: tmpfile");
        return;
    }

    fd = dup(fileno(tmp));
    fclose(tmp);

    saved = dup(2);

    if (fd < 0 || saved < 0 || dup2(fd, 2) < 0) {
        ok(0, "quiet: redirect stderr");
        return;
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rc[i] = parse(bad[i], (size_t) -1, &m, &err);
    }

    fflush(stderr);
    dup2(saved, 2);
    close(saved);

    ok(fstat(fd, &st) == 0 && st.st_size == 0,
       "quiet: nothing written to stderr by %zu bad bodies", i);
    close(fd);

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rc[i] != LOYALTY_DECLINED) {
            break;
        }
    }

    ok(i == sizeof(bad) / sizeof(bad[0]), "quiet: every one declined");

    lt_arena_free(&arena);
}


/*
 * Every allocation may fail: LOYALTY_ERROR with LOYALTY_ERR_NOMEM and
 * *out zero, or LOYALTY_OK with the same message as without failures.
 */

static void
nomem_parse(const char *text, size_t len, const char *name)
{
    int                      rc, bad;
    size_t                   fail_at, calls;
    lt_arena_t               ref_arena;
    loyalty_err_t            err;
    loyalty_alloc_t          saved;
    loyalty_soap_message_t   m, ref;

    /* the reference result, in an arena of its own */
    memset(&ref_arena, 0, sizeof(lt_arena_t));
    saved = alloc;
    alloc.ctx = &ref_arena;
    rc = parse(text, len, &ref, &err);
    alloc = saved;

    if (!ok(rc == LOYALTY_OK, "nomem: %s fixture parses", name)) {
        lt_arena_free(&ref_arena);
        return;
    }

    bad = 0;

    for (fail_at = 1; fail_at < 100000; fail_at++) {
        lt_arena_free(&arena);
        arena.fail_at = fail_at;

        rc = parse(text, len, &m, &err);
        calls = arena.calls;

        if (rc == LOYALTY_OK) {
            if (!msg_eq(&m, &ref)) {
                diag("  fail_at %zu: OK with a different message", fail_at);
                bad++;
            }

            if (calls < fail_at) {
                break;          /* the failure point was never reached */
            }

            diag("  fail_at %zu: OK although allocation %zu failed",
                 fail_at, fail_at);
            bad++;
            continue;
        }

        if (rc != LOYALTY_ERROR || err.code != LOYALTY_ERR_NOMEM
            || err.msg[0] == '\0' || !zeroed(&m))
        {
            diag("  fail_at %zu: rc %d, code %d, \"%s\", out %s", fail_at,
                 rc, err.code, err.msg, zeroed(&m) ? "zero" : "set");
            bad++;
        }
    }

    ok(bad == 0 && fail_at > 1 && fail_at < 100000,
       "nomem: %s: ERROR/NOMEM or the whole message at each of %zu "
       "allocations", name, fail_at - 1);

    lt_arena_free(&arena);
    lt_arena_free(&ref_arena);
}


static void
test_nomem(void)
{
    char    *doc;
    size_t   len;

    nomem_parse(apis_example, strlen(apis_example), "apis.md example");

    doc = slurp("t/data/salesforce/contact-1.xml", &len);
    if (doc != NULL) {
        nomem_parse(doc, len, "contact-1.xml");
        free(doc);
    }

    doc = slurp("t/data/salesforce/contacts-3.xml", &len);
    if (doc != NULL) {
        nomem_parse(doc, len, "contacts-3.xml");
        free(doc);
    }

    doc = build(100, 0, &len);
    nomem_parse(doc, len, "100 notifications");
    free(doc);

    nomem_parse(MSG_FIELDS("<sf:A><![CDATA[x]]>y</sf:A><sf:B xsi:nil=\"1\"/>"
                           "<sf:C></sf:C>"),
                (size_t) -1, "CDATA, nil and empty fields");
}


static void *
xml_malloc(size_t size)
{
    if (xml_fail_at && ++xml_calls == xml_fail_at) {
        return NULL;
    }

    return malloc(size);
}


static void *
xml_realloc(void *p, size_t size)
{
    if (xml_fail_at && ++xml_calls == xml_fail_at) {
        return NULL;
    }

    return realloc(p, size);
}


static char *
xml_strdup(const char *s)
{
    if (xml_fail_at && ++xml_calls == xml_fail_at) {
        return NULL;
    }

    return strdup(s);
}


/*
 * libxml2 running out of memory: LOYALTY_ERROR with ERR_NOMEM, or the
 * whole message, never a different one.  Some failures libxml2 itself
 * reports as bad input (a failed dictionary lookup reads as an empty
 * namespace name): DECLINED is tolerated, it is the safe side (no ack,
 * Salesforce retries).  LSan checks nothing leaks on any of these paths.
 */

static void
xml_nomem(const char *text, size_t len, const char *name)
{
    int                      rc, bad;
    size_t                   fail_at, declines;
    loyalty_err_t            err;
    loyalty_soap_message_t   m, ref;

    rc = parse(text, len, &ref, &err);

    if (!ok(rc == LOYALTY_OK, "xml nomem: %s fixture parses", name)) {
        return;
    }

    bad = 0;
    declines = 0;

    for (fail_at = 1; fail_at < 100000; fail_at++) {
        xml_calls = 0;
        xml_fail_at = fail_at;

        rc = parse(text, len, &m, &err);

        xml_fail_at = 0;

        if (xml_calls < fail_at) {
            if (rc != LOYALTY_OK || !msg_eq(&m, &ref)) {
                bad++;
            }

            break;
        }

        if (rc == LOYALTY_OK) {
            if (!msg_eq(&m, &ref)) {
                diag("  fail_at %zu: OK with a different message", fail_at);
                bad++;
            }

        } else if (rc == LOYALTY_DECLINED) {
            declines++;

        } else if (rc != LOYALTY_ERROR || err.code != LOYALTY_ERR_NOMEM
                   || !zeroed(&m))
        {
            diag("  fail_at %zu: rc %d, code %d, \"%s\"", fail_at, rc,
                 err.code, err.msg);
            bad++;
        }
    }

    if (declines) {
        diag("  %s: %zu of %zu libxml2 failures read as bad input", name,
             declines, fail_at - 1);
    }

    ok(bad == 0 && fail_at > 1 && fail_at < 100000,
       "xml nomem: %s: ERROR/NOMEM or the same message at each of %zu "
       "libxml2 allocations", name, fail_at - 1);

    lt_arena_free(&arena);
}


static void
test_xml_nomem(void)
{
    char    *doc;
    size_t   len;

    if (xmlMemSetup(free, xml_malloc, xml_realloc, xml_strdup) != 0) {
        ok(0, "xml nomem: xmlMemSetup");
        return;
    }

    xml_nomem(apis_example, strlen(apis_example), "apis.md example");

    doc = slurp("t/data/salesforce/contacts-3.xml", &len);
    if (doc != NULL) {
        xml_nomem(doc, len, "contacts-3.xml");
        free(doc);
    }

    xml_nomem(MSG_FIELDS("<sf:A><![CDATA[x]]>y&amp;</sf:A>"
                         "<sf:B xsi:nil=\"1\"/>"),
              (size_t) -1, "CDATA, references and nil");

    xmlMemSetup(free, malloc, realloc, strdup);
}


int
main(void)
{
    loyalty_soap_init();

    test_ack();
    test_example();
    test_files();
    test_limits();
    test_nil();
    test_structure();
    test_namespaces();
    test_not_xml();
    test_truncated();
    test_dtd();
    test_encoding();
    test_text();
    test_attributes();
    test_quiet();
    test_nomem();
    test_xml_nomem();

    lt_arena_free(&arena);

    return done_testing();
}
