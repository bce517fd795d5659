/*
 * Copyright (C) loyalty-edge authors
 *
 * Salesforce Outbound Messages: the SOAP 1.1 envelope Salesforce posts,
 * parsed with libxml2 into plain structs in the caller's allocator.
 */

#ifndef _LOYALTY_SOAP_H_INCLUDED_
#define _LOYALTY_SOAP_H_INCLUDED_


#include "loyalty_core.h"


#define LOYALTY_SOAP_MAX_NOTIFICATIONS  100
#define LOYALTY_SOAP_NS_ENVELOPE  "http://schemas.xmlsoap.org/soap/envelope/"
#define LOYALTY_SOAP_NS_OUTBOUND  "http://soap.sforce.com/2005/09/outbound"


/* one field of the sObject: <sf:Email>a@b.c</sf:Email> */
typedef struct {
    loyalty_str_t                  name;     /* local name: "Email" */
    loyalty_str_t                  value;    /* text content, decoded */
    unsigned                       nil:1;    /* xsi:nil="true" */
} loyalty_soap_field_t;


typedef struct {
    loyalty_str_t                  id;       /* <Notification><Id> */
    loyalty_str_t                  type;     /* "Contact" of "sf:Contact" */
    loyalty_soap_field_t          *fields;   /* in document order */
    size_t                         nfields;
} loyalty_soap_notification_t;


typedef struct {
    loyalty_str_t                  organization_id;
    loyalty_str_t                  action_id;
    loyalty_str_t                  enterprise_url;
    loyalty_str_t                  partner_url;
    loyalty_soap_notification_t   *notifications;
    size_t                         nnotifications;
} loyalty_soap_message_t;


/*
 * Initialises libxml2 (xmlInitParser).  Call once at start-up, before
 * any parse and before threads or workers exist (nginx: from
 * init_module, in the master); loyalty_soap_parse() also calls it, so a
 * forgotten call costs only the first parse in each process.
 */
void loyalty_soap_init(void);

/*
 * Parses an outbound message.  The SessionId, a live Salesforce session
 * when "send session id" is on, is never copied out.  No DTD, entity
 * expansion or network access: such documents are refused.
 * LOYALTY_DECLINED with err->code LOYALTY_ERR_INPUT for a body that is
 * not a well-formed outbound message (wrong namespaces, no
 * OrganizationId, a Notification without Id, more than
 * LOYALTY_SOAP_MAX_NOTIFICATIONS, none at all, a DOCTYPE, a body that
 * is not UTF-8 or is over 10 MB, ...); LOYALTY_ERROR when out of
 * memory.  Every string is a NUL-terminated copy in a; absent ones (an ActionId left out, the value
 * of a nil field, a missing xsi:type) are { 0, NULL }.  On failure *out
 * is all zero.  Nothing is printed: libxml2's messages are swallowed.
 */
int loyalty_soap_parse(const loyalty_str_t *xml, const loyalty_alloc_t *a,
    loyalty_soap_message_t *out, loyalty_err_t *err);

/* the acknowledgement Salesforce expects once every notification is kept */
extern const loyalty_str_t  loyalty_soap_ack;


#endif /* _LOYALTY_SOAP_H_INCLUDED_ */
