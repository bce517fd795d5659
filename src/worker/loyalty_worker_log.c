/*
 * Copyright (C) loyalty-edge authors
 *
 * One JSON object per line on stderr: time, level, msg, and when known
 * corr, store, event, destination, status, latency_ms.  Secrets and the
 * identity keys (email, phone) are never passed here.
 */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "loyalty_worker.h"


int  loyalty_log_level = LOYALTY_LOG_INFO;

/*
 * Lines of a busy loop turn (a delivered line per event) are written
 * together: stderr is buffered while the loop runs and flushed by an
 * event activated with the turn's first line, which runs after the
 * callbacks already active.  Errors and warnings are written at once; a
 * SIGKILL loses at most the info lines of the turn it interrupts.
 */
static struct event  *loyalty_log_flush_ev;
static unsigned       loyalty_log_pending;
static char           loyalty_log_buf[65536];

static void loyalty_log_flush(evutil_socket_t fd, short what, void *arg);

static const char  *loyalty_log_levels[] = { "error", "warn", "info",
    "debug", NULL };


int
loyalty_log_level_parse(const char *name)
{
    int  i;

    for (i = 0; loyalty_log_levels[i] != NULL; i++) {
        if (strcasecmp(name, loyalty_log_levels[i]) == 0) {
            return i;
        }
    }

    return -1;
}


int
loyalty_log_init(struct event_base *base)
{
    loyalty_log_flush_ev = event_new(base, -1, 0, loyalty_log_flush, NULL);
    if (loyalty_log_flush_ev == NULL) {
        return LOYALTY_ERROR;
    }

    setvbuf(stderr, loyalty_log_buf, _IOFBF, sizeof(loyalty_log_buf));

    return LOYALTY_OK;
}


/* before the base goes: unbuffered again, nothing left behind */

void
loyalty_log_close(void)
{
    fflush(stderr);
    setvbuf(stderr, NULL, _IONBF, 0);

    if (loyalty_log_flush_ev != NULL) {
        event_free(loyalty_log_flush_ev);
        loyalty_log_flush_ev = NULL;
    }

    loyalty_log_pending = 0;
}


static void
loyalty_log_flush(evutil_socket_t fd, short what, void *arg)
{
    (void) fd;
    (void) what;
    (void) arg;

    loyalty_log_pending = 0;
    fflush(stderr);
}


uint64_t
loyalty_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


uint64_t
loyalty_now_us(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}


static size_t
loyalty_log_field(char *p, const char *name, const u_char *v, size_t len)
{
    size_t  n;

    if (len > 256) {
        len = 256;
    }

    n = sprintf(p, ",\"%s\":\"", name);
    n += loyalty_jw_escape((u_char *) p + n, v, len);
    p[n++] = '"';

    return n;
}


void
loyalty_log_write(int level, const loyalty_job_t *job, const char *dest,
    int status, long latency_ms, const char *fmt, ...)
{
    char            *p;
    size_t           n;
    va_list          args;
    const char      *store;
    struct tm        tm;
    struct timeval   tv;
    char             msg[512], line[16384];

    va_start(args, fmt);
    n = vsnprintf(msg, sizeof(msg), fmt, args);
    va_end(args);

    if (n >= sizeof(msg)) {
        n = sizeof(msg) - 1;
    }

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);

    p = line;
    p += strftime(p, 32, "{\"time\":\"%Y-%m-%dT%H:%M:%S", &tm);
    p += sprintf(p, ".%03dZ\",\"level\":\"%s\",\"msg\":\"",
                 (int) (tv.tv_usec / 1000), loyalty_log_levels[level]);
    p += loyalty_jw_escape((u_char *) p, (u_char *) msg, n);
    *p++ = '"';

    if (job != NULL) {
        if (job->ev.corr.len) {
            p += loyalty_log_field(p, "corr", job->ev.corr.data,
                                   job->ev.corr.len);
        }

        store = loyalty_cycle.conf->stores[job->store];
        p += loyalty_log_field(p, "store", (u_char *) store, strlen(store));

        if (job->ev.id.len) {
            p += loyalty_log_field(p, "event", job->ev.id.data,
                                   job->ev.id.len);
        }

        p += loyalty_log_field(p, "entry", (u_char *) job->entry_id,
                               strlen(job->entry_id));
        p += sprintf(p, ",\"attempt\":%u", job->attempts + 1);
    }

    if (dest != NULL) {
        p += loyalty_log_field(p, "destination", (u_char *) dest,
                               strlen(dest));
    }

    if (status >= 0) {
        p += sprintf(p, ",\"status\":%d", status);
    }

    if (latency_ms >= 0) {
        p += sprintf(p, ",\"latency_ms\":%ld", latency_ms);
    }

    *p++ = '}';
    *p++ = '\n';

    fwrite(line, 1, p - line, stderr);

    if (level <= LOYALTY_LOG_WARN || loyalty_log_flush_ev == NULL) {
        fflush(stderr);

    } else if (!loyalty_log_pending) {
        loyalty_log_pending = 1;
        event_active(loyalty_log_flush_ev, EV_TIMEOUT, 0);
    }
}
