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
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "loyalty_worker.h"


#define LOYALTY_DEFAULT_CONF  "conf/loyalty-worker.yaml"


static void loyalty_usage(FILE *fp);
static void loyalty_signal(evutil_socket_t sig, short what, void *arg);
static void loyalty_deadline(evutil_socket_t fd, short what, void *arg);


loyalty_cycle_t  loyalty_cycle;

static struct event  *loyalty_deadline_ev;


int
main(int argc, char **argv)
{
    int                ch, test, level;
    char               host[256];
    const char        *path;
    struct event      *sigterm, *sigint;
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
    loyalty_deadline_ev = evtimer_new(cycle->base, loyalty_deadline, cycle);

    if (sigterm == NULL || sigint == NULL || loyalty_deadline_ev == NULL
        || evsignal_add(sigterm, NULL) != 0 || evsignal_add(sigint, NULL) != 0)
    {
        loyalty_log(LOYALTY_LOG_ERR, NULL, NULL, -1, -1,
                    "cannot install signal handlers");
        return 1;
    }

    if (loyalty_http_init(cycle) != LOYALTY_OK
        || loyalty_rl_init(cycle) != LOYALTY_OK
        || loyalty_consumer_init(cycle) != LOYALTY_OK)
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

    event_base_dispatch(cycle->base);

    loyalty_log(LOYALTY_LOG_INFO, NULL, NULL, -1, -1, "exiting");

    event_free(sigterm);
    event_free(sigint);
    event_free(loyalty_deadline_ev);
    loyalty_http_cleanup();
    loyalty_rl_cleanup(cycle);
    loyalty_conf_free(conf);

    return 0;
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
    struct timeval    tv;
    loyalty_cycle_t  *cycle;

    (void) what;

    cycle = arg;

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

    loyalty_consumer_stop(cycle);
    loyalty_http_cancel_queued();

    tv.tv_sec = cycle->conf->shutdown_timeout_ms / 1000;
    tv.tv_usec = (cycle->conf->shutdown_timeout_ms % 1000) * 1000;
    evtimer_add(loyalty_deadline_ev, &tv);

    loyalty_consumer_close(cycle);
}


static void
loyalty_deadline(evutil_socket_t fd, short what, void *arg)
{
    loyalty_cycle_t  *cycle;

    (void) fd;
    (void) what;

    cycle = arg;

    loyalty_log(LOYALTY_LOG_WARN, NULL, NULL, -1, -1,
                "shutdown deadline: %u request(s) still in flight stay "
                "pending for another worker", loyalty_http_inflight());

    event_base_loopexit(cycle->base, NULL);
}
