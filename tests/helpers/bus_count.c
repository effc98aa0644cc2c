/* Test helper (not a test): a downstream consumer of the cluster's Kafka topics, on the
 * product's own bus code (src/bus/bus_kafka.c, librdkafka), for the fault tests that count
 * events lost and duplicated (tests/cluster/faults.sh). It joins its own consumer group on the
 * topics given, from the beginning, and writes one line per delivered message to OUT_FILE
 * (flushed at once), committing each message after it is written (at least once, as a real
 * consumer does). Like the product's consumers it is idempotent by event id (ws_bus_seen, the
 * last 8192 ids): a redelivered id is not handled again.
 *   TOPIC \t EVENT_ID \t PARTITION \t OFFSET \t TYPE \t JOB_ID \t HANDLED
 * TYPE and JOB_ID are those of a training event ("-" for other topics or unparsable payloads);
 * HANDLED is 1, or 0 for a delivery dropped as a duplicate of an id already handled.
 * Runs until SIGTERM/SIGINT.
 * Usage: helper_bus_count BROKERS GROUP OUT_FILE TOPIC... */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/event.h"

static atomic_bool stop;

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, true);
}

static void write_line(FILE *out, const ws_bus_msg *m, bool handled)
{
    ws_bus_job_event ev;
    ws_error err = {0};
    bool job = strcmp(m->topic, WS_TOPIC_ANALYTICS) != 0 &&
               ws_bus_job_event_parse(m->payload, m->len, &ev, &err) == 0;
    fprintf(out, "%s\t%s\t%d\t%lld\t%s\t%s\t%d\n", m->topic, m->event_id[0] ? m->event_id : "-",
            (int)m->partition, (long long)m->offset, job ? ev.type : "-", job ? ev.job_id : "-", handled);
    fflush(out);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: helper_bus_count BROKERS GROUP OUT_FILE TOPIC...\n");
        return 2;
    }
    int ret = 1;
    ws_bus *bus = NULL;
    ws_error err = {0};
    ws_bus_seen seen;
    ws_bus_seen_init(&seen, 8192);
    FILE *out = fopen(argv[3], "a");
    if (!out) {
        perror(argv[3]);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    ws_bus_kafka_config kc = {.brokers = argv[1], .client_id = "whatstyle-test-bus-count", .partitions = 2};
    if (ws_bus_kafka_new(&kc, &bus, &err) ||
        bus->ops->subscribe(bus, argv[2], (const char *const *)argv + 4, (size_t)(argc - 4), &err)) {
        fprintf(stderr, "helper_bus_count: %s\n", err.msg);
        goto out;
    }
    fprintf(stderr, "helper_bus_count: consuming\n");
    long n = 0, poll_failed = 0, commit_failed = 0;
    while (!atomic_load(&stop)) {
        ws_bus_msg m;
        int rc = bus->ops->poll(bus, 200, &m, &err);
        if (rc == WS_EAGAIN)
            continue;
        if (rc) {
            poll_failed++;
            continue;
        }
        /* the topic is part of the id: progress ids and outbox ids live in different spaces */
        char id[WS_BUS_TOPIC_MAX + WS_BUS_EVENT_ID_MAX + 2] = "";
        if (m.event_id[0])
            snprintf(id, sizeof id, "%s/%s", m.topic, m.event_id);
        write_line(out, &m, !ws_bus_seen_check(&seen, id));
        n++;
        if (bus->ops->commit(bus, &m, &err))
            commit_failed++;
    }
    fprintf(stderr, "helper_bus_count: %ld messages, %ld failed polls, %ld failed commits\n", n, poll_failed,
            commit_failed);
    ret = 0;
out:
    ws_bus_free(bus);
    ws_bus_seen_free(&seen);
    fclose(out);
    return ret;
}
