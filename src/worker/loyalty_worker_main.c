/*
 * Copyright (C) loyalty-edge authors
 *
 * loyalty-worker: drains loyalty:{S}:in of every configured store to the
 * destinations of the flows.
 *
 *   loyalty-worker [-c FILE]      run
 *   loyalty-worker -t [-c FILE]   check the configuration and exit
 *   loyalty-worker -v             version
 *   loyalty-worker [-c FILE] stats|dlq ...   operator commands (_cli.c)
 *
 * SIGTERM/SIGINT: stop reading, let the requests in flight finish within
 * shutdown_timeout_ms, ack them, exit 0.  Whatever was read but not
 * delivered stays in this consumer's pending list in Redis: a restart
 * reads it first, another worker claims it after claim_timeout_ms.
 *
 * SIGHUP: check the file again (as -t); a bad one is logged and the
 * running configuration stays.  A good one: the same drain as SIGTERM,
 * every resource freed, then execv of the same binary with the same
 * argv.  The pid, and so the consumer name, stays: the new image reads
 * its own pending entries first.  SIGHUP, SIGTERM and SIGINT are blocked
 * across the exec (the mask survives it) and unblocked once the new
 * image handles them, so none is lost and none kills it on the way.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "loyalty_worker.h"
#include "loyalty_worker_sf_pull.h"


#define LOYALTY_DEFAULT_CONF  "conf/loyalty-worker.yaml"
#define LOYALTY_RELOAD_ENV    "LOYALTY_WORKER_RELOADED"


static void loyalty_usage(FILE *fp);
static void loyalty_signal(evutil_socket_t sig, short what, void *arg);
static void loyalty_sighup(evutil_socket_t sig, short what, void *arg);
static void loyalty_drain(loyalty_cycle_t *cycle);
static void loyalty_deadline(evutil_socket_t fd, short what, void *arg);
static void loyalty_signals_mask(int how);
static void loyalty_cloexec_all(void);
static int loyalty_exec(char **argv);


loyalty_cycle_t  loyalty_cycle;

static struct event  *loyalty_deadline_ev;
static const char    *loyalty_conf_path;
static int            loyalty_reloading;   /* exec after the drain */


int
main(int argc, char **argv)
{
    int                ch, test, level, rc;
    char               host[256];
    const char        *path;
    struct event      *sigterm, *sigint, *sighup;
    loyalty_conf_t    *conf;
    loyalty_cycle_t   *cycle;
    char               err[1536];

    test = 0;
    path = LOYALTY_DEFAULT_CONF;

    while ((ch = getopt(argc, argv, "+c:thv")) != -1) {
        switch (ch) {
        case 'c':
            path = optarg;
            break;
        case 't':
            test = 1;
            break;
        case 'v':
            printf("loyalty-worker " LOYALTY_WORKER_VERSION "\n");
            return 0;
        case 'h':
            loyalty_usage(stdout);
            return 0;
        default:
            loyalty_usage(stderr);
            return 2;
        }
    }

    if (optind != argc && test) {
        loyalty_usage(stderr);
        return 2;
    }

    conf = loyalty_conf_load(path, err, sizeof(err));

    if (optind != argc) {
        if (conf == NULL) {
            fprintf(stderr, "loyalty-worker: %s\n", err);
            return 1;
        }

        ch = loyalty_cli(conf, argc - optind, argv + optind);
        loyalty_conf_free(conf);
        return ch;
    }

    if (test) {
        if (conf == NULL) {
            fprintf(stderr, "loyalty-worker: %s\n"
                    "loyalty-worker: configuration file %s test failed\n",
                    err, path);
            return 1;
        }

        fprintf(stderr, "loyalty-worker: the configuration file %s syntax "
                "is ok\nloyalty-worker: configuration file %s test is "
                "successful\n", path, path);
        loyalty_conf_free(conf);
        return 0;
    }

    cycle = &loyalty_cycle;
    cycle->conf = conf;

    if (conf == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1, "%s", err);
        return 1;
    }

    if (conf->log_level != NULL) {
        level = loyalty_log_level_parse(conf->log_level);
        loyalty_log_level = level;
    }

    loyalty_conf_path = path;

    signal(SIGPIPE, SIG_IGN);

    if (gethostname(host, sizeof(host)) != 0) {
        strcpy(host, "localhost");
    }

    host[sizeof(host) - 1] = '\0';
    snprintf(cycle->consumer, sizeof(cycle->consumer), "%s:%d", host,
             (int) getpid());

    cycle->base = event_base_new();
    if (cycle->base == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "event_base_new() failed");
        return 1;
    }

    sigterm = evsignal_new(cycle->base, SIGTERM, loyalty_signal, cycle);
    sigint = evsignal_new(cycle->base, SIGINT, loyalty_signal, cycle);
    sighup = evsignal_new(cycle->base, SIGHUP, loyalty_sighup, cycle);
    loyalty_deadline_ev = evtimer_new(cycle->base, loyalty_deadline, cycle);

    if (sigterm == NULL || sigint == NULL || sighup == NULL
        || loyalty_deadline_ev == NULL
        || evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0
        || evsignal_add(sighup, NULL) != 0)
    {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "cannot install signal handlers");
        return 1;
    }

    /* blocked by the image that exec'ed us: handled from here on */
    loyalty_signals_mask(SIG_UNBLOCK);

    if (loyalty_log_init(cycle->base) != LOYALTY_OK
        || loyalty_http_init(cycle) != LOYALTY_OK
        || loyalty_rl_init(cycle) != LOYALTY_OK
        || loyalty_sf_init(cycle) != LOYALTY_OK
        || loyalty_metrics_init(cycle) != LOYALTY_OK
        || loyalty_consumer_init(cycle) != LOYALTY_OK
        || loyalty_pull_init(cycle) != LOYALTY_OK)
    {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "initialisation failed");
        return 1;
    }

    loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                "loyalty-worker " LOYALTY_WORKER_VERSION " started: "
                "consumer %s, %u store(s), %u destination(s), %u flow(s)",
                cycle->consumer, conf->stores_count, conf->destinations_count,
                conf->flows_count);

    if (getenv(LOYALTY_RELOAD_ENV) != NULL) {
        unsetenv(LOYALTY_RELOAD_ENV);
        loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                    "configuration reloaded from %s", path);
    }

    event_base_dispatch(cycle->base);

    loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                loyalty_reloading ? "reloading: restarting with the new "
                "configuration" : "exiting");

    /* everything goes, in dependency order: a reload execs after it */
    loyalty_consumer_cleanup(cycle);
    loyalty_metrics_cleanup();
    loyalty_http_cleanup();
    loyalty_pull_cleanup(cycle);
    loyalty_sf_cleanup(cycle);
    loyalty_rl_cleanup(cycle);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    event_free(loyalty_deadline_ev);
    loyalty_log_close();
    event_base_free(cycle->base);
    cycle->base = NULL;
    loyalty_conf_free(conf);
    cycle->conf = NULL;

    rc = 0;

    if (loyalty_reloading) {
        rc = loyalty_exec(argv);
    }

    return rc;
}


static void
loyalty_usage(FILE *fp)
{
    fprintf(fp,
        "usage: loyalty-worker [-t] [-c FILE]\n"
        "  -c FILE   configuration (default " LOYALTY_DEFAULT_CONF ")\n"
        "  -t        check the configuration and exit\n"
        "  -v        print the version and exit\n"
        "commands (see docs/worker.md):\n"
        "  stats [--json]                   stream, pending, retry, dlq\n"
        "  dlq list STORE [--count N]       dead letters, oldest first\n"
        "  dlq show STORE ID                one dead letter as JSON\n"
        "  dlq replay STORE ID|--all        back to the stream, once\n"
        "  dlq purge STORE ID|--all         delete\n");
}


static void
loyalty_signal(evutil_socket_t sig, short what, void *arg)
{
    loyalty_cycle_t  *cycle;

    (void) what;

    cycle = arg;

    /* during a reload's drain: stop instead, a second signal exits now */
    if (cycle->stopping && loyalty_reloading) {
        loyalty_reloading = 0;
        loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                    "signal %d during a reload: stopping instead, %u "
                    "request(s) in flight", (int) sig,
                    loyalty_http_inflight());
        return;
    }

    if (cycle->stopping) {
        loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                    "signal %d again: exiting now, %u request(s) in flight "
                    "stay pending", (int) sig, loyalty_http_inflight());
        event_base_loopexit(cycle->base, NULL);
        return;
    }

    loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                "signal %d: stopping, %u request(s) in flight", (int) sig,
                loyalty_http_inflight());

    loyalty_drain(cycle);
}


/* stop reading; what is in flight finishes (up to shutdown_timeout_ms) */

static void
loyalty_drain(loyalty_cycle_t *cycle)
{
    struct timeval  tv;

    loyalty_consumer_stop(cycle);
    loyalty_pull_stop(cycle);
    loyalty_http_cancel_queued();

    tv.tv_sec = cycle->conf->shutdown_timeout_ms / 1000;
    tv.tv_usec = (cycle->conf->shutdown_timeout_ms % 1000) * 1000;
    evtimer_add(loyalty_deadline_ev, &tv);

    loyalty_consumer_close(cycle);
}


static void
loyalty_sighup(evutil_socket_t sig, short what, void *arg)
{
    loyalty_conf_t   *conf;
    loyalty_cycle_t  *cycle;
    char              err[1536];

    (void) sig;
    (void) what;

    cycle = arg;

    /* the new image reads the file when it starts: nothing is lost */
    if (cycle->stopping) {
        loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1, "SIGHUP while %s: "
                    "ignored", loyalty_reloading ? "reloading (the new "
                    "image reads the file as it is then)" : "stopping");
        return;
    }

    loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                "reloading configuration from %s", loyalty_conf_path);

    conf = loyalty_conf_load(loyalty_conf_path, err, sizeof(err));

    if (conf != NULL
        && conf->metrics != NULL
        && (cycle->conf->metrics == NULL
            || strcmp(conf->metrics_host, cycle->conf->metrics_host) != 0
            || conf->metrics_port != cycle->conf->metrics_port)
        && loyalty_metrics_probe(conf, err, sizeof(err)) != LOYALTY_OK)
    {
        loyalty_conf_free(conf);
        conf = NULL;
    }

    if (conf == NULL) {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "reload failed, the running configuration stays: %s",
                    err);
        return;
    }

    loyalty_conf_free(conf);

    loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1,
                "configuration ok: draining, %u request(s) in flight",
                loyalty_http_inflight());

    loyalty_reloading = 1;
    loyalty_drain(cycle);
}


static void
loyalty_signals_mask(int how)
{
    sigset_t  set;

    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(how, &set, NULL);
}


/*
 * Everything was freed, but a descriptor some library left open must not
 * reach the new image: every fd above stderr gets close-on-exec.
 */

static void
loyalty_cloexec_all(void)
{
    int             fd, flags;
    DIR            *dir;
    struct dirent  *de;

    dir = opendir("/proc/self/fd");
    if (dir == NULL) {
        return;
    }

    while ((de = readdir(dir)) != NULL) {
        fd = atoi(de->d_name);

        if (fd <= 2 || fd == dirfd(dir)) {
            continue;
        }

        flags = fcntl(fd, F_GETFD);
        if (flags != -1 && !(flags & FD_CLOEXEC)) {
            (void) fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
        }
    }

    closedir(dir);
}


static int
loyalty_exec(char **argv)
{
    loyalty_signals_mask(SIG_BLOCK);
    loyalty_cloexec_all();
    setenv(LOYALTY_RELOAD_ENV, "1", 1);
    fflush(stdout);
    fflush(stderr);

    /* the running binary even when argv[0] was a relative path */
    execv("/proc/self/exe", argv);
    execv(argv[0], argv);

    loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                "reload: exec %s: %s; exiting (held entries stay pending)",
                argv[0], strerror(errno));

    return 1;
}


static void
loyalty_deadline(evutil_socket_t fd, short what, void *arg)
{
    loyalty_cycle_t  *cycle;

    (void) fd;
    (void) what;

    cycle = arg;

    loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                "%s deadline: %u request(s) still in flight stay "
                "pending for %s", loyalty_reloading ? "reload" : "shutdown",
                loyalty_http_inflight(), loyalty_reloading
                ? "the new image (sent again)" : "another worker");

    event_base_loopexit(cycle->base, NULL);
}
