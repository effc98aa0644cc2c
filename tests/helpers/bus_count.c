/* Test helper (not a test): a downstream consumer of the cluster's Kafka topics, on the
 * product's own bus code (src/bus/bus_kafka.c, librdkafka), for the fault tests that count
 * events lost and duplicated (tests/cluster/faults.sh). It joins its own consumer group on the
 * topics given, from the beginning, and writes one line per delivered message to OUT_FILE
 * (flushed at once), committing each message after it is written (at least once, as a real
 * consumer does; a redelivery after a failed commit shows as a duplicate):
 *   TOPIC \t EVENT_ID \t PARTITION \t OFFSET \t TYPE \t JOB_ID
 * TYPE and JOB_ID are those of a training event ("-" for other topics or unparsable payloads).
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

static void write_line(FILE *out, const ws_bus_msg *m)
{
    ws_bus_job_event ev;
    ws_error err = {0};
    bool job = strcmp(m->topic, WS_TOPIC_ANALYTICS) != 0 && ws_bus_job_event_parse(m->payload, m->len, &ev, &err) == 0;
    fprintf(out, "%s\t%s\t%d\t%lld\t%s\t%s\n", m->topic, m->event_id[0] ? m->event_id : "-", (int)m->partition,
            (long long)m->offset, job ? ev.type : "-", job ? ev.job_id : "-");
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
    FILE *out = fopen(argv[3], "a");
    if (!out) {
        perror(argv[3]);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    ws_bus_kafka_config kc = {.brokers = argv[1], .client_id = "whatstyle-test-bus-count", .partitions = 2};
    if (ws_bus_kafka_new(&kc, &bus, &err) || bus->ops->subscribe(bus, argv[2], (const char *const *)argv + 4,
                                                                 (size_t)(argc - 4), &err)) {
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
        write_line(out, &m);
        n++;
        if (bus->ops->commit(bus, &m, &err))
            commit_failed++;
    }
    fprintf(stderr, "helper_bus_count: %ld messages, %ld failed polls, %ld failed commits\n", n, poll_failed,
            commit_failed);
    ret = 0;
out:
    ws_bus_free(bus);
    fclose(out);
    return ret;
}
