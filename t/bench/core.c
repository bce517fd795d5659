/*
 * Copyright (C) loyalty-edge authors
 *
 * Micro-benchmark of src/core per delivery: for every sender of the
 * registry, the cost of verify, of normalize, and of both.  standard and
 * generic run on a ~2 KB order.created payload; every platform sender
 * runs on its t/data/<sender>/bench case (a realistic ~2 KB delivery of
 * its most common topic), signed as that platform signs.  Then the parts
 * (JSON parse, dump of "data", one HMAC-SHA256, one SHA-256) so the
 * breakdown is visible.
 *
 *   make bench-core
 *   build/bench/core [--batches=31] [--events=20000] [--warmup=2]
 *                    [--payload=t/bench/core-payloads/order-created.json]
 *
 * Each measurement runs --warmup untimed batches, then --batches timed
 * batches of --events events; one clock_gettime(CLOCK_MONOTONIC) pair per
 * batch.  Reported: median, p10 and p90 of the batches' ns/event.
 *
 * Memory is what the nginx module has: our own copies come from a bump
 * allocator reset per event (the request pool), which also holds the
 * JSON tree.
 * Every result is checked inside the timed loop (rc, one
 * event, the expected id); any mismatch makes the program exit 1.
 */


#define _GNU_SOURCE                 /* memmem() */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <libxml/xmlversion.h>


#include "loyalty_provider.h"
#include "loyalty_case.h"


#define DEFAULT_PAYLOAD  "t/bench/core-payloads/order-created.json"

/* Standard Webhooks: base64 of 24 raw key bytes, as in t/unit */
#define STD_SECRET   "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define STD_ID       "msg_2p5jXN8AQM9LWM0D4loKWxJek"
#define GEN_SECRET   "bench-generic-secret-0123456789abcdef"

#define ARENA_SIZE   (64 * 1024)
#define MAX_HEADERS  4


/* the request pool: a bump allocator, reset per event */

typedef struct {
    u_char   *start;
    u_char   *pos;
    u_char   *end;
    size_t    high;               /* most bytes one event used */
    size_t    failed;
} arena_t;


typedef struct {
    const char     *name[MAX_HEADERS];
    loyalty_str_t   value[MAX_HEADERS];
    size_t          n;
} headers_t;


/* one sender set up as a location would be */

typedef struct {
    const char               *label;
    loyalty_provider_conf_t   conf;
    headers_t                 headers;
    loyalty_request_t         req;
    loyalty_str_t             expect_id;
    size_t                    expect_n;       /* events per delivery */
    lt_case_t                *c;              /* platform senders */
} sender_t;


/* how the benchmark signs a platform sender's t/data/<sender>/bench case */
typedef enum {
    SIGN_NONE = 0,              /* salesforce: the org allow-list */
    SIGN_BODY_BASE64,           /* base64 HMAC of the body in header */
    SIGN_BODY_CONF,             /* the conf's header and encoding */
    SIGN_TOKEN,                 /* the secret itself in the conf's header */
    SIGN_STANDARD_RAW,          /* Standard Webhooks, raw secret bytes */
    SIGN_STANDARD_WHSEC,        /* Standard Webhooks/Svix, whsec_ secret */
    SIGN_STRIPE                 /* t=...,v1=hex */
} sign_e;


typedef struct {
    const char   *sender;
    sign_e        how;
    const char   *header;       /* or the header prefix: webhook, svix */
    const char   *secret;
    const char   *also;         /* a second t/data case to measure */
} signer_t;


typedef int (*op_pt)(void *ctx);


typedef struct {
    const char   *name;
    double        p10, p50, p90;
} result_t;


static void *arena_alloc(void *ctx, size_t size);
static void arena_reset(arena_t *a);
static int header(const loyalty_request_t *req, const char *name,
    loyalty_str_t *value);
static void hdr_add(headers_t *h, const char *name, const char *value);
static u_char *dup_exact(const void *p, size_t len);
static void die(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
static loyalty_str_t read_payload(const char *path);
static void sender_standard(sender_t *s, const loyalty_str_t *body,
    time_t now);
static void sender_generic(sender_t *s, const loyalty_str_t *body,
    time_t now);
static int op_verify(void *ctx);
static int op_normalize(void *ctx);
static int op_both(void *ctx);
static int check_event(sender_t *s, const loyalty_batch_t *batch);
static int op_parse(void *ctx);
static void *setup_alloc(void *ctx, size_t size);
static int op_dump(void *ctx);
static int op_hmac(void *ctx);
static int op_sha256(void *ctx);
static double now_ns(void);
static int cmp_double(const void *a, const void *b);
static void measure(const char *name, op_pt op, void *ctx);
static void print_row(const result_t *r);
static void sanity(sender_t *s);
static sender_t *sender_platform(sender_t *s, const char *name,
    const char *kase);
static const signer_t *signer_of(const char *name);
static size_t measure_sender(sender_t *s, char (*label)[64], size_t nl);
static void sign_case(sender_t *s, const signer_t *sg);
static void machine(void);


static arena_t          arena;
static loyalty_alloc_t  alloc = { arena_alloc, &arena };

static size_t           batches = 31;
static size_t           events = 20000;
static size_t           warmup = 2;
static unsigned long    failures;

static loyalty_str_t    body;
static loyalty_json_t  *data_member;
static loyalty_hmac_key_t  *hmac_key;

static result_t         results[72];
static sender_t         std_sender, gen_sender;
static size_t           nresults;

static const signer_t   signers[] = {
    { "shopify", SIGN_BODY_BASE64, "X-Shopify-Hmac-Sha256",
      "shpss_bench_0123456789abcdef", NULL },
    { "bigcommerce", SIGN_STANDARD_RAW, "webhook", "bc_bench_client_secret",
      NULL },
    { "loyaltylion", SIGN_BODY_BASE64, "x-loyaltylion-hmac-sha256",
      "ll_bench_site_secret", NULL },
    { "smile", SIGN_BODY_CONF, NULL, "smile_bench_app_secret", NULL },
    { "yotpo", SIGN_TOKEN, NULL, "yotpo-bench-token-0123456789", NULL },
    { "voyado", SIGN_STANDARD_WHSEC, "svix", STD_SECRET, NULL },
    { "stripe", SIGN_STRIPE, "Stripe-Signature", "whsec_bench_stripe",
      NULL },
    /* also one notification of ~2 KB: the cost of an event at its worst */
    { "salesforce", SIGN_NONE, NULL, NULL, "bench-single" },
    { NULL, SIGN_NONE, NULL, NULL, NULL }
};
static sender_t         platform[16];


static void *
arena_alloc(void *ctx, size_t size)
{
    u_char   *p;
    arena_t  *a;

    a = ctx;

    /* aligned for any member of loyalty_event_t, as ngx_palloc() does */
    p = (u_char *) (((uintptr_t) a->pos + 15) & ~(uintptr_t) 15);

    if (size > (size_t) (a->end - p)) {
        a->failed++;
        return NULL;
    }

    a->pos = p + size;

    return p;
}


static void
arena_reset(arena_t *a)
{
    size_t  used;

    used = a->pos - a->start;
    if (used > a->high) {
        a->high = used;
    }

    a->pos = a->start;
}


static int
header(const loyalty_request_t *req, const char *name, loyalty_str_t *value)
{
    size_t      i;
    headers_t  *h;

    h = req->data;

    for (i = 0; i < h->n; i++) {
        if (strcasecmp(h->name[i], name) == 0) {
            *value = h->value[i];
            return LOYALTY_OK;
        }
    }

    return LOYALTY_DECLINED;
}


/* exact-size heap copies without a NUL, as nginx buffers are */

static u_char *
dup_exact(const void *p, size_t len)
{
    u_char  *d;

    d = malloc(len ? len : 1);
    if (d == NULL) {
        die("out of memory");
    }

    memcpy(d, p, len);

    return d;
}


static void
hdr_add(headers_t *h, const char *name, const char *value)
{
    if (h->n == MAX_HEADERS) {
        die("too many headers");
    }

    h->name[h->n] = name;
    h->value[h->n].len = strlen(value);
    h->value[h->n].data = dup_exact(value, strlen(value));
    h->n++;
}


static void
die(const char *fmt, ...)
{
    va_list  args;

    fprintf(stderr, "bench-core: ");
    va_start(args, fmt);
    vfprintf(stderr, fmt, args);
    va_end(args);
    fprintf(stderr, "\n");

    exit(2);
}


static loyalty_str_t
read_payload(const char *path)
{
    FILE           *f;
    char            buf[65536];
    size_t          n;
    loyalty_str_t   s;

    f = fopen(path, "rb");
    if (f == NULL) {
        die("%s: %s (run from the repository root)", path, strerror(errno));
    }

    n = fread(buf, 1, sizeof(buf), f);
    if (ferror(f) || n == sizeof(buf)) {
        die("%s: read error or larger than 64 KB", path);
    }

    fclose(f);

    /* the file ends with a newline; the signed body does not */
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) {
        n--;
    }

    s.len = n;
    s.data = dup_exact(buf, n);

    return s;
}


static void
conf_for(loyalty_provider_conf_t *conf, const char *name,
    const char *secret)
{
    loyalty_err_t  err;
    loyalty_str_t  s;

    loyalty_provider_conf_init(conf);

    conf->provider = loyalty_provider_find((const u_char *) name,
                                           strlen(name));
    if (conf->provider == NULL) {
        die("no provider \"%s\" in the registry", name);
    }

    s.data = (const u_char *) secret;
    s.len = strlen(secret);

    if (loyalty_provider_add_secret(conf, &s, &err) != LOYALTY_OK) {
        die("%s: add secret: %s", name, err.msg);
    }
}


static void
request_for(sender_t *s, const loyalty_str_t *b, time_t now)
{
    memset(&s->req, 0, sizeof(loyalty_request_t));

    s->req.body = *b;
    s->req.now = now;
    s->req.now_ms = (int64_t) now * 1000 + 123;
    s->req.header = header;
    s->req.data = &s->headers;
}


/* signed here with OpenSSL's one-shot HMAC(), independent of src/core */

static void
sender_standard(sender_t *s, const loyalty_str_t *b, time_t now)
{
    int            klen;
    char           ts[32], sig[128];
    u_char         key[64], mac[EVP_MAX_MD_SIZE];
    size_t         mlen;
    u_char        *msg;
    unsigned int   len;

    memset(s, 0, sizeof(sender_t));
    s->label = "standard";

    conf_for(&s->conf, "standard", STD_SECRET);

    klen = EVP_DecodeBlock(key, (const u_char *) STD_SECRET + 6,
                           (int) strlen(STD_SECRET) - 6);
    if (klen != 24) {
        die("secret decode: %d", klen);
    }

    snprintf(ts, sizeof(ts), "%lld", (long long) now);

    mlen = strlen(STD_ID) + 1 + strlen(ts) + 1 + b->len;
    msg = malloc(mlen);
    if (msg == NULL) {
        die("out of memory");
    }

    sprintf((char *) msg, "%s.%s.", STD_ID, ts);
    memcpy(msg + strlen(STD_ID) + 1 + strlen(ts) + 1, b->data, b->len);

    if (HMAC(EVP_sha256(), key, klen, msg, mlen, mac, &len) == NULL) {
        die("HMAC failed");
    }

    free(msg);

    memcpy(sig, "v1,", 3);
    EVP_EncodeBlock((u_char *) sig + 3, mac, (int) len);

    hdr_add(&s->headers, "webhook-id", STD_ID);
    hdr_add(&s->headers, "webhook-timestamp", ts);
    hdr_add(&s->headers, "webhook-signature", sig);

    request_for(s, b, now);

    s->expect_id.data = (const u_char *) STD_ID;
    s->expect_id.len = strlen(STD_ID);
}


/* HMAC-SHA256 of the body, hex, in X-Signature; id = SHA-256 of body */

static void
sender_generic(sender_t *s, const loyalty_str_t *b, time_t now)
{
    char           *id;
    char            sig[2 * EVP_MAX_MD_SIZE + 1];
    u_char          mac[EVP_MAX_MD_SIZE];
    unsigned int    len, i;

    memset(s, 0, sizeof(sender_t));
    s->label = "generic";

    conf_for(&s->conf, "generic", GEN_SECRET);

    if (s->conf.md != LOYALTY_MD_SHA256 || s->conf.encoding != LOYALTY_ENC_HEX
        || s->conf.id_header != NULL)
    {
        die("generic defaults changed: expected sha256, hex, body digest");
    }

    if (HMAC(EVP_sha256(), GEN_SECRET, (int) strlen(GEN_SECRET), b->data,
             b->len, mac, &len) == NULL)
    {
        die("HMAC failed");
    }

    for (i = 0; i < len; i++) {
        sprintf(sig + 2 * i, "%02x", mac[i]);
    }

    hdr_add(&s->headers, s->conf.signature_header, sig);

    request_for(s, b, now);

    /* the id the generic sender derives when no id header is configured */
    if (EVP_Digest(b->data, b->len, mac, &len, EVP_sha256(), NULL) != 1) {
        die("SHA-256 failed");
    }

    id = malloc(2 * len + 1);
    if (id == NULL) {
        die("out of memory");
    }

    for (i = 0; i < len; i++) {
        sprintf(id + 2 * i, "%02x", mac[i]);
    }

    s->expect_id.data = (const u_char *) id;
    s->expect_id.len = 2 * len;
}


/*
 * A platform sender on its t/data/<name>/bench case (the same files the
 * golden tests check), signed the way that platform signs.
 */

static const signer_t *
signer_of(const char *name)
{
    const signer_t  *sg;

    for (sg = signers; sg->sender != NULL; sg++) {
        if (strcmp(sg->sender, name) == 0) {
            return sg;
        }
    }

    return NULL;
}


static sender_t *
sender_platform(sender_t *s, const char *name, const char *kase)
{
    char                       dir[256];
    loyalty_err_t              err;
    loyalty_str_t              secret;
    loyalty_batch_t            batch;
    const signer_t            *sg;

    sg = signer_of(name);
    if (sg == NULL) {
        return NULL;
    }

    memset(s, 0, sizeof(sender_t));
    s->label = sg->sender;

    s->c = malloc(sizeof(lt_case_t));
    if (s->c == NULL) {
        die("out of memory");
    }

    snprintf(dir, sizeof(dir), "t/data/%s", name);

    if (lt_case_load(s->c, name, dir, kase) != 0) {
        die("%s: %s", name, s->c->error);
    }

    if (sg->secret != NULL) {
        secret = lt_str(sg->secret);

        if (loyalty_provider_add_secret(&s->c->conf, &secret, &err)
            != LOYALTY_OK)
        {
            die("%s: add secret: %s", name, err.msg);
        }
    }

    sign_case(s, sg);

    s->conf = s->c->conf;
    lt_case_request(s->c, &s->req);

    /* what one untimed run gives is what every timed run must give */
    arena_reset(&arena);

    if (s->conf.provider->normalize(&s->conf, &s->req, &alloc, &batch, &err)
        != LOYALTY_OK || batch.nevents == 0)
    {
        die("%s: normalize: %s", name, err.msg);
    }

    s->expect_n = batch.nevents;
    s->expect_id.data = dup_exact(batch.events[0].id.data,
                                  batch.events[0].id.len);
    s->expect_id.len = batch.events[0].id.len;

    return s;
}


/* signed with OpenSSL's one-shot HMAC(), independent of src/core */

static void
sign_case(sender_t *s, const signer_t *sg)
{
    int             klen;
    char            ts[32], name[64], sig[256], *hex;
    u_char          key[128], mac[EVP_MAX_MD_SIZE], *msg;
    size_t          mlen, i;
    unsigned int    len;
    loyalty_str_t   id;
    lt_case_t      *c;

    c = s->c;

    snprintf(ts, sizeof(ts), "%lld", (long long) c->now);

    switch (sg->how) {

    case SIGN_NONE:
        return;

    case SIGN_TOKEN:
        if (lt_case_header(c, c->conf.signature_header, sg->secret) != 0) {
            die("%s: too many headers", sg->sender);
        }
        return;

    case SIGN_BODY_BASE64:
    case SIGN_BODY_CONF:
        if (HMAC(EVP_sha256(), sg->secret, (int) strlen(sg->secret),
                 (u_char *) c->body, c->body_len, mac, &len) == NULL)
        {
            die("HMAC failed");
        }

        if (sg->how == SIGN_BODY_CONF && c->conf.encoding == LOYALTY_ENC_HEX) {
            for (i = 0; i < len; i++) {
                sprintf(sig + 2 * i, "%02x", mac[i]);
            }

        } else {
            EVP_EncodeBlock((u_char *) sig, mac, (int) len);
        }

        if (lt_case_header(c, sg->how == SIGN_BODY_CONF
                              ? c->conf.signature_header : sg->header, sig)
            != 0)
        {
            die("%s: too many headers", sg->sender);
        }
        return;

    case SIGN_STRIPE:
        mlen = strlen(ts) + 1 + c->body_len;
        msg = malloc(mlen);
        hex = malloc(2 * EVP_MAX_MD_SIZE + 1);
        if (msg == NULL || hex == NULL) {
            die("out of memory");
        }

        sprintf((char *) msg, "%s.", ts);
        memcpy(msg + strlen(ts) + 1, c->body, c->body_len);

        if (HMAC(EVP_sha256(), sg->secret, (int) strlen(sg->secret), msg,
                 mlen, mac, &len) == NULL)
        {
            die("HMAC failed");
        }

        for (i = 0; i < len; i++) {
            sprintf(hex + 2 * i, "%02x", mac[i]);
        }

        snprintf(sig, sizeof(sig), "t=%s,v1=%s", ts, hex);
        free(msg);
        free(hex);

        if (lt_case_header(c, sg->header, sig) != 0) {
            die("%s: too many headers", sg->sender);
        }
        return;

    default:
        break;
    }

    /* Standard Webhooks and Svix: "id.timestamp.body" */
    if (sg->how == SIGN_STANDARD_WHSEC) {
        klen = EVP_DecodeBlock(key, (const u_char *) sg->secret + 6,
                               (int) strlen(sg->secret) - 6);
        if (klen != 24) {
            die("secret decode: %d", klen);
        }

    } else {
        klen = (int) strlen(sg->secret);
        memcpy(key, sg->secret, klen);
    }

    snprintf(name, sizeof(name), "%s-id", sg->header);

    if (lt_header(&(loyalty_request_t) { .data = &c->headers }, name, &id)
        != LOYALTY_OK)
    {
        die("%s: the bench case has no %s header", sg->sender, name);
    }

    mlen = id.len + 1 + strlen(ts) + 1 + c->body_len;
    msg = malloc(mlen);
    if (msg == NULL) {
        die("out of memory");
    }

    memcpy(msg, id.data, id.len);
    sprintf((char *) msg + id.len, ".%s.", ts);
    memcpy(msg + id.len + 1 + strlen(ts) + 1, c->body, c->body_len);

    if (HMAC(EVP_sha256(), key, klen, msg, mlen, mac, &len) == NULL) {
        die("HMAC failed");
    }

    free(msg);

    memcpy(sig, "v1,", 3);
    EVP_EncodeBlock((u_char *) sig + 3, mac, (int) len);

    snprintf(name, sizeof(name), "%s-timestamp", sg->header);
    if (lt_case_header(c, name, ts) != 0) {
        die("%s: too many headers", sg->sender);
    }

    snprintf(name, sizeof(name), "%s-signature", sg->header);
    if (lt_case_header(c, name, sig) != 0) {
        die("%s: too many headers", sg->sender);
    }
}


/* the measured operations: return 0 on the expected result */

static int
op_verify(void *ctx)
{
    sender_t       *s;
    loyalty_err_t   err;

    s = ctx;

    return s->conf.provider->verify(&s->conf, &s->req, &err) != LOYALTY_OK;
}


static int
check_event(sender_t *s, const loyalty_batch_t *batch)
{
    const loyalty_event_t  *ev;

    if (batch->nevents != (s->expect_n ? s->expect_n : 1)) {
        return 1;
    }

    ev = &batch->events[0];

    return ev->id.len != s->expect_id.len
           || memcmp(ev->id.data, s->expect_id.data, ev->id.len) != 0
           || ev->data.len == 0;
}


static int
op_normalize(void *ctx)
{
    sender_t         *s;
    loyalty_err_t     err;
    loyalty_batch_t   batch;

    s = ctx;
    batch.nevents = 0;

    if (s->conf.provider->normalize(&s->conf, &s->req, &alloc, &batch, &err)
        != LOYALTY_OK)
    {
        return 1;
    }

    return check_event(s, &batch);
}


/* what the module does per delivery: verify, then normalize */

static int
op_both(void *ctx)
{
    sender_t       *s;
    loyalty_err_t   err;

    s = ctx;

    if (s->conf.provider->verify(&s->conf, &s->req, &err) != LOYALTY_OK) {
        return 1;
    }

    return op_normalize(ctx);
}


/* loyalty_json_parse(): validated, the tree goes into the arena */

static int
op_parse(void *ctx)
{
    loyalty_err_t    err;
    loyalty_json_t  *obj;

    (void) ctx;

    if (loyalty_json_parse(&body, &alloc, &obj, &err) != LOYALTY_OK) {
        return 1;
    }

    return obj->type != LOYALTY_JSON_OBJECT;
}


/* the parsed payload lives for the whole run, outside the arena */

static void *
setup_alloc(void *ctx, size_t size)
{
    (void) ctx;

    return malloc(size);
}


static int
op_dump(void *ctx)
{
    loyalty_str_t  out;

    (void) ctx;

    if (loyalty_json_dump(data_member, &alloc, &out) != LOYALTY_OK) {
        return 1;
    }

    return out.len < 1000;
}


/* one HMAC-SHA256 over the body with a reused keyed context (as verify) */

static int
op_hmac(void *ctx)
{
    u_char  mac[LOYALTY_HMAC_MAX];

    (void) ctx;

    return loyalty_hmac(hmac_key, &body, 1, mac) != 32;
}


/* one SHA-256 of the body: generic's event id when no id header is set */

static int
op_sha256(void *ctx)
{
    loyalty_str_t  id;

    return loyalty_provider_body_digest(&((sender_t *) ctx)->req, &alloc,
                                        &id)
           != LOYALTY_OK || id.len != 64;
}


static double
now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x, y;

    x = *(const double *) a;
    y = *(const double *) b;

    return (x > y) - (x < y);
}


static void
measure(const char *name, op_pt op, void *ctx)
{
    size_t         b, i, total;
    double         t0, t1, *per;
    unsigned long  bad;
    result_t      *r;

    per = calloc(batches, sizeof(double));
    if (per == NULL) {
        die("out of memory");
    }

    total = warmup + batches;
    bad = 0;

    for (b = 0; b < total; b++) {
        t0 = now_ns();

        for (i = 0; i < events; i++) {
            arena_reset(&arena);
            bad += (unsigned long) op(ctx);
        }

        t1 = now_ns();

        if (b >= warmup) {
            per[b - warmup] = (t1 - t0) / (double) events;
        }
    }

    if (bad) {
        fprintf(stderr, "bench-core: %s: %lu of %zu results not as expected\n",
                name, bad, total * events);
        failures += bad;
    }

    qsort(per, batches, sizeof(double), cmp_double);

    if (nresults == sizeof(results) / sizeof(results[0])) {
        die("too many results");
    }

    r = &results[nresults++];
    r->name = name;
    r->p10 = per[(batches - 1) / 10];
    r->p50 = per[(batches - 1) / 2];
    r->p90 = per[(batches - 1) - (batches - 1) / 10];

    print_row(r);

    free(per);
}


static void
print_row(const result_t *r)
{
    printf("| %-52s | %9.0f | %9.0f | %9.0f |\n", r->name, r->p50, r->p10,
           r->p90);
    fflush(stdout);
}


/* once, untimed: the event is the one the unit tests would expect */

static void
sanity(sender_t *s)
{
    loyalty_err_t            err;
    loyalty_batch_t          batch;
    const loyalty_event_t   *ev;

    arena_reset(&arena);

    if (s->conf.provider->verify(&s->conf, &s->req, &err) != LOYALTY_OK) {
        die("%s: verify: %s", s->label, err.msg);
    }

    if (s->conf.provider->normalize(&s->conf, &s->req, &alloc, &batch, &err)
        != LOYALTY_OK)
    {
        die("%s: normalize: %s", s->label, err.msg);
    }

    if (check_event(s, &batch)) {
        die("%s: unexpected event id", s->label);
    }

    ev = &batch.events[0];

#define expect(cond, what)                                                  \
    if (!(cond)) {                                                          \
        die("%s: %s", s->label, what);                                      \
    }

    expect(loyalty_str_eq(&ev->type, "order.created"), "type");

    /*
     * standard unwraps "data", so the customer is found; generic keeps
     * the whole body as data and looks for identity at its top level,
     * where this payload has none
     */
    if (s == &std_sender) {
        expect(loyalty_str_eq(&ev->ext_id, "cus_1042"), "ext_id");
        expect(loyalty_str_eq(&ev->store_cid, "7261538492018"),
               "store_cid");
        expect(loyalty_str_eq(&ev->phone, "+4915112345678"), "phone");
        expect(ev->email.len != 0, "email");
    }
    /* 64-bit id and decimal money keep their text through the dump */
    expect(memmem(ev->data.data, ev->data.len, "\"id\":5783125416329012345",
                  24) != NULL, "64-bit order id in data");
    expect(memmem(ev->data.data, ev->data.len, "\"discount\":10.00", 16)
           != NULL, "decimal money in data");

#undef expect

    printf("# %-8s verify ok, normalize ok: id %.*s, type %.*s, "
           "data %zu B\n", s->label, (int) ev->id.len, ev->id.data,
           (int) ev->type.len, ev->type.data, ev->data.len);
}


static void
machine(void)
{
    FILE  *f;
    char   line[256], *p;

    f = fopen("/proc/cpuinfo", "r");
    if (f == NULL) {
        return;
    }

    while (fgets(line, sizeof(line), f) != NULL) {
        if (strncmp(line, "model name", 10) == 0
            && (p = strchr(line, ':')) != NULL)
        {
            printf("# cpu: %s", p + 2);
            break;
        }
    }

    fclose(f);
}


/* the three rows of a sender; labels live as long as the results */

static size_t
measure_sender(sender_t *s, char (*label)[64], size_t nl)
{
    char  suffix[48];

    if (nl + 3 > 48) {
        die("too many senders");
    }

    if (s->c != NULL) {
        snprintf(suffix, sizeof(suffix), " (%.20s, %zu B%s)",
                 s->c->body_name, s->c->body_len,
                 s->expect_n > 1 ? ", per message" : "");

    } else {
        snprintf(suffix, sizeof(suffix), " (%zu B%s)", body.len,
                 s == &gen_sender ? ", sha256/hex" : "");
    }

    snprintf(label[nl], 64, "%s: verify%s", s->label, suffix);
    measure(label[nl++], op_verify, s);
    snprintf(label[nl], 64, "%s: normalize", s->label);
    measure(label[nl++], op_normalize, s);
    snprintf(label[nl], 64, "%s: verify + normalize", s->label);
    measure(label[nl++], op_both, s);

    return nl;
}


int
main(int argc, char **argv)
{
    int             i;
    char            when[64];
    time_t          now;
    const char     *payload, *names, *p, *q;
    loyalty_json_t  *parsed;
    loyalty_alloc_t  setup;
    loyalty_err_t   err;
    static char     label[48][64];
    char            pname[32];
    size_t          nl, np;

    payload = DEFAULT_PAYLOAD;

    for (i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--batches=", 10) == 0) {
            batches = strtoul(argv[i] + 10, NULL, 10);

        } else if (strncmp(argv[i], "--events=", 9) == 0) {
            events = strtoul(argv[i] + 9, NULL, 10);

        } else if (strncmp(argv[i], "--warmup=", 9) == 0) {
            warmup = strtoul(argv[i] + 9, NULL, 10);

        } else if (strncmp(argv[i], "--payload=", 10) == 0) {
            payload = argv[i] + 10;

        } else {
            fprintf(stderr, "usage: %s [--batches=31] [--events=20000] "
                    "[--warmup=2] [--payload=FILE]\n", argv[0]);
            return 2;
        }
    }

    if (batches < 1 || events < 1) {
        die("--batches and --events must be positive");
    }

    arena.start = malloc(ARENA_SIZE);
    if (arena.start == NULL) {
        die("out of memory");
    }
    arena.pos = arena.start;
    arena.end = arena.start + ARENA_SIZE;

    body = read_payload(payload);

    /* "now" is the time the payload was signed: inside the tolerance */
    now = time(NULL);

    sender_standard(&std_sender, &body, now);
    sender_generic(&gen_sender, &body, now);

    /* the "data" tree outlives the per-event arena resets */
    setup.alloc = setup_alloc;
    setup.ctx = NULL;

    if (loyalty_json_parse(&body, &setup, &parsed, &err) != LOYALTY_OK) {
        die("%s: %s", payload, err.msg);
    }

    data_member = loyalty_json_object(parsed, "data");
    if (data_member == NULL) {
        die("%s: no \"data\" object", payload);
    }

    hmac_key = std_sender.conf.keys[0];

    strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", gmtime(&now));

    printf("# loyalty-edge core benchmark, %s\n# command:", when);
    for (i = 0; i < argc; i++) {
        printf(" %s", argv[i]);
    }
    printf("\n");
    machine();
    printf("# %s, libxml2 %s, gcc %s\n", OpenSSL_version(OPENSSL_VERSION),
           LIBXML_DOTTED_VERSION, __VERSION__);
    printf("# payload %s: %zu B; %zu warm-up + %zu timed batches of %zu "
           "events; registry: %s\n", payload, body.len, warmup, batches,
           events, loyalty_provider_names());

    sanity(&std_sender);
    sanity(&gen_sender);

    printf("\n| %-52s | %9s | %9s | %9s |\n", "ns per delivery", "median",
           "p10", "p90");
    printf("|%s|----------:|----------:|----------:|\n",
           "------------------------------------------------------");

    /* every sender of the registry that this benchmark knows how to sign */

    names = loyalty_provider_names();
    nl = 0;
    np = 0;

    for (p = names; *p != '\0'; p = (*q == '\0') ? q : q + 2) {
        sender_t  *s;

        q = strchr(p, ',');
        if (q == NULL) {
            q = p + strlen(p);
        }

        if ((size_t) (q - p) == 8 && strncmp(p, "standard", 8) == 0) {
            s = &std_sender;

        } else if ((size_t) (q - p) == 7 && strncmp(p, "generic", 7) == 0) {
            s = &gen_sender;

        } else {
            snprintf(pname, sizeof(pname), "%.*s", (int) (q - p), p);

            if (np == sizeof(platform) / sizeof(platform[0])
                || (s = sender_platform(&platform[np], pname, "bench"))
                   == NULL)
            {
                die("sender \"%s\" has no benchmark setup", pname);
            }

            np++;
        }

        nl = measure_sender(s, label, nl);

        /* a sender's second case, when one size does not tell it all */
        if (s->c != NULL && signer_of(s->label)->also != NULL) {
            if (np == sizeof(platform) / sizeof(platform[0])) {
                die("too many senders");
            }

            s = sender_platform(&platform[np++], s->label,
                                signer_of(s->label)->also);
            nl = measure_sender(s, label, nl);
        }
    }

    measure("part: loyalty_json_parse (tree)", op_parse, NULL);
    measure("part: loyalty_json_dump(data)", op_dump, NULL);
    measure("part: HMAC-SHA256 of the body", op_hmac, NULL);
    measure("part: SHA-256 of the body (generic id)", op_sha256,
            &gen_sender);

    printf("\n# arena: at most %zu B per event, %zu failed allocations\n",
           arena.high, arena.failed);

    loyalty_provider_conf_free(&std_sender.conf);
    loyalty_provider_conf_free(&gen_sender.conf);

    for (i = 0; i < (int) np; i++) {
        lt_case_free(platform[i].c);
        free(platform[i].c);
    }

    if (failures || arena.failed) {
        fprintf(stderr, "bench-core: FAILED: %lu unexpected results\n",
                failures);
        return 1;
    }

    printf("# checked: all %zu operations (warm-up included) gave "
           "LOYALTY_OK and, for normalize, one event with the expected id\n",
           nresults * (warmup + batches) * events);

    return 0;
}
