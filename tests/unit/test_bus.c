/* The bus (in-process implementation), the consumers' message parser and event-id memory,
 * the outbox relay (SQLite store + in-process bus, and a bus whose broker refuses) and the
 * workers' compare-and-set job transitions. The Kafka implementation runs against a real
 * broker in tests/cli/kafka_worker.sh. */
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "bus/event.h"
#include "bus/relay.h"
#include "harness.h"
#include "store/store_bus.h"

static ws_bus_out out_msg(const char *topic, const char *payload, const char *eid)
{
    return (ws_bus_out){
        .topic = topic, .key = "usr_1", .payload = payload, .len = strlen(payload), .event_id = eid};
}

static void test_memory_bus_group(void)
{
    ws_bus_hub *h = ws_bus_hub_new();
    ws_bus *p = NULL, *c1 = NULL, *c2 = NULL;
    CHECK_EQ_INT(ws_bus_memory_new(h, &p, NULL), 0);
    CHECK_EQ_INT(ws_bus_memory_new(h, &c1, NULL), 0);
    CHECK_EQ_INT(ws_bus_memory_new(h, &c2, NULL), 0);
    const char *topics[] = {WS_TOPIC_TRAINING_JOBS};
    CHECK_EQ_INT(c1->ops->subscribe(c1, "g", topics, 1, NULL), 0);
    CHECK_EQ_INT(c2->ops->subscribe(c2, "g", topics, 1, NULL), 0);
    ws_bus_out m[3] = {out_msg(WS_TOPIC_TRAINING_JOBS, "{\"a\":1}", "1"),
                       out_msg(WS_TOPIC_TRAINING_JOBS, "{\"a\":2}", "2"),
                       out_msg(WS_TOPIC_ANALYTICS, "{}", "3")};
    m[0].traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    int st[3] = {9, 9, 9};
    CHECK_EQ_INT(p->ops->publish(p, m, 3, st, 1000, NULL), 0);
    CHECK(st[0] == 0 && st[1] == 0 && st[2] == 0);
    /* the group's two members take the two job messages in turn, each once */
    ws_bus_msg a, b, x;
    CHECK_EQ_INT(c1->ops->poll(c1, 100, &a, NULL), 0);
    CHECK_EQ_INT(c2->ops->poll(c2, 100, &b, NULL), 0);
    CHECK_EQ_STR(a.event_id, "1");
    CHECK_EQ_STR(a.traceparent, m[0].traceparent);
    CHECK_EQ_STR(a.payload, "{\"a\":1}");
    CHECK_EQ_STR(a.key, "usr_1");
    CHECK_EQ_STR(b.event_id, "2");
    CHECK_EQ_STR(b.traceparent, "");
    CHECK_EQ_INT(c1->ops->poll(c1, 20, &x, NULL), WS_EAGAIN);
    CHECK_EQ_INT(c1->ops->commit(c1, &a, NULL), 0);
    /* a message above the cap and one without an event id are refused, per message */
    char *big = malloc(WS_BUS_PAYLOAD_MAX + 2);
    memset(big, 'x', WS_BUS_PAYLOAD_MAX + 1);
    big[WS_BUS_PAYLOAD_MAX + 1] = '\0';
    ws_bus_out bad[2] = {out_msg(WS_TOPIC_ANALYTICS, big, "4"), out_msg(WS_TOPIC_ANALYTICS, "{}", NULL)};
    CHECK(p->ops->publish(p, bad, 2, st, 1000, NULL) != 0);
    CHECK_EQ_INT(st[0], WS_ETOOBIG);
    CHECK_EQ_INT(st[1], WS_EINVAL);
    free(big);
    ws_bus_free(p);
    ws_bus_free(c1);
    ws_bus_free(c2);
    ws_bus_hub_free(h);
    CHECK(ws_bus_topic_known("training-events") && !ws_bus_topic_known("other"));
}

static void test_event_parse(void)
{
    ws_bus_job_event ev;
    const char *ok = "{\"type\":\"training.progress\",\"job\":{\"job_id\":\"job_ab\",\"user_id\":\"usr_cd\","
                     "\"progress\":0.5,\"samples_processed\":12}}";
    CHECK_EQ_INT(ws_bus_job_event_parse(ok, strlen(ok), &ev, NULL), 0);
    CHECK_EQ_STR(ev.type, "training.progress");
    CHECK_EQ_STR(ev.job_id, "job_ab");
    CHECK_EQ_STR(ev.user_id, "usr_cd");
    CHECK_NEAR(ev.progress, 0.5, 1e-12);
    CHECK_EQ_INT(ev.samples, 12);
    const char *bad[] = {
        "{\"type\":\"training.completed\",\"job\":{\"job_id\":\"../x\",\"user_id\":\"usr_1\"}}",
        "{\"type\":\"user.deleted\",\"job\":{\"job_id\":\"job_1\",\"user_id\":\"usr_1\"}}",
        "{\"type\":\"training.completed\",\"job\":{\"job_id\":\"job_1\"}}",
        "{\"type\":\"training.Completed!\",\"job\":{\"job_id\":\"job_1\",\"user_id\":\"usr_1\"}}",
        "[1,2]",
        "{\"type\":",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(ws_bus_job_event_parse(bad[i], strlen(bad[i]), &ev, NULL), WS_EFORMAT);
        CHECK_EQ_STR(ev.job_id, "");
    }
    const char *range =
        "{\"type\":\"training.progress\",\"job\":{\"job_id\":\"j\",\"user_id\":\"u\",\"progress\":4,"
        "\"samples_processed\":-1}}";
    CHECK_EQ_INT(ws_bus_job_event_parse(range, strlen(range), &ev, NULL), 0);
    CHECK(ev.progress == 0 && ev.samples == 0);
}

static void test_seen(void)
{
    ws_bus_seen s;
    ws_bus_seen_init(&s, 4);
    CHECK(!ws_bus_seen_check(&s, "1"));
    CHECK(ws_bus_seen_check(&s, "1"));
    CHECK(!ws_bus_seen_check(&s, ""));
    CHECK(!ws_bus_seen_check(&s, ""));
    char id[16];
    for (int i = 2; i < 100; i++) {
        snprintf(id, sizeof id, "%d", i);
        CHECK(!ws_bus_seen_check(&s, id));
        CHECK(ws_bus_seen_check(&s, id));
    }
    CHECK(s.gen[0].count + s.gen[1].count <= 8); /* bounded */
    CHECK(ws_bus_seen_check(&s, "99"));
    CHECK(!ws_bus_seen_check(&s, "1")); /* long forgotten */
    ws_bus_seen_free(&s);
}

static ws_store *open_store(void)
{
    ws_store *st = NULL;
    ws_store_config c = {.url = "sqlite::memory:"};
    CHECK_EQ_INT(ws_store_open(&c, &st, NULL), 0);
    CHECK_EQ_INT(ws_store_migrate(st, NULL, NULL), 0);
    return st;
}

/* A bus whose broker acknowledges nothing. */
static int refuse_publish(ws_bus *b, const ws_bus_out *m, size_t n, int *status, int t, ws_error *err)
{
    for (size_t i = 0; i < n; i++)
        status[i] = WS_EIO;
    return ws_error_set(err, WS_EIO, "broker down");
}
static void refuse_destroy(ws_bus *b)
{
    (void)b;
}
static const ws_bus_ops refuse_ops = {refuse_publish, NULL, NULL, NULL, refuse_destroy};

typedef struct seen_ids {
    int64_t ids[64];
    int n;
} seen_ids;
static void observe(void *arg, int64_t id, int64_t created, int64_t acked)
{
    seen_ids *s = arg;
    if (s->n < 64 && acked >= created)
        s->ids[s->n++] = id;
}

static void test_relay(void)
{
    ws_store *st = open_store();
    ws_arena *a = ws_arena_new(4096);
    ws_user u;
    CHECK_EQ_INT(ws_store_user_create(st, a, "maya", NULL, NULL, &u, NULL), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ_INT(ws_store_event_append(st, u.id, "reply", "{\"n\":1}", NULL, NULL), 0);
    ws_job job;
    CHECK_EQ_INT(
        ws_store_job_create(st, a, u.id, "users/x/exports/e.txt",
                            "{\"persona\":\"Maya\",\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-"
                            "b7ad6b7169203331-01\"}",
                            &job, NULL),
        0);
    /* the broker is down: nothing is marked published */
    ws_bus refusing = {&refuse_ops, NULL};
    size_t n = 99;
    CHECK_EQ_INT(ws_relay_step(st, &refusing, 100, &n, NULL, NULL, NULL), WS_EIO);
    CHECK_EQ_INT(n, 0);
    /* the broker is back: all six go out, in order, with their row ids as event ids */
    ws_bus_hub *h = ws_bus_hub_new();
    ws_bus *bus = NULL, *cons = NULL;
    ws_bus_memory_new(h, &bus, NULL);
    ws_bus_memory_new(h, &cons, NULL);
    seen_ids ids = {0};
    CHECK_EQ_INT(ws_relay_step(st, bus, 4, &n, observe, &ids, NULL), 0);
    CHECK_EQ_INT(n, 4);
    CHECK_EQ_INT(ws_relay_step(st, bus, 4, &n, observe, &ids, NULL), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ws_relay_step(st, bus, 4, &n, observe, &ids, NULL), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(ids.n, 6);
    for (int i = 1; i < ids.n; i++)
        CHECK(ids.ids[i] > ids.ids[i - 1]);
    const char *topics[] = {WS_TOPIC_TRAINING_JOBS, WS_TOPIC_ANALYTICS};
    CHECK_EQ_INT(cons->ops->subscribe(cons, "t", topics, 2, NULL), 0);
    ws_bus_msg m;
    int jobs = 0, analytics = 0;
    while (cons->ops->poll(cons, 10, &m, NULL) == 0) {
        char want[24];
        if (!strcmp(m.topic, WS_TOPIC_TRAINING_JOBS)) {
            jobs++;
            CHECK_EQ_STR(m.traceparent, "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
            ws_bus_job_event ev;
            CHECK_EQ_INT(ws_bus_job_event_parse(m.payload, m.len, &ev, NULL), 0);
            CHECK_EQ_STR(ev.job_id, job.id);
            CHECK_EQ_STR(ev.type, "training.requested");
            snprintf(want, sizeof want, "%lld", (long long)ids.ids[5]);
        } else {
            snprintf(want, sizeof want, "%lld", (long long)ids.ids[analytics++]);
        }
        CHECK_EQ_STR(m.event_id, want);
        CHECK_EQ_STR(m.key, u.id);
    }
    CHECK_EQ_INT(jobs, 1);
    CHECK_EQ_INT(analytics, 5);
    char tp[WS_TRACEPARENT_LEN + 1];
    CHECK(!ws_relay_payload_traceparent("{\"job\":{\"params\":{\"traceparent\":\"00-00\"}}}", 42, tp));
    /* an analytics event carries its request's context in its data */
    const char *an = "{\"type\":\"analytics\",\"event_id\":7,\"data\":{\"cached\":true,"
                     "\"traceparent\":\"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\"}}";
    CHECK(ws_relay_payload_traceparent(an, strlen(an), tp));
    CHECK_EQ_STR(tp, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    const char *plain = "{\"type\":\"analytics\",\"event_id\":8,\"data\":{\"cached\":true}}";
    CHECK(!ws_relay_payload_traceparent(plain, strlen(plain), tp));
    CHECK_EQ_INT(ws_relay_step(st, bus, 0, &n, NULL, NULL, NULL), WS_EINVAL);
    ws_bus_free(bus);
    ws_bus_free(cons);
    ws_bus_hub_free(h);
    ws_arena_free(a);
    ws_store_close(st);
}

static void nap_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_job_cas(void)
{
    ws_store *st = open_store();
    ws_arena *a = ws_arena_new(4096);
    ws_user u;
    ws_job j, got;
    CHECK_EQ_INT(ws_store_user_create(st, a, "maya", NULL, NULL, &u, NULL), 0);
    CHECK_EQ_INT(ws_store_job_create(st, a, u.id, "users/x/e.txt", NULL, &j, NULL), 0);
    bool lead = false;
    CHECK_EQ_INT(ws_store_outbox_try_lead(st, &lead, NULL), 0);
    CHECK(lead);
    /* w1 takes it; w2 waits while w1's lease is fresh */
    CHECK_EQ_INT(ws_store_job_take(st, a, j.id, "w1", 60000, &got, NULL), 0);
    CHECK_EQ_INT(got.status, WS_JOB_RUNNING);
    CHECK_EQ_STR(got.worker_id, "w1");
    CHECK_EQ_INT(ws_store_job_take(st, a, j.id, "w2", 60000, &got, NULL), WS_EAGAIN);
    CHECK_EQ_INT(ws_store_job_take(st, a, j.id, "w1", 60000, &got, NULL), 0); /* its own: again */
    CHECK_EQ_INT(ws_store_job_progress_as(st, j.id, "w1", 0.25, 10, NULL), 0);
    /* w1 goes silent past the lease: w2 takes over, w1 can no longer report or finish */
    nap_ms(5);
    CHECK_EQ_INT(ws_store_job_take(st, a, j.id, "w2", 1, &got, NULL), 0);
    CHECK_EQ_STR(got.worker_id, "w2");
    CHECK_NEAR(got.progress, 0.25, 1e-9);
    CHECK_EQ_INT(ws_store_job_progress_as(st, j.id, "w1", 0.5, 20, NULL), WS_ECONFLICT);
    CHECK_EQ_INT(ws_store_job_finish_as(st, j.id, "w1", WS_JOB_COMPLETED, 5, NULL, NULL, NULL), WS_ECONFLICT);
    CHECK_EQ_INT(ws_store_job_finish_as(st, j.id, "w2", WS_JOB_QUEUED, 5, NULL, NULL, NULL), WS_EINVAL);
    CHECK_EQ_INT(ws_store_job_finish_as(st, j.id, "w2", WS_JOB_COMPLETED, 40, "{\"f\":1}", NULL, NULL), 0);
    /* never completed twice; a late message finds it final */
    CHECK_EQ_INT(ws_store_job_finish_as(st, j.id, "w2", WS_JOB_COMPLETED, 40, NULL, NULL, NULL),
                 WS_ECONFLICT);
    CHECK_EQ_INT(ws_store_job_take(st, a, j.id, "w3", 1, &got, NULL), WS_ECONFLICT);
    CHECK_EQ_INT(got.status, WS_JOB_COMPLETED);
    CHECK_NEAR(got.progress, 1.0, 1e-9);
    CHECK_EQ_INT(got.samples_processed, 40);
    CHECK_EQ_INT(ws_store_job_take(st, a, "job_none", "w3", 1, &got, NULL), WS_ENOENT);
    CHECK_EQ_INT(ws_store_job_finish_as(st, j.id, "w2", WS_JOB_COMPLETED, 1, "not json", NULL, NULL),
                 WS_EINVAL);
    /* one training.completed message in the outbox */
    ws_outbox_msg *rows = NULL;
    size_t n = 0;
    CHECK_EQ_INT(ws_store_outbox_fetch(st, a, 100, &rows, &n, NULL), 0);
    int completed = 0;
    for (size_t i = 0; i < n; i++) {
        ws_bus_job_event ev;
        if (!strcmp(rows[i].topic, "training-events") &&
            ws_bus_job_event_parse(rows[i].payload, strlen(rows[i].payload), &ev, NULL) == 0 &&
            !strcmp(ev.type, "training.completed") && !strcmp(ev.job_id, j.id))
            completed++;
    }
    CHECK_EQ_INT(completed, 1);
    ws_arena_free(a);
    ws_store_close(st);
}

WS_TEST_MAIN(T(test_memory_bus_group), T(test_event_parse), T(test_seen), T(test_relay), T(test_job_cas))
