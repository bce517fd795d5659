/*
 * Copyright (C) loyalty-edge authors
 *
 * Salesforce Outbound Messages: SOAP, no signature.  Trust is TLS (and
 * Salesforce's client certificate, checked by nginx) plus the
 * OrganizationId allow-list; every notification becomes one event, and
 * Salesforce gets its Ack only after Redis has them all.
 */


#include <string.h>

#include "loyalty_provider.h"
#include "loyalty_canon.h"
#include "loyalty_soap.h"
#include "loyalty_time.h"


#define LOYALTY_SALESFORCE_SRC  "salesforce"


static int loyalty_salesforce_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err);
static int loyalty_salesforce_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err);
static int loyalty_salesforce_event(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    const loyalty_soap_message_t *msg,
    const loyalty_soap_notification_t *n, loyalty_event_t *ev,
    loyalty_err_t *err);
static int loyalty_salesforce_customer(const loyalty_provider_conf_t *conf,
    const loyalty_alloc_t *a, const loyalty_soap_notification_t *n,
    loyalty_event_t *ev, loyalty_jw_t *w);
static const loyalty_soap_field_t *loyalty_salesforce_field(
    const loyalty_soap_notification_t *n, const char *name);
static void loyalty_salesforce_text(loyalty_jw_t *w, const char *key,
    const loyalty_soap_notification_t *n, const char *name);


const loyalty_provider_t  loyalty_provider_salesforce = {
    .name = LOYALTY_SALESFORCE_SRC,
    .flags = LOYALTY_PROVIDER_NO_SECRET | LOYALTY_PROVIDER_ORGS,
    .ack = &loyalty_soap_ack,
    .ack_type = "text/xml; charset=utf-8",
    /* no signature: a secret inherited from the server is unused */
    .key = loyalty_provider_key_raw,
    .verify = loyalty_salesforce_verify,
    .normalize = loyalty_salesforce_normalize
};


/* the sObjects that hold a person: their outbound messages are profiles */
static const loyalty_topic_map_t  loyalty_salesforce_types[] = {
    { "Contact", "customer.updated" },
    { "Lead", "customer.updated" },
    { "Account", "customer.updated" },
    { NULL, NULL }
};


/* the OrganizationId is checked in normalize, once the XML is parsed */

static int
loyalty_salesforce_verify(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, loyalty_err_t *err)
{
    if (conf->norgs == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        "no organization is allowed");
        return LOYALTY_DECLINED;
    }

    if (req->body.len == 0) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE, "empty body");
        return LOYALTY_DECLINED;
    }

    return LOYALTY_OK;
}


static int
loyalty_salesforce_normalize(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    loyalty_batch_t *out, loyalty_err_t *err)
{
    int                      rc;
    size_t                   i;
    loyalty_event_t         *ev;
    loyalty_soap_message_t   msg;

    rc = loyalty_soap_parse(&req->body, a, &msg, err);
    if (rc != LOYALTY_OK) {
        return rc;
    }

    /* the only proof of origin an outbound message has */
    if (!loyalty_provider_org_allowed(conf, &msg.organization_id)) {
        loyalty_err_set(err, LOYALTY_ERR_SIGNATURE,
                        "organization is not allowed");
        return LOYALTY_DECLINED;
    }

    ev = loyalty_provider_events(req, a, LOYALTY_SALESFORCE_SRC,
                                 msg.nnotifications, out);
    if (ev == NULL) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    for (i = 0; i < msg.nnotifications; i++) {
        rc = loyalty_salesforce_event(conf, req, a, &msg,
                                      &msg.notifications[i], &ev[i], err);
        if (rc != LOYALTY_OK) {
            return rc;
        }
    }

    return LOYALTY_OK;
}


static int
loyalty_salesforce_event(const loyalty_provider_conf_t *conf,
    const loyalty_request_t *req, const loyalty_alloc_t *a,
    const loyalty_soap_message_t *msg, const loyalty_soap_notification_t *n,
    loyalty_event_t *ev, loyalty_err_t *err)
{
    int                          rc;
    size_t                       i;
    loyalty_jw_t                 w;
    const loyalty_soap_field_t  *f;

    if (!loyalty_event_id_valid(n->id.data, n->id.len)) {
        loyalty_err_set(err, LOYALTY_ERR_INPUT, "invalid notification Id");
        return LOYALTY_DECLINED;
    }

    ev->id = n->id;
    ev->topic = n->type;
    loyalty_canon_set_type(ev, loyalty_salesforce_types);

    /* the record's own time; Salesforce sends current values, not diffs */
    f = loyalty_salesforce_field(n, "LastModifiedDate");

    rc = LOYALTY_DECLINED;

    if (f != NULL) {
        rc = loyalty_canon_occurred_text(ev, a, &f->value);
    }

    if (rc == LOYALTY_DECLINED) {
        rc = loyalty_canon_occurred_unix(ev, a, req->now);
    }

    if (rc != LOYALTY_OK) {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    loyalty_jw_init(&w, a, 256 + 64 * n->nfields);

    loyalty_jw_object(&w, NULL);

    /* only sObjects that hold a person give a customer and its keys */
    if (!loyalty_str_eq(&ev->type, "unknown")
        && loyalty_salesforce_customer(conf, a, n, ev, &w) != LOYALTY_OK)
    {
        loyalty_err_set(err, LOYALTY_ERR_NOMEM, "out of memory");
        return LOYALTY_ERROR;
    }

    /* every field as sent: the flows map CRM-owned fields from here */
    loyalty_jw_object(&w, "sobject");
    loyalty_jw_str(&w, "type", &n->type);

    f = loyalty_salesforce_field(n, "Id");
    if (f != NULL && !f->nil) {
        loyalty_jw_str(&w, "id", &f->value);
    }

    loyalty_jw_object(&w, "fields");

    for (i = 0; i < n->nfields; i++) {
        f = &n->fields[i];

        loyalty_jw_name(&w, &f->name);

        if (f->nil) {
            loyalty_jw_raw(&w, NULL, &(loyalty_str_t) loyalty_string("null"));

        } else {
            loyalty_jw_str(&w, NULL, &f->value);
        }
    }

    loyalty_jw_end(&w);
    loyalty_jw_end(&w);

    loyalty_jw_object(&w, "message");
    loyalty_jw_str(&w, "organization_id", &msg->organization_id);

    if (msg->action_id.len) {
        loyalty_jw_str(&w, "action_id", &msg->action_id);
    }

    loyalty_jw_str(&w, "notification_id", &n->id);
    loyalty_jw_end(&w);

    loyalty_jw_end(&w);

    return loyalty_canon_finish(&w, ev, err);
}


static int
loyalty_salesforce_customer(const loyalty_provider_conf_t *conf,
    const loyalty_alloc_t *a, const loyalty_soap_notification_t *n,
    loyalty_event_t *ev, loyalty_jw_t *w)
{
    char                         buf[LOYALTY_TIME_MAX];
    loyalty_str_t                t;
    loyalty_canon_keys_t         keys;
    const loyalty_soap_field_t  *f;

    memset(&keys, 0, sizeof(loyalty_canon_keys_t));

    f = loyalty_salesforce_field(n, "Email");
    if (f == NULL) {
        f = loyalty_salesforce_field(n, "PersonEmail");
    }
    if (f != NULL) {
        keys.email = f->value;
    }

    f = loyalty_salesforce_field(n, "MobilePhone");
    if (f == NULL) {
        f = loyalty_salesforce_field(n, "PersonMobilePhone");
    }
    if (f == NULL) {
        f = loyalty_salesforce_field(n, "Phone");
    }
    if (f != NULL) {
        keys.phone = f->value;
    }

    f = loyalty_salesforce_field(n, "Id");
    if (f != NULL) {
        keys.ext_id = f->value;
    }

    if (loyalty_canon_identity(conf, a, ev, &keys) != LOYALTY_OK) {
        return LOYALTY_ERROR;
    }

    loyalty_jw_object(w, "customer");
    loyalty_canon_write_keys(w, ev);
    loyalty_salesforce_text(w, "first_name", n, "FirstName");
    loyalty_salesforce_text(w, "last_name", n, "LastName");

    f = loyalty_salesforce_field(n, "HasOptedOutOfEmail");
    if (f != NULL && !f->nil) {
        if (loyalty_str_eq(&f->value, "true")) {
            loyalty_jw_bool(w, "opt_in_email", 0);

        } else if (loyalty_str_eq(&f->value, "false")) {
            loyalty_jw_bool(w, "opt_in_email", 1);
        }
    }

    f = loyalty_salesforce_field(n, "LastModifiedDate");
    if (f != NULL) {
        t.len = loyalty_time_utc(&f->value, buf);
        t.data = (const u_char *) buf;

        if (t.len) {
            loyalty_jw_str(w, "updated_at", &t);
        }
    }

    loyalty_jw_end(w);

    return LOYALTY_OK;
}


/* the first field of that name; nil fields count as absent here */

static const loyalty_soap_field_t *
loyalty_salesforce_field(const loyalty_soap_notification_t *n,
    const char *name)
{
    size_t  i;

    for (i = 0; i < n->nfields; i++) {
        if (!n->fields[i].nil && n->fields[i].value.len
            && loyalty_str_eq(&n->fields[i].name, name))
        {
            return &n->fields[i];
        }
    }

    return NULL;
}


static void
loyalty_salesforce_text(loyalty_jw_t *w, const char *key,
    const loyalty_soap_notification_t *n, const char *name)
{
    const loyalty_soap_field_t  *f;

    f = loyalty_salesforce_field(n, name);

    if (f != NULL) {
        loyalty_jw_str(w, key, &f->value);
    }
}
