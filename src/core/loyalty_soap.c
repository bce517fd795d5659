/*
 * Copyright (C) loyalty-edge authors
 *
 * libxml2's SAX2 parser reads the body with everything that reaches
 * outside the document switched off; no tree is built.  A small state
 * machine over the element nesting keeps what the outbound message shape
 * names and copies it into the caller's allocator as each element ends.
 * Nothing of the body outlives the call: the parser context and the
 * scratch buffers each thread keeps for its next parse are emptied.
 */


#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <libxml/encoding.h>
#include <libxml/globals.h>
#include <libxml/parser.h>
#include <libxml/parserInternals.h>
#include <libxml/xmlerror.h>
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
     | XML_PARSE_NOERROR | XML_PARSE_NOWARNING)

/*
 * No text can be longer than XML_MAX_TEXT_LENGTH in a body that is not;
 * the limit the DOM parser enforced on text nodes holds by this alone.
 * Outbound messages are far smaller.
 */
#define LOYALTY_SOAP_MAX_SIZE  XML_MAX_TEXT_LENGTH

/*
 * What a thread keeps between parses: a parser context whose dictionary
 * (the names seen so far) is no larger than this, scratch buffers no
 * larger than that; anything bigger is freed, so one odd body does not
 * pin memory for the life of the thread.
 */
#define LOYALTY_SOAP_DICT_KEEP     (64 * 1024)
#define LOYALTY_SOAP_SCRATCH_KEEP  (64 * 1024)

/* Envelope is at depth 1, a field at 6; what is deeper is skipped */
#define LOYALTY_SOAP_DEPTH  8

#define loyalty_soap_blank(c)                                                \
    ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n')


/* what an open element is to the message; SKIP: nothing, nor within */
enum {
    LOYALTY_SOAP_SKIP = 0,
    LOYALTY_SOAP_DOCUMENT,
    LOYALTY_SOAP_ENVELOPE,
    LOYALTY_SOAP_BODY,
    LOYALTY_SOAP_NOTIFICATIONS,
    LOYALTY_SOAP_ORG,
    LOYALTY_SOAP_ACTION,
    LOYALTY_SOAP_ENTERPRISE,
    LOYALTY_SOAP_PARTNER,
    LOYALTY_SOAP_NOTIFICATION,
    LOYALTY_SOAP_ID,
    LOYALTY_SOAP_SOBJECT,
    LOYALTY_SOAP_FIELD
};

#define loyalty_soap_bit(kind)  (1u << (kind))

/*
 * Structural errors are met in document order but reported in the order
 * of the checks the message shape calls for (the Body before what is in
 * it, the header before the notifications, notification 1 before 2): the
 * lowest rank wins, and among equals the first met.
 */
#define loyalty_soap_rank(phase, i, sub)                                     \
    ((uint32_t) (phase) << 16 | (uint32_t) (i) << 4 | (uint32_t) (sub))

#define LOYALTY_SOAP_R_ENVELOPE      1
#define LOYALTY_SOAP_R_BODY_TWICE    2
#define LOYALTY_SOAP_R_NO_BODY       3
#define LOYALTY_SOAP_R_NOTIFS_TWICE  4
#define LOYALTY_SOAP_R_NO_NOTIFS     5
#define LOYALTY_SOAP_R_HEADER        6      /* over 100, a singleton twice */
#define LOYALTY_SOAP_R_NO_ORG        7
#define LOYALTY_SOAP_R_NO_NOTIF      8
#define LOYALTY_SOAP_R_EMPTY_ORG     9
#define LOYALTY_SOAP_R_NOTIF        10      /* sub: the checks below */

#define LOYALTY_SOAP_N_TWICE         0
#define LOYALTY_SOAP_N_NO_ID         1
#define LOYALTY_SOAP_N_NO_SOBJECT    2
#define LOYALTY_SOAP_N_EMPTY_ID      3


typedef struct {
    xmlParserCtxtPtr               ctxt;
    u_char                        *text;
    size_t                         text_size;
    loyalty_soap_field_t          *fields;
    size_t                         fields_size;     /* in fields */
    unsigned                       registered:1;    /* freed at exit */
} loyalty_soap_cache_t;


typedef struct {
    unsigned                       doctype:1;  /* a DOCTYPE was met */
    unsigned                       nomem:1;    /* libxml2 or we ran out */
    unsigned                       malformed:1;
    int                            code;       /* the first WF error */
    int                            line;
    int                            ns_code;    /* the first namespace one */
    int                            ns_line;

    uint32_t                       rank;       /* structural error, 0: no */
    loyalty_err_t                  err;        /* its message */

    xmlParserCtxtPtr               ctxt;
    const loyalty_alloc_t         *a;
    loyalty_soap_cache_t          *cache;

    unsigned                       seen;       /* loyalty_soap_bit()s */
    size_t                         depth;      /* of the open element */
    size_t                         text_depth; /* whose text is kept */
    size_t                         text_len;
    size_t                         nfields;    /* of the open sObject */
    size_t                         n;          /* Notifications */
    u_char                         kind[LOYALTY_SOAP_DEPTH];

    loyalty_soap_message_t         msg;        /* the header strings */

    /* last: not cleared, each is as it is opened */
    loyalty_soap_notification_t    nts[LOYALTY_SOAP_MAX_NOTIFICATIONS];
} loyalty_soap_state_t;


static void loyalty_soap_once_init(void);
static void loyalty_soap_cache_free(void *data);
static int loyalty_soap_utf8(const loyalty_str_t *xml, loyalty_err_t *err);
static int loyalty_soap_read(const loyalty_str_t *xml,
    const loyalty_alloc_t *a, loyalty_soap_message_t *out,
    loyalty_err_t *err);
static xmlParserCtxtPtr loyalty_soap_context(loyalty_soap_cache_t *c,
    const loyalty_str_t *xml);
static void loyalty_soap_keep(loyalty_soap_cache_t *c,
    xmlParserCtxtPtr ctxt, int reuse);
static int loyalty_soap_result(loyalty_soap_state_t *st,
    loyalty_soap_message_t *out, loyalty_err_t *err);
static void loyalty_soap_on_error(void *data, xmlErrorPtr e);
static void loyalty_soap_on_global(void *data, xmlErrorPtr e);
static void loyalty_soap_on_generic(void *data, const char *msg, ...);
static void loyalty_soap_on_dtd(void *data, const xmlChar *name,
    const xmlChar *public_id, const xmlChar *system_id);
static void loyalty_soap_on_entity(void *data, const xmlChar *name,
    int type, const xmlChar *public_id, const xmlChar *system_id,
    xmlChar *content);
static void loyalty_soap_on_start(void *data, const xmlChar *localname,
    const xmlChar *prefix, const xmlChar *uri, int nb_namespaces,
    const xmlChar **namespaces, int nb_attributes, int nb_defaulted,
    const xmlChar **attributes);
static void loyalty_soap_on_end(void *data, const xmlChar *localname,
    const xmlChar *prefix, const xmlChar *uri);
static void loyalty_soap_on_text(void *data, const xmlChar *ch, int len);
static int loyalty_soap_header(loyalty_soap_state_t *st,
    const xmlChar *name);
static int loyalty_soap_sobject(loyalty_soap_state_t *st, int nattrs,
    const xmlChar **attrs);
static int loyalty_soap_field(loyalty_soap_state_t *st,
    const xmlChar *name, int nattrs, const xmlChar **attrs);
static int loyalty_soap_copy(loyalty_soap_state_t *st, loyalty_str_t *s,
    int trim);
static const xmlChar *loyalty_soap_xsi(int nattrs, const xmlChar **attrs,
    const char *name, const xmlChar **end);
static int loyalty_soap_nil(int nattrs, const xmlChar **attrs);
static int loyalty_soap_fail(loyalty_soap_state_t *st, uint32_t rank);
static void loyalty_soap_oom(loyalty_soap_state_t *st);
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


/*
 * The parse's own handler, copied over the context's before each parse.
 * No startDocument: that is where the SAX2 builder makes its tree.  The
 * CDATA of XML_PARSE_NOCDATA and white space alike come as characters.
 */
static const xmlSAXHandler  loyalty_soap_sax = {
    .internalSubset = loyalty_soap_on_dtd,
    .externalSubset = loyalty_soap_on_dtd,
    .entityDecl = loyalty_soap_on_entity,
    .characters = loyalty_soap_on_text,
    .ignorableWhitespace = loyalty_soap_on_text,
    .startElementNs = loyalty_soap_on_start,
    .endElementNs = loyalty_soap_on_end,
    .serror = loyalty_soap_on_error,
    .initialized = XML_SAX2_MAGIC
};

static __thread loyalty_soap_cache_t  loyalty_soap_cache;
static pthread_key_t                  loyalty_soap_key;
static pthread_once_t                 loyalty_soap_once = PTHREAD_ONCE_INIT;
static int                            loyalty_soap_keyed;


void
loyalty_soap_init(void)
{
    /* idempotent; libxml2 2.9 guards the first call with a mutex */
    xmlInitParser();

    (void) pthread_once(&loyalty_soap_once, loyalty_soap_once_init);
}


static void
loyalty_soap_once_init(void)
{
    /* what a thread keeps is freed when it exits */
    loyalty_soap_keyed = (pthread_key_create(&loyalty_soap_key,
                                             loyalty_soap_cache_free)
                          == 0);
}


static void
loyalty_soap_cache_free(void *data)
{
    loyalty_soap_cache_t  *c;

    c = data;

    if (c->ctxt != NULL) {
        xmlFreeParserCtxt(c->ctxt);
    }

    free(c->text);
    free(c->fields);

    memset(c, 0, sizeof(loyalty_soap_cache_t));
}


int
loyalty_soap_parse(const loyalty_str_t *xml, const loyalty_alloc_t *a,
    loyalty_soap_message_t *out, loyalty_err_t *err)
{
    int  rc;

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

    rc = loyalty_soap_read(xml, a, out, err);

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
 * its own.
 */

static int
loyalty_soap_read(const loyalty_str_t *xml, const loyalty_alloc_t *a,
    loyalty_soap_message_t *out, loyalty_err_t *err)
{
    int                     rc, reuse;
    void                   *gctx, *sctx;
    xmlParserCtxtPtr        ctxt;
    loyalty_soap_cache_t   *c;
    xmlGenericErrorFunc     gfunc;
    xmlStructuredErrorFunc  sfunc;
    loyalty_soap_state_t    st;

    loyalty_soap_init();

    c = &loyalty_soap_cache;

    gfunc = xmlGenericError;
    gctx = xmlGenericErrorContext;
    sfunc = xmlStructuredError;
    sctx = xmlStructuredErrorContext;

    /* nts[] is left out: each notification is cleared as it opens */
    memset(&st, 0, offsetof(loyalty_soap_state_t, nts));

    st.a = a;
    st.cache = c;
    st.kind[0] = LOYALTY_SOAP_DOCUMENT;

    xmlSetGenericErrorFunc(NULL, loyalty_soap_on_generic);
    xmlSetStructuredErrorFunc(&st, loyalty_soap_on_global);

    ctxt = loyalty_soap_context(c, xml);
    if (ctxt == NULL) {
        xmlSetGenericErrorFunc(gctx, gfunc);
        xmlSetStructuredErrorFunc(sctx, sfunc);
        loyalty_soap_keep(c, NULL, 0);
        return loyalty_soap_nomem(err);
    }

    st.ctxt = ctxt;
    ctxt->_private = &st;

    (void) xmlParseDocument(ctxt);

    if (!ctxt->wellFormed) {
        st.malformed = 1;

        if (st.code == 0) {
            st.code = ctxt->errNo;
        }
    }

    if (ctxt->errNo == XML_ERR_NO_MEMORY) {
        st.nomem = 1;
    }

    /* after running out of memory, libxml2's state is not trusted */
    reuse = !st.nomem;

    loyalty_soap_keep(c, ctxt, reuse);

    xmlSetGenericErrorFunc(gctx, gfunc);
    xmlSetStructuredErrorFunc(sctx, sfunc);

    rc = loyalty_soap_result(&st, out, err);

    return rc;
}


/*
 * The thread's context, reset, or a new one, with this parse's handler,
 * options and input.  libxml2 2.9's xmlCtxtReset() keeps the options and
 * the namespace stack of the last parse: both are set anew here.
 */

static xmlParserCtxtPtr
loyalty_soap_context(loyalty_soap_cache_t *c, const loyalty_str_t *xml)
{
    xmlParserCtxtPtr         ctxt;
    xmlParserInputPtr        input;
    xmlParserInputBufferPtr  buf;

    ctxt = c->ctxt;
    c->ctxt = NULL;

    if (ctxt == NULL) {
        ctxt = xmlNewParserCtxt();
        if (ctxt == NULL) {
            return NULL;
        }

    } else {
        xmlCtxtReset(ctxt);
    }

    ctxt->nsNr = 0;

    *ctxt->sax = loyalty_soap_sax;
    ctxt->userData = ctxt;

    ctxt->options = 0;
    (void) xmlCtxtUseOptions(ctxt, LOYALTY_SOAP_XML_OPTIONS);

    /* whatever process-wide defaults another libxml2 user has set */
    ctxt->replaceEntities = 0;
    ctxt->loadsubset = 0;
    ctxt->validate = 0;

    /* a copy, NUL-terminated: libxml2 reads the terminator */
    buf = xmlParserInputBufferCreateMem((const char *) xml->data,
                                        (int) xml->len,
                                        XML_CHAR_ENCODING_NONE);
    if (buf == NULL) {
        goto failed;
    }

    input = xmlNewIOInputStream(ctxt, buf, XML_CHAR_ENCODING_NONE);
    if (input == NULL) {
        xmlFreeParserInputBuffer(buf);
        goto failed;
    }

    if (inputPush(ctxt, input) < 0) {   /* input freed by inputPush() */
        goto failed;
    }

    return ctxt;

failed:

    xmlFreeParserCtxt(ctxt);

    return NULL;
}


/*
 * Empties what the thread keeps: the input (a copy of the body) goes at
 * once; the context stays for the next parse if it may, as do scratch
 * buffers of a reasonable size.  Nothing is kept by a thread whose
 * exit could not be hooked.
 */

static void
loyalty_soap_keep(loyalty_soap_cache_t *c, xmlParserCtxtPtr ctxt,
    int reuse)
{
    if (reuse && !c->registered && loyalty_soap_keyed) {
        c->registered = (pthread_setspecific(loyalty_soap_key, c) == 0);
    }

    if (!c->registered) {
        reuse = 0;
    }

    if (ctxt != NULL) {
        ctxt->_private = NULL;

        if (reuse && ctxt->dict != NULL
            && xmlDictGetUsage(ctxt->dict) <= LOYALTY_SOAP_DICT_KEEP)
        {
            xmlCtxtReset(ctxt);
            ctxt->nsNr = 0;
            c->ctxt = ctxt;

        } else {
            xmlFreeParserCtxt(ctxt);
        }
    }

    if (!reuse || c->text_size > LOYALTY_SOAP_SCRATCH_KEEP) {
        free(c->text);
        c->text = NULL;
        c->text_size = 0;
    }

    if (!reuse
        || c->fields_size * sizeof(loyalty_soap_field_t)
           > LOYALTY_SOAP_SCRATCH_KEEP)
    {
        free(c->fields);
        c->fields = NULL;
        c->fields_size = 0;
    }
}


static int
loyalty_soap_result(loyalty_soap_state_t *st, loyalty_soap_message_t *out,
    loyalty_err_t *err)
{
    if (st->nomem) {
        return loyalty_soap_nomem(err);
    }

    if (st->doctype) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "DOCTYPE not allowed in a SOAP message");
        return LOYALTY_DECLINED;
    }

    if (st->malformed) {
        /* libxml2's own text quotes the input: it is kept out of logs */
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "malformed XML at line %d (libxml2 error %d)",
                        st->line, st->code);
        return LOYALTY_DECLINED;
    }

    if (st->ns_code) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT,
                        "namespace error at line %d (libxml2 error %d)",
                        st->ns_line, st->ns_code);
        return LOYALTY_DECLINED;
    }

    /* what can only be missed once the whole body is read */

    if (!(st->seen & loyalty_soap_bit(LOYALTY_SOAP_ENVELOPE))) {
        /* the root was another element: R_ENVELOPE is set */

    } else if (!(st->seen & loyalty_soap_bit(LOYALTY_SOAP_BODY))) {
        if (loyalty_soap_fail(st, loyalty_soap_rank(LOYALTY_SOAP_R_NO_BODY,
                                                    0, 0)))
        {
            loyalty_err_set(&st->err, LOYALTY_ERR_INPUT, "no SOAP Body");
        }

    } else if (!(st->seen & loyalty_soap_bit(LOYALTY_SOAP_NOTIFICATIONS))) {
        if (loyalty_soap_fail(st,
                              loyalty_soap_rank(LOYALTY_SOAP_R_NO_NOTIFS,
                                                0, 0)))
        {
            loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                            "not an outbound message: "
                            "no notifications element");
        }

    } else {
        if (!(st->seen & loyalty_soap_bit(LOYALTY_SOAP_ORG))) {
            if (loyalty_soap_fail(st,
                                  loyalty_soap_rank(LOYALTY_SOAP_R_NO_ORG,
                                                    0, 0)))
            {
                loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                                "no OrganizationId");
            }

        } else if (st->msg.organization_id.len == 0
                   && loyalty_soap_fail(st,
                          loyalty_soap_rank(LOYALTY_SOAP_R_EMPTY_ORG, 0, 0)))
        {
            loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                            "empty OrganizationId");
        }

        /*
         * A message with nothing to acknowledge is not one Salesforce
         * sends; acking it would only confirm to a prober that the
         * endpoint and the organization id are right.
         */
        if (st->n == 0
            && loyalty_soap_fail(st,
                                 loyalty_soap_rank(LOYALTY_SOAP_R_NO_NOTIF,
                                                   0, 0)))
        {
            loyalty_err_set(&st->err, LOYALTY_ERR_INPUT, "no Notification");
        }
    }

    if (st->rank) {
        *err = st->err;
        return LOYALTY_DECLINED;
    }

    *out = st->msg;

    out->notifications = st->a->alloc(st->a->ctx,
                             st->n * sizeof(loyalty_soap_notification_t));
    if (out->notifications == NULL) {
        return loyalty_soap_nomem(err);
    }

    memcpy(out->notifications, st->nts,
           st->n * sizeof(loyalty_soap_notification_t));
    out->nnotifications = st->n;

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


/*
 * An element opens: what it is follows from what its parent is, its
 * namespace and its local name.  Everything under an element the shape
 * does not name is skipped, wherever it stands.
 */

static void
loyalty_soap_on_start(void *data, const xmlChar *localname,
    const xmlChar *prefix, const xmlChar *uri, int nb_namespaces,
    const xmlChar **namespaces, int nb_attributes, int nb_defaulted,
    const xmlChar **attributes)
{
    int                     kind, parent, envelope, outbound;
    size_t                  depth;
    const char             *name;
    xmlParserCtxtPtr        ctxt;
    loyalty_soap_state_t   *st;

    (void) prefix;
    (void) nb_namespaces;
    (void) namespaces;
    (void) nb_defaulted;

    ctxt = data;
    st = ctxt->_private;

    depth = ++st->depth;
    parent = (depth - 1 < LOYALTY_SOAP_DEPTH) ? st->kind[depth - 1]
                                              : LOYALTY_SOAP_SKIP;
    kind = LOYALTY_SOAP_SKIP;
    name = (const char *) localname;

    envelope = uri != NULL
               && strcmp((const char *) uri, LOYALTY_SOAP_NS_ENVELOPE) == 0;
    outbound = uri != NULL
               && strcmp((const char *) uri, LOYALTY_SOAP_NS_OUTBOUND) == 0;

    switch (parent) {

    case LOYALTY_SOAP_DOCUMENT:
        if (envelope && strcmp(name, "Envelope") == 0) {
            kind = LOYALTY_SOAP_ENVELOPE;
            st->seen |= loyalty_soap_bit(kind);
            break;
        }

        if (loyalty_soap_fail(st,
                              loyalty_soap_rank(LOYALTY_SOAP_R_ENVELOPE,
                                                0, 0)))
        {
            loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                            "not a SOAP envelope");
        }

        break;

    /*
     * Singletons found twice are refused rather than one picked: another
     * reader of the same bytes (a proxy, a log) might pick the other.
     */

    case LOYALTY_SOAP_ENVELOPE:
        if (!envelope || strcmp(name, "Body") != 0) {
            break;
        }

        if (st->seen & loyalty_soap_bit(LOYALTY_SOAP_BODY)) {
            if (loyalty_soap_fail(st,
                    loyalty_soap_rank(LOYALTY_SOAP_R_BODY_TWICE, 0, 0)))
            {
                loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                                "more than one SOAP Body");
            }

            break;
        }

        kind = LOYALTY_SOAP_BODY;
        st->seen |= loyalty_soap_bit(kind);
        break;

    case LOYALTY_SOAP_BODY:
        if (!outbound || strcmp(name, "notifications") != 0) {
            break;
        }

        if (st->seen & loyalty_soap_bit(LOYALTY_SOAP_NOTIFICATIONS)) {
            if (loyalty_soap_fail(st,
                    loyalty_soap_rank(LOYALTY_SOAP_R_NOTIFS_TWICE, 0, 0)))
            {
                loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                                "more than one notifications");
            }

            break;
        }

        kind = LOYALTY_SOAP_NOTIFICATIONS;
        st->seen |= loyalty_soap_bit(kind);
        break;

    case LOYALTY_SOAP_NOTIFICATIONS:
        if (outbound) {
            kind = loyalty_soap_header(st, localname);
        }

        break;

    case LOYALTY_SOAP_NOTIFICATION:
        if (!outbound) {
            break;
        }

        if (strcmp(name, "Id") == 0) {
            kind = LOYALTY_SOAP_ID;

        } else if (strcmp(name, "sObject") == 0) {
            kind = LOYALTY_SOAP_SOBJECT;

        } else {
            break;
        }

        if (st->seen & loyalty_soap_bit(kind)) {
            if (loyalty_soap_fail(st,
                    loyalty_soap_rank(LOYALTY_SOAP_R_NOTIF, st->n,
                                      LOYALTY_SOAP_N_TWICE)))
            {
                loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                                "notification %zu has more than one %s",
                                st->n, name);
            }

            kind = LOYALTY_SOAP_SKIP;
            break;
        }

        st->seen |= loyalty_soap_bit(kind);

        if (kind == LOYALTY_SOAP_SOBJECT) {
            kind = loyalty_soap_sobject(st, nb_attributes, attributes);
        }

        break;

    case LOYALTY_SOAP_SOBJECT:
        kind = loyalty_soap_field(st, localname, nb_attributes, attributes);
        break;

    default:
        break;
    }

    if (depth < LOYALTY_SOAP_DEPTH) {
        st->kind[depth] = (u_char) kind;
    }

    switch (kind) {

    case LOYALTY_SOAP_ORG:
    case LOYALTY_SOAP_ACTION:
    case LOYALTY_SOAP_ENTERPRISE:
    case LOYALTY_SOAP_PARTNER:
    case LOYALTY_SOAP_ID:
    case LOYALTY_SOAP_FIELD:
        /* a nil field's text is not wanted: text_depth stays 0 */
        if (kind != LOYALTY_SOAP_FIELD
            || !st->cache->fields[st->nfields - 1].nil)
        {
            st->text_depth = depth;
            st->text_len = 0;
        }

        break;

    default:
        break;
    }
}


/* a child of notifications in the outbound namespace */

static int
loyalty_soap_header(loyalty_soap_state_t *st, const xmlChar *localname)
{
    int                            kind;
    const char                    *name;
    loyalty_soap_notification_t   *nt;

    name = (const char *) localname;

    if (strcmp(name, "Notification") == 0) {
        if (st->n == LOYALTY_SOAP_MAX_NOTIFICATIONS) {
            if (loyalty_soap_fail(st,
                    loyalty_soap_rank(LOYALTY_SOAP_R_HEADER, 0, 0)))
            {
                loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                                "more than %d notifications",
                                LOYALTY_SOAP_MAX_NOTIFICATIONS);
            }

            return LOYALTY_SOAP_SKIP;
        }

        nt = &st->nts[st->n++];
        memset(nt, 0, sizeof(loyalty_soap_notification_t));

        st->seen &= ~(loyalty_soap_bit(LOYALTY_SOAP_ID)
                      | loyalty_soap_bit(LOYALTY_SOAP_SOBJECT));

        return LOYALTY_SOAP_NOTIFICATION;
    }

    /* SessionId, a live session token, is never looked at */

    kind = (strcmp(name, "OrganizationId") == 0) ? LOYALTY_SOAP_ORG
           : (strcmp(name, "ActionId") == 0) ? LOYALTY_SOAP_ACTION
           : (strcmp(name, "EnterpriseUrl") == 0) ? LOYALTY_SOAP_ENTERPRISE
           : (strcmp(name, "PartnerUrl") == 0) ? LOYALTY_SOAP_PARTNER
           : LOYALTY_SOAP_SKIP;

    if (kind == LOYALTY_SOAP_SKIP) {
        return kind;
    }

    if (st->seen & loyalty_soap_bit(kind)) {
        if (loyalty_soap_fail(st,
                              loyalty_soap_rank(LOYALTY_SOAP_R_HEADER, 0, 0)))
        {
            loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                            "more than one %s", name);
        }

        return LOYALTY_SOAP_SKIP;
    }

    st->seen |= loyalty_soap_bit(kind);

    return kind;
}


/* xsi:type="sf:Contact": the QName's local part */

static int
loyalty_soap_sobject(loyalty_soap_state_t *st, int nattrs,
    const xmlChar **attrs)
{
    u_char                        *buf, *p, *last;
    size_t                         n;
    const xmlChar                 *v, *end;
    loyalty_soap_notification_t   *nt;

    st->nfields = 0;

    v = loyalty_soap_xsi(nattrs, attrs, "type", &end);

    /* once the message is refused, nothing more is copied */
    if (v == NULL || st->rank || st->ns_code) {
        return LOYALTY_SOAP_SOBJECT;
    }

    buf = st->a->alloc(st->a->ctx, end - v + 1);
    if (buf == NULL) {
        loyalty_soap_oom(st);
        return LOYALTY_SOAP_SKIP;
    }

    /*
     * libxml2 hands attribute values over with the '&' of "&amp;" or
     * "&#38;" written back as "&#38;", the only reference left in them
     * without a DTD; every other one is decoded already.
     */
    for (last = buf; v < end; v++) {
        *last++ = *v;

        if (*v == '&' && end - v >= 5 && memcmp(v, "&#38;", 5) == 0) {
            v += 4;
        }
    }

    for (p = buf; p < last && loyalty_soap_blank(*p); p++) { /* void */ }

    while (last > p && loyalty_soap_blank(last[-1])) {
        last--;
    }

    *last = '\0';

    /* after the last colon: no prefix left, even of a bad QName */
    for (n = last - p; n > 0; n--) {
        if (p[n - 1] == ':') {
            p += n;
            break;
        }
    }

    nt = &st->nts[st->n - 1];
    nt->type.data = p;
    nt->type.len = last - p;

    return LOYALTY_SOAP_SOBJECT;
}


/* a child of sObject, whatever its namespace: one field */

static int
loyalty_soap_field(loyalty_soap_state_t *st, const xmlChar *name,
    int nattrs, const xmlChar **attrs)
{
    size_t                  size;
    loyalty_soap_cache_t   *c;
    loyalty_soap_field_t   *f;

    if (st->rank || st->ns_code) {
        return LOYALTY_SOAP_SKIP;
    }

    c = st->cache;

    if (st->nfields == c->fields_size) {
        size = c->fields_size ? 2 * c->fields_size : 16;

        f = realloc(c->fields, size * sizeof(loyalty_soap_field_t));
        if (f == NULL) {
            loyalty_soap_oom(st);
            return LOYALTY_SOAP_SKIP;
        }

        c->fields = f;
        c->fields_size = size;
    }

    f = &c->fields[st->nfields++];

    /* the local name: namespace errors are refused */
    f->name.len = strlen((const char *) name);
    f->name.data = loyalty_alloc_copy(st->a, name, f->name.len);
    f->value.len = 0;
    f->value.data = NULL;

    if (f->name.data == NULL) {
        loyalty_soap_oom(st);
        return LOYALTY_SOAP_SKIP;
    }

    /* a nil field has no value, whatever text it carries */
    f->nil = loyalty_soap_nil(nattrs, attrs);

    return LOYALTY_SOAP_FIELD;
}


static void
loyalty_soap_on_end(void *data, const xmlChar *localname,
    const xmlChar *prefix, const xmlChar *uri)
{
    int                            kind;
    size_t                         depth, size;
    loyalty_str_t                 *s;
    xmlParserCtxtPtr               ctxt;
    loyalty_soap_state_t          *st;
    loyalty_soap_notification_t   *nt;

    (void) localname;
    (void) prefix;
    (void) uri;

    ctxt = data;
    st = ctxt->_private;

    depth = st->depth--;
    kind = (depth < LOYALTY_SOAP_DEPTH) ? st->kind[depth]
                                        : LOYALTY_SOAP_SKIP;

    if (kind == LOYALTY_SOAP_SKIP) {
        return;
    }

    nt = st->n ? &st->nts[st->n - 1] : NULL;
    s = NULL;

    switch (kind) {

    case LOYALTY_SOAP_ORG:
        s = &st->msg.organization_id;
        break;

    case LOYALTY_SOAP_ACTION:
        s = &st->msg.action_id;
        break;

    case LOYALTY_SOAP_ENTERPRISE:
        s = &st->msg.enterprise_url;
        break;

    case LOYALTY_SOAP_PARTNER:
        s = &st->msg.partner_url;
        break;

    case LOYALTY_SOAP_ID:
        if (loyalty_soap_copy(st, &nt->id, 1) != LOYALTY_OK) {
            return;
        }

        if (nt->id.len == 0
            && loyalty_soap_fail(st,
                                 loyalty_soap_rank(LOYALTY_SOAP_R_NOTIF,
                                                   st->n,
                                                   LOYALTY_SOAP_N_EMPTY_ID)))
        {
            loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                            "notification %zu has an empty Id", st->n);
        }

        return;

    case LOYALTY_SOAP_FIELD:
        if (st->text_depth == depth) {
            /* values are kept byte for byte: white space may be data */
            (void) loyalty_soap_copy(st,
                                     &st->cache->fields[st->nfields - 1].value,
                                     0);
        }

        return;

    case LOYALTY_SOAP_SOBJECT:
        if (st->nfields == 0 || st->rank || st->ns_code) {
            return;
        }

        size = st->nfields * sizeof(loyalty_soap_field_t);

        nt->fields = st->a->alloc(st->a->ctx, size);
        if (nt->fields == NULL) {
            loyalty_soap_oom(st);
            return;
        }

        memcpy(nt->fields, st->cache->fields, size);
        nt->nfields = st->nfields;

        return;

    case LOYALTY_SOAP_NOTIFICATION:
        if (!(st->seen & loyalty_soap_bit(LOYALTY_SOAP_ID))) {
            if (loyalty_soap_fail(st,
                    loyalty_soap_rank(LOYALTY_SOAP_R_NOTIF, st->n,
                                      LOYALTY_SOAP_N_NO_ID)))
            {
                loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                                "notification %zu has no Id", st->n);
            }

        /* acking a notification without its record would lose it */
        } else if (!(st->seen & loyalty_soap_bit(LOYALTY_SOAP_SOBJECT))) {
            if (loyalty_soap_fail(st,
                    loyalty_soap_rank(LOYALTY_SOAP_R_NOTIF, st->n,
                                      LOYALTY_SOAP_N_NO_SOBJECT)))
            {
                loyalty_err_set(&st->err, LOYALTY_ERR_INPUT,
                                "notification %zu has no sObject", st->n);
            }
        }

        return;

    default:
        return;
    }

    /* ids and URLs: a pretty-printer might have wrapped them */
    (void) loyalty_soap_copy(st, s, 1);
}


/*
 * Text is kept only directly inside the element being read: a nested
 * element's, a comment's or a PI's is not part of its value.
 */

static void
loyalty_soap_on_text(void *data, const xmlChar *ch, int len)
{
    u_char                 *p;
    size_t                  size;
    xmlParserCtxtPtr        ctxt;
    loyalty_soap_cache_t   *c;
    loyalty_soap_state_t   *st;

    ctxt = data;
    st = ctxt->_private;

    if (st->text_depth != st->depth || st->text_depth == 0 || len <= 0) {
        return;
    }

    c = st->cache;

    if (c->text_size - st->text_len < (size_t) len) {
        size = c->text_size ? c->text_size : 256;

        while (size - st->text_len < (size_t) len) {
            size *= 2;
        }

        p = realloc(c->text, size);
        if (p == NULL) {
            loyalty_soap_oom(st);
            return;
        }

        c->text = p;
        c->text_size = size;
    }

    memcpy(c->text + st->text_len, ch, len);
    st->text_len += len;
}


/*
 * The text gathered, copied NUL-terminated into the caller's allocator;
 * trim drops XML white space at both ends.  s->len is set even when the
 * message is already refused and nothing is copied: an empty Id must
 * still be told from a missing one.
 */

static int
loyalty_soap_copy(loyalty_soap_state_t *st, loyalty_str_t *s, int trim)
{
    u_char        *buf;
    const u_char  *p, *last;

    /* no text seen yet: the buffer may not exist (no NULL arithmetic) */
    p = st->cache->text;
    last = (p != NULL) ? p + st->text_len : p;

    st->text_depth = 0;
    st->text_len = 0;

    if (trim) {
        while (p < last && loyalty_soap_blank(*p)) {
            p++;
        }

        while (last > p && loyalty_soap_blank(last[-1])) {
            last--;
        }
    }

    s->len = last - p;
    s->data = NULL;

    if (st->rank || st->ns_code) {
        return LOYALTY_OK;
    }

    buf = st->a->alloc(st->a->ctx, s->len + 1);
    if (buf == NULL) {
        loyalty_soap_oom(st);
        return LOYALTY_ERROR;
    }

    if (s->len) {
        memcpy(buf, p, s->len);
    }

    buf[s->len] = '\0';
    s->data = buf;

    return LOYALTY_OK;
}


/*
 * An attribute in the XML Schema instance namespace, [value, end): it
 * is not NUL-terminated.  Salesforce binds xsi on the Envelope, but its
 * documentation, and apis.md, abridge the message to
 * <SessionId xsi:nil="true"/> with the prefix unbound; libxml2 reports
 * that as a namespace error, not a fatal one, and passes the attribute
 * with its prefix and no namespace: it is taken for the same attribute.
 */

static const xmlChar *
loyalty_soap_xsi(int nattrs, const xmlChar **attrs, const char *name,
    const xmlChar **end)
{
    int  i;

    for (i = 0; i < nattrs; i++, attrs += 5) {
        if (strcmp((const char *) attrs[0], name) != 0) {
            continue;
        }

        if (attrs[2] != NULL
            ? strcmp((const char *) attrs[2], LOYALTY_SOAP_NS_XSI) == 0
            : attrs[1] != NULL && strcmp((const char *) attrs[1], "xsi") == 0)
        {
            *end = attrs[4];
            return attrs[3];
        }
    }

    return NULL;
}


/* xsi:nil is an xs:boolean: "true" or "1", white space collapsed */

static int
loyalty_soap_nil(int nattrs, const xmlChar **attrs)
{
    size_t          len;
    const xmlChar  *p, *last;

    p = loyalty_soap_xsi(nattrs, attrs, "nil", &last);

    /* no more than 7 bytes, as ever */
    if (p == NULL || last - p >= 8) {
        return 0;
    }

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


/* whether rank is the error to report: the lowest, the first of equals */

static int
loyalty_soap_fail(loyalty_soap_state_t *st, uint32_t rank)
{
    if (st->rank != 0 && st->rank <= rank) {
        return 0;
    }

    st->rank = rank;

    return 1;
}


static void
loyalty_soap_oom(loyalty_soap_state_t *st)
{
    st->nomem = 1;
    xmlStopParser(st->ctxt);
}


static int
loyalty_soap_nomem(loyalty_err_t *err)
{
    loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");

    return LOYALTY_ERROR;
}
