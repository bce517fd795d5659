/*
 * Copyright (C) loyalty-edge authors
 *
 * libxml2 builds a DOM of the body with everything that reaches outside
 * the document switched off; the tree is checked against the outbound
 * message shape, copied into the caller's allocator and freed before
 * returning, so nothing libxml2 allocated outlives the call.
 */


#include <string.h>
#include <strings.h>
#include <libxml/encoding.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "loyalty_soap.h"


#define LOYALTY_SOAP_NS_XSI  "http://www.w3.org/2001/XMLSchema-instance"

/*
 * What is left out matters as much: no XML_PARSE_NOENT (entities are
 * not substituted), no DTDLOAD, DTDATTR or DTDVALID, no XINCLUDE, no
 * HUGE (libxml2 keeps its depth, name and text length limits).
 * IGNORE_ENC: the body is read as UTF-8 whatever it declares, so no
 * converter runs on it; loyalty_soap_utf8() refuses other declarations.
 */
#define LOYALTY_SOAP_XML_OPTIONS                                             \
    (XML_PARSE_NONET | XML_PARSE_NOCDATA | XML_PARSE_IGNORE_ENC              \
     | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_COMPACT)

/*
 * libxml2 reports a text node over XML_MAX_TEXT_LENGTH, when it grows by
 * pieces (text, a reference, more text), as running out of memory; no
 * text node can be that long in a body that is not, so such bodies are
 * refused first.  Outbound messages are far smaller.
 */
#define LOYALTY_SOAP_MAX_SIZE  XML_MAX_TEXT_LENGTH

#define loyalty_soap_blank(c)                                                \
    ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')


typedef struct {
    unsigned        doctype:1;        /* a DOCTYPE was met: refused */
    unsigned        nomem:1;          /* libxml2 ran out of memory */
    int             code;             /* the first well-formedness error */
    int             line;
    int             ns_code;          /* the first namespace error */
    int             ns_line;
} loyalty_soap_state_t;


static int loyalty_soap_utf8(const loyalty_str_t *xml, loyalty_err_t *err);
static int loyalty_soap_read(const loyalty_str_t *xml, xmlDocPtr *doc,
    loyalty_err_t *err);
static void loyalty_soap_on_error(void *data, xmlErrorPtr e);
static void loyalty_soap_on_global(void *data, xmlErrorPtr e);
static void loyalty_soap_on_generic(void *data, const char *msg, ...);
static void loyalty_soap_on_dtd(void *data, const xmlChar *name,
    const xmlChar *public_id, const xmlChar *system_id);
static void loyalty_soap_on_entity(void *data, const xmlChar *name,
    int type, const xmlChar *public_id, const xmlChar *system_id,
    xmlChar *content);
static int loyalty_soap_message(xmlDocPtr doc, const loyalty_alloc_t *a,
    loyalty_soap_message_t *out, loyalty_err_t *err);
static int loyalty_soap_notification(xmlNodePtr node, size_t i,
    const loyalty_alloc_t *a, loyalty_soap_notification_t *nt,
    loyalty_err_t *err);
static int loyalty_soap_fields(xmlNodePtr sobject, const loyalty_alloc_t *a,
    loyalty_soap_notification_t *nt, loyalty_err_t *err);
static int loyalty_soap_one(xmlNodePtr *slot, xmlNodePtr node,
    const char *what, size_t i, loyalty_err_t *err);
static xmlNodePtr loyalty_soap_next(xmlNodePtr node);
static int loyalty_soap_is(xmlNodePtr node, const char *ns,
    const char *name);
static int loyalty_soap_in(xmlNodePtr node, const char *ns);
static xmlAttrPtr loyalty_soap_xsi(xmlNodePtr node, const char *name);
static int loyalty_soap_nil(xmlNodePtr node);
static int loyalty_soap_text(xmlNodePtr list, const loyalty_alloc_t *a,
    loyalty_str_t *s, int trim);
static size_t loyalty_soap_text_len(xmlNodePtr list);
static u_char *loyalty_soap_text_copy(xmlNodePtr list, u_char *p);
static int loyalty_soap_nomem(loyalty_err_t *err);


const loyalty_str_t  loyalty_soap_ack = loyalty_string(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
    "<soapenv:Envelope"
    " xmlns:soapenv=\"" LOYALTY_SOAP_NS_ENVELOPE "\">"
    "<soapenv:Body>"
    "<notificationsResponse xmlns=\"" LOYALTY_SOAP_NS_OUTBOUND "\">"
    "<Ack>true</Ack>"
    "</notificationsResponse>"
    "</soapenv:Body>"
    "</soapenv:Envelope>");


void
loyalty_soap_init(void)
{
    /* idempotent; libxml2 2.9 guards the first call with a mutex */
    xmlInitParser();
}


int
loyalty_soap_parse(const loyalty_str_t *xml, const loyalty_alloc_t *a,
    loyalty_soap_message_t *out, loyalty_err_t *err)
{
    int         rc;
    xmlDocPtr   doc;

    memset(out, 0, sizeof(loyalty_soap_message_t));

    if (xml->len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "empty body");
        return LOYALTY_DECLINED;
    }

    if (xml->len > LOYALTY_SOAP_MAX_SIZE) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "body larger than %d bytes", LOYALTY_SOAP_MAX_SIZE);
        return LOYALTY_DECLINED;
    }

    if (loyalty_soap_utf8(xml, err) != LOYALTY_OK) {
        return LOYALTY_DECLINED;
    }

    rc = loyalty_soap_read(xml, &doc, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    rc = loyalty_soap_message(doc, a, out, err);

    xmlFreeDoc(doc);

    if (rc != LOYALTY_OK) {
        /* no half-filled message: what was allocated stays in the pool */
        memset(out, 0, sizeof(loyalty_soap_message_t));
    }

    return rc;
}


/*
 * Salesforce sends UTF-8.  Anything else is refused before libxml2 sees
 * it, so that no iconv converter ever runs on a request body: UTF-16 and
 * UCS-4 (byte order marks, or NULs around the first '<'), EBCDIC, and an
 * XML declaration naming another encoding.  The bytes themselves are
 * validated by libxml2, which reads them as UTF-8 (XML_PARSE_IGNORE_ENC).
 * This scan only decides refusal: a declaration it misreads is one
 * libxml2 refuses as malformed anyway.
 */

static int
loyalty_soap_utf8(const loyalty_str_t *xml, loyalty_err_t *err)
{
    size_t           n;
    u_char           quote;
    const char      *cs;
    const u_char    *p, *last, *end, *name;
    xmlCharEncoding  enc;

    enc = xmlDetectCharEncoding(xml->data, xml->len < 4 ? (int) xml->len : 4);

    if (enc != XML_CHAR_ENCODING_NONE && enc != XML_CHAR_ENCODING_UTF8) {
        cs = xmlGetCharEncodingName(enc);
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "not UTF-8 (%s detected)",
                        cs ? cs : "another encoding");
        return LOYALTY_DECLINED;
    }

    p = xml->data;
    last = p + xml->len;

    if (last - p >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
        p += 3;
    }

    if (last - p < 6 || memcmp(p, "<?xml", 5) != 0
        || !loyalty_soap_blank(p[5]))
    {
        return LOYALTY_OK;              /* no declaration: UTF-8 */
    }

    /* the declaration ends at the first "?>" */
    for (end = p + 5; end + 1 < last; end++) {
        if (end[0] == '?' && end[1] == '>') {
            break;
        }
    }

    for (p += 5; end - p > 8; p++) {
        if (!loyalty_soap_blank(p[0]) || memcmp(p + 1, "encoding", 8) != 0) {
            continue;
        }

        for (p += 9; p < end && loyalty_soap_blank(*p); p++) { /* void */ }

        if (p == end || *p++ != '=') {
            return LOYALTY_OK;
        }

        for ( /* void */ ; p < end && loyalty_soap_blank(*p); p++) {
            /* void */
        }

        if (p == end || (*p != '"' && *p != '\'')) {
            return LOYALTY_OK;
        }

        quote = *p++;
        name = p;

        while (p < end && *p != quote) {
            p++;
        }

        n = p - name;

        if ((n == 5 && strncasecmp((const char *) name, "UTF-8", 5) == 0)
            || (n == 4 && strncasecmp((const char *) name, "UTF8", 4) == 0))
        {
            return LOYALTY_OK;
        }

        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "not UTF-8 (encoding \"%.*s\" declared)",
                        n > 32 ? 32 : (int) n, name);
        return LOYALTY_DECLINED;
    }

    return LOYALTY_OK;
}


/*
 * The parse proper.  Errors go to a per-context structured handler that
 * only records the first one.  libxml2's per-thread generic and
 * structured handlers, which get the errors raised without a parser
 * context, are swapped for the duration of the call and put back, so
 * nothing reaches stderr and any other libxml2 user in the process keeps
 * its own: tree.c reports running out of memory that way, and then the
 * SAX2 builder carries on without, say, a namespace declaration.
 */

static int
loyalty_soap_read(const loyalty_str_t *xml, xmlDocPtr *doc,
    loyalty_err_t *err)
{
    int                     wf, code;
    void                   *gctx, *sctx;
    xmlDocPtr               d;
    xmlParserCtxtPtr        ctxt;
    xmlGenericErrorFunc     gfunc;
    xmlStructuredErrorFunc  sfunc;
    loyalty_soap_state_t    st;

    *doc = NULL;

    loyalty_soap_init();

    gfunc = xmlGenericError;
    gctx = xmlGenericErrorContext;
    sfunc = xmlStructuredError;
    sctx = xmlStructuredErrorContext;

    memset(&st, 0, sizeof(loyalty_soap_state_t));

    xmlSetGenericErrorFunc(NULL, loyalty_soap_on_generic);
    xmlSetStructuredErrorFunc(&st, loyalty_soap_on_global);

    ctxt = xmlCreateMemoryParserCtxt((const char *) xml->data,
                                     (int) xml->len);
    if (ctxt == NULL) {
        xmlSetGenericErrorFunc(gctx, gfunc);
        xmlSetStructuredErrorFunc(sctx, sfunc);
        return loyalty_soap_nomem(err);
    }

    (void) xmlCtxtUseOptions(ctxt, LOYALTY_SOAP_XML_OPTIONS);

    /* whatever process-wide defaults another libxml2 user has set */
    ctxt->replaceEntities = 0;
    ctxt->loadsubset = 0;
    ctxt->validate = 0;

    ctxt->_private = &st;

    /* ctxt->sax is this context's own copy of the SAX2 handler */
    ctxt->sax->serror = loyalty_soap_on_error;
    ctxt->sax->internalSubset = loyalty_soap_on_dtd;
    ctxt->sax->externalSubset = loyalty_soap_on_dtd;
    ctxt->sax->entityDecl = loyalty_soap_on_entity;

    (void) xmlParseDocument(ctxt);

    d = ctxt->myDoc;
    ctxt->myDoc = NULL;
    wf = ctxt->wellFormed;
    code = ctxt->errNo;

    xmlFreeParserCtxt(ctxt);

    xmlSetGenericErrorFunc(gctx, gfunc);
    xmlSetStructuredErrorFunc(sctx, sfunc);

    if (st.nomem || code == XML_ERR_NO_MEMORY) {
        xmlFreeDoc(d);
        return loyalty_soap_nomem(err);
    }

    if (st.doctype) {
        xmlFreeDoc(d);
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "DOCTYPE not allowed in a SOAP message");
        return LOYALTY_DECLINED;
    }

    if (!wf || d == NULL) {
        xmlFreeDoc(d);

        if (st.code == 0) {
            st.code = code;
        }

        /* libxml2's own text quotes the input: it is kept out of logs */
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "malformed XML at line %d (libxml2 error %d)",
                        st.line, st.code);
        return LOYALTY_DECLINED;
    }

    if (st.ns_code) {
        xmlFreeDoc(d);
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "namespace error at line %d (libxml2 error %d)",
                        st.ns_line, st.ns_code);
        return LOYALTY_DECLINED;
    }

    *doc = d;

    return LOYALTY_OK;
}


static void
loyalty_soap_on_error(void *data, xmlErrorPtr e)
{
    xmlParserCtxtPtr       ctxt;
    loyalty_soap_state_t  *st;

    ctxt = data;

    if (ctxt == NULL || ctxt->_private == NULL || e == NULL) {
        return;
    }

    st = ctxt->_private;

    if (e->code == XML_ERR_NO_MEMORY) {
        st->nomem = 1;
    }

    /*
     * Namespace errors do not stop libxml2, which then keeps prefixed
     * names whole ("sf:Email", "a:b:c"); they are refused here, but for
     * an xsi: attribute prefix left unbound (see loyalty_soap_xsi()) and
     * namespace names that are not valid URIs, only ever compared as
     * strings.
     */
    if (e->domain == XML_FROM_NAMESPACE) {
        if (e->level < XML_ERR_ERROR || e->code == XML_WAR_NS_URI
            || (e->code == XML_NS_ERR_UNDEFINED_NAMESPACE
                && e->str1 != NULL && strcmp(e->str1, "xsi") == 0
                && e->str3 != NULL))     /* str3: the attribute's element */
        {
            return;
        }

        if (st->ns_code == 0) {
            st->ns_code = e->code;
            st->ns_line = e->line;
        }

        return;
    }

    if (st->code == 0 && e->level >= XML_ERR_ERROR) {
        st->code = e->code;
        st->line = e->line;
    }
}


/* errors raised without a parser context: only running out of memory */

static void
loyalty_soap_on_global(void *data, xmlErrorPtr e)
{
    loyalty_soap_state_t  *st;

    st = data;

    if (st != NULL && e != NULL && e->code == XML_ERR_NO_MEMORY) {
        st->nomem = 1;
    }
}


static void
loyalty_soap_on_generic(void *data, const char *msg, ...)
{
    (void) data;
    (void) msg;
}


/*
 * A DOCTYPE is the only way into entity declarations, external subsets
 * and their expansion (billion laughs, file:// or http:// entities).
 * Salesforce never sends one, so the parse stops at its name, before
 * the internal subset is read.
 */

static void
loyalty_soap_on_dtd(void *data, const xmlChar *name,
    const xmlChar *public_id, const xmlChar *system_id)
{
    xmlParserCtxtPtr       ctxt;
    loyalty_soap_state_t  *st;

    (void) name;
    (void) public_id;
    (void) system_id;

    ctxt = data;
    st = ctxt->_private;
    st->doctype = 1;

    xmlStopParser(ctxt);
}


/* unreachable past loyalty_soap_on_dtd(); kept as a second lock */

static void
loyalty_soap_on_entity(void *data, const xmlChar *name, int type,
    const xmlChar *public_id, const xmlChar *system_id, xmlChar *content)
{
    (void) type;
    (void) content;

    loyalty_soap_on_dtd(data, name, public_id, system_id);
}


static int
loyalty_soap_message(xmlDocPtr doc, const loyalty_alloc_t *a,
    loyalty_soap_message_t *out, loyalty_err_t *err)
{
    size_t       n, i;
    xmlNodePtr   root, body, notifications, cur, *slot;
    xmlNodePtr   org, action, enterprise, partner;
    const char  *name;

    root = xmlDocGetRootElement(doc);

    if (root == NULL
        || !loyalty_soap_is(root, LOYALTY_SOAP_NS_ENVELOPE, "Envelope"))
    {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "not a SOAP envelope");
        return LOYALTY_DECLINED;
    }

    /*
     * Singletons found twice are refused rather than one picked: another
     * reader of the same bytes (a proxy, a log) might pick the other.
     */

    body = NULL;

    for (cur = loyalty_soap_next(root->children);
         cur != NULL;
         cur = loyalty_soap_next(cur->next))
    {
        if (loyalty_soap_is(cur, LOYALTY_SOAP_NS_ENVELOPE, "Body")
            && loyalty_soap_one(&body, cur, "SOAP Body", 0, err)
               != LOYALTY_OK)
        {
            return LOYALTY_DECLINED;
        }
    }

    if (body == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "no SOAP Body");
        return LOYALTY_DECLINED;
    }

    notifications = NULL;

    for (cur = loyalty_soap_next(body->children);
         cur != NULL;
         cur = loyalty_soap_next(cur->next))
    {
        if (loyalty_soap_is(cur, LOYALTY_SOAP_NS_OUTBOUND, "notifications")
            && loyalty_soap_one(&notifications, cur, "notifications", 0, err)
               != LOYALTY_OK)
        {
            return LOYALTY_DECLINED;
        }
    }

    if (notifications == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "not an outbound message: no notifications element");
        return LOYALTY_DECLINED;
    }

    /* the shape first, then the copies */

    org = action = enterprise = partner = NULL;
    n = 0;

    for (cur = loyalty_soap_next(notifications->children);
         cur != NULL;
         cur = loyalty_soap_next(cur->next))
    {
        if (!loyalty_soap_in(cur, LOYALTY_SOAP_NS_OUTBOUND)) {
            continue;
        }

        name = (const char *) cur->name;

        if (strcmp(name, "Notification") == 0) {
            if (++n > LOYALTY_SOAP_MAX_NOTIFICATIONS) {
                loyalty_err_set(err, LOYALTY_ERR_INPUT,
                                "more than %d notifications",
                                LOYALTY_SOAP_MAX_NOTIFICATIONS);
                return LOYALTY_DECLINED;
            }

            continue;
        }

        /* SessionId, a live session token, is never looked at */

        slot = (strcmp(name, "OrganizationId") == 0) ? &org
               : (strcmp(name, "ActionId") == 0) ? &action
               : (strcmp(name, "EnterpriseUrl") == 0) ? &enterprise
               : (strcmp(name, "PartnerUrl") == 0) ? &partner
               : NULL;

        if (slot != NULL
            && loyalty_soap_one(slot, cur, name, 0, err) != LOYALTY_OK)
        {
            return LOYALTY_DECLINED;
        }
    }

    if (org == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "no OrganizationId");
        return LOYALTY_DECLINED;
    }

    /*
     * A message with nothing to acknowledge is not one Salesforce sends;
     * acking it would only confirm to a prober that the endpoint and the
     * organization id are right.
     */
    if (n == 0) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "no Notification");
        return LOYALTY_DECLINED;
    }

    if (loyalty_soap_text(org->children, a, &out->organization_id, 1)
        != LOYALTY_OK)
    {
        return loyalty_soap_nomem(err);
    }

    if (out->organization_id.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "empty OrganizationId");
        return LOYALTY_DECLINED;
    }

    if ((action != NULL
         && loyalty_soap_text(action->children, a, &out->action_id, 1)
            != LOYALTY_OK)
        || (enterprise != NULL
            && loyalty_soap_text(enterprise->children, a,
                                 &out->enterprise_url, 1)
               != LOYALTY_OK)
        || (partner != NULL
            && loyalty_soap_text(partner->children, a, &out->partner_url, 1)
               != LOYALTY_OK))
    {
        return loyalty_soap_nomem(err);
    }

    out->notifications = a->alloc(a->ctx,
                                  n * sizeof(loyalty_soap_notification_t));
    if (out->notifications == NULL) {
        return loyalty_soap_nomem(err);
    }

    memset(out->notifications, 0, n * sizeof(loyalty_soap_notification_t));

    i = 0;

    for (cur = loyalty_soap_next(notifications->children);
         cur != NULL;
         cur = loyalty_soap_next(cur->next))
    {
        if (!loyalty_soap_is(cur, LOYALTY_SOAP_NS_OUTBOUND, "Notification")) {
            continue;
        }

        if (loyalty_soap_notification(cur, i + 1, a, &out->notifications[i],
                                      err)
            != LOYALTY_OK)
        {
            return err->code == LOYALTY_ERR_NOMEM ? LOYALTY_ERROR
                                                  : LOYALTY_DECLINED;
        }

        i++;
    }

    out->nnotifications = n;

    return LOYALTY_OK;
}


/* i counts from 1, as a person reading the error would */

static int
loyalty_soap_notification(xmlNodePtr node, size_t i,
    const loyalty_alloc_t *a, loyalty_soap_notification_t *nt,
    loyalty_err_t *err)
{
    size_t       n;
    xmlAttrPtr   type;
    xmlNodePtr   cur, id, sobject;

    id = sobject = NULL;

    for (cur = loyalty_soap_next(node->children);
         cur != NULL;
         cur = loyalty_soap_next(cur->next))
    {
        if ((loyalty_soap_is(cur, LOYALTY_SOAP_NS_OUTBOUND, "Id")
             && loyalty_soap_one(&id, cur, "Id", i, err) != LOYALTY_OK)
            || (loyalty_soap_is(cur, LOYALTY_SOAP_NS_OUTBOUND, "sObject")
                && loyalty_soap_one(&sobject, cur, "sObject", i, err)
                   != LOYALTY_OK))
        {
            return LOYALTY_DECLINED;
        }
    }

    if (id == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "notification %zu has no Id",
                        i);
        return LOYALTY_DECLINED;
    }

    /* acking a notification without its record would lose the record */
    if (sobject == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "notification %zu has no sObject", i);
        return LOYALTY_DECLINED;
    }

    if (loyalty_soap_text(id->children, a, &nt->id, 1) != LOYALTY_OK) {
        return loyalty_soap_nomem(err);
    }

    if (nt->id.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "notification %zu has an empty Id", i);
        return LOYALTY_DECLINED;
    }

    /* xsi:type="sf:Contact": the QName's local part */
    type = loyalty_soap_xsi(sobject, "type");

    if (type != NULL) {
        if (loyalty_soap_text(type->children, a, &nt->type, 1)
            != LOYALTY_OK)
        {
            return loyalty_soap_nomem(err);
        }

        /* after the last colon: no prefix left, even of a bad QName */
        for (n = nt->type.len; n > 0; n--) {
            if (nt->type.data[n - 1] == ':') {
                nt->type.data += n;
                nt->type.len -= n;
                break;
            }
        }
    }

    return loyalty_soap_fields(sobject, a, nt, err);
}


static int
loyalty_soap_fields(xmlNodePtr sobject, const loyalty_alloc_t *a,
    loyalty_soap_notification_t *nt, loyalty_err_t *err)
{
    size_t                 n;
    xmlNodePtr             cur;
    loyalty_soap_field_t  *f;

    n = 0;

    for (cur = loyalty_soap_next(sobject->children);
         cur != NULL;
         cur = loyalty_soap_next(cur->next))
    {
        n++;
    }

    if (n == 0) {
        return LOYALTY_OK;
    }

    nt->fields = a->alloc(a->ctx, n * sizeof(loyalty_soap_field_t));
    if (nt->fields == NULL) {
        return loyalty_soap_nomem(err);
    }

    memset(nt->fields, 0, n * sizeof(loyalty_soap_field_t));

    f = nt->fields;

    for (cur = loyalty_soap_next(sobject->children);
         cur != NULL;
         cur = loyalty_soap_next(cur->next), f++)
    {
        /* the local name: namespace errors were refused */
        f->name.len = strlen((const char *) cur->name);
        f->name.data = loyalty_alloc_copy(a, cur->name, f->name.len);
        if (f->name.data == NULL) {
            return loyalty_soap_nomem(err);
        }

        /* a nil field has no value, whatever text it carries */
        if (loyalty_soap_nil(cur)) {
            f->nil = 1;
            continue;
        }

        /* values are kept byte for byte: white space may be data */
        if (loyalty_soap_text(cur->children, a, &f->value, 0) != LOYALTY_OK) {
            return loyalty_soap_nomem(err);
        }
    }

    nt->nfields = n;

    return LOYALTY_OK;
}


/* the first node in *slot; a second one is refused */

static int
loyalty_soap_one(xmlNodePtr *slot, xmlNodePtr node, const char *what,
    size_t i, loyalty_err_t *err)
{
    if (*slot == NULL) {
        *slot = node;
        return LOYALTY_OK;
    }

    if (i) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "notification %zu has more than one %s", i, what);

    } else {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "more than one %s", what);
    }

    return LOYALTY_DECLINED;
}


/* node itself or its first following sibling that is an element */

static xmlNodePtr
loyalty_soap_next(xmlNodePtr node)
{
    while (node != NULL && node->type != XML_ELEMENT_NODE) {
        node = node->next;
    }

    return node;
}


static int
loyalty_soap_is(xmlNodePtr node, const char *ns, const char *name)
{
    return loyalty_soap_in(node, ns)
           && strcmp((const char *) node->name, name) == 0;
}


static int
loyalty_soap_in(xmlNodePtr node, const char *ns)
{
    return node->ns != NULL && node->ns->href != NULL
           && strcmp((const char *) node->ns->href, ns) == 0;
}


/*
 * An attribute in the XML Schema instance namespace.  Salesforce binds
 * xsi on the Envelope, but its documentation, and apis.md, abridge the
 * message to <SessionId xsi:nil="true"/> with the prefix unbound;
 * libxml2 reports that as a namespace error, not a fatal one, and keeps
 * the qualified name, which is taken for the same attribute.
 */

static xmlAttrPtr
loyalty_soap_xsi(xmlNodePtr node, const char *name)
{
    xmlAttrPtr   attr;
    const char  *an;

    for (attr = node->properties; attr != NULL; attr = attr->next) {
        an = (const char *) attr->name;

        if (attr->ns != NULL) {
            if (attr->ns->href != NULL
                && strcmp((const char *) attr->ns->href,
                          LOYALTY_SOAP_NS_XSI) == 0
                && strcmp(an, name) == 0)
            {
                return attr;
            }

            continue;
        }

        if (strncmp(an, "xsi:", 4) == 0 && strcmp(an + 4, name) == 0) {
            return attr;
        }
    }

    return NULL;
}


/* xsi:nil is an xs:boolean: "true" or "1", white space collapsed */

static int
loyalty_soap_nil(xmlNodePtr node)
{
    u_char      buf[8], *p, *last;
    size_t      len;
    xmlAttrPtr  attr;

    attr = loyalty_soap_xsi(node, "nil");
    if (attr == NULL) {
        return 0;
    }

    len = loyalty_soap_text_len(attr->children);
    if (len >= sizeof(buf)) {
        return 0;
    }

    last = loyalty_soap_text_copy(attr->children, buf);
    p = buf;

    while (p < last && loyalty_soap_blank(*p)) {
        p++;
    }

    while (last > p && loyalty_soap_blank(last[-1])) {
        last--;
    }

    len = last - p;

    return (len == 4 && memcmp(p, "true", 4) == 0)
           || (len == 1 && *p == '1');
}


/*
 * The text of a node list (an element's or an attribute's children),
 * entities already decoded by libxml2, copied NUL-terminated into the
 * caller's allocator; trim drops XML white space at both ends, for
 * identifiers and URLs that a pretty-printer might have wrapped.
 */

static int
loyalty_soap_text(xmlNodePtr list, const loyalty_alloc_t *a,
    loyalty_str_t *s, int trim)
{
    u_char  *buf, *p, *last;
    size_t   len;

    len = loyalty_soap_text_len(list);

    buf = a->alloc(a->ctx, len + 1);
    if (buf == NULL) {
        return LOYALTY_ERROR;
    }

    last = loyalty_soap_text_copy(list, buf);
    p = buf;

    if (trim) {
        while (p < last && loyalty_soap_blank(*p)) {
            p++;
        }

        while (last > p && loyalty_soap_blank(last[-1])) {
            last--;
        }
    }

    *last = '\0';

    s->data = p;
    s->len = last - p;

    return LOYALTY_OK;
}


static size_t
loyalty_soap_text_len(xmlNodePtr list)
{
    size_t      len;
    xmlNodePtr  t;

    len = 0;

    for (t = list; t != NULL; t = t->next) {
        if ((t->type == XML_TEXT_NODE || t->type == XML_CDATA_SECTION_NODE)
            && t->content != NULL)
        {
            len += strlen((const char *) t->content);
        }
    }

    return len;
}


/* copies what loyalty_soap_text_len() counted; returns the end */

static u_char *
loyalty_soap_text_copy(xmlNodePtr list, u_char *p)
{
    size_t      len;
    xmlNodePtr  t;

    for (t = list; t != NULL; t = t->next) {
        if ((t->type == XML_TEXT_NODE || t->type == XML_CDATA_SECTION_NODE)
            && t->content != NULL)
        {
            len = strlen((const char *) t->content);
            memcpy(p, t->content, len);
            p += len;
        }
    }

    return p;
}


static int
loyalty_soap_nomem(loyalty_err_t *err)
{
    loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");

    return LOYALTY_ERROR;
}
