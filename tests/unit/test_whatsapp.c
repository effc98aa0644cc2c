/* Tests of the WhatsApp receiving side and its store: the webhook signature over the raw
 * bytes, the parser on fixtures in the shapes of Meta's webhook reference (tests/fixtures/
 * whatsapp/), its caps and rejects, and the store's WhatsApp tables (inbox, links and modes,
 * dedupe by wamid, statuses by rank, drafts, erasure with the user) on SQLite. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "core/buf.h"
#include "core/file.h"
#include "harness.h"
#include "store/store.h"
#include "store/store_whatsapp.h"
#include "whatsapp/whatsapp.h"

static const char secret[] = "test-app-secret-0123456789abcdef";

static char *fixture(const char *name, size_t *len)
{
    char path[256];
    snprintf(path, sizeof path, "tests/fixtures/whatsapp/%s", name);
    char *data = NULL;
    ws_error err = {0};
    if (ws_file_read(path, 1 << 20, &data, len, &err) != 0)
        fprintf(stderr, "%s\n", err.msg);
    return data;
}

static void signature_over_raw_bytes(void)
{
    size_t len;
    char *body = fixture("text_emoji.json", &len);
    CHECK(body != NULL);
    char sig[72];
    ws_wa_signature_make(secret, strlen(secret), body, len, sig);
    CHECK(strncmp(sig, "sha256=", 7) == 0 && strlen(sig) == 71);
    CHECK_EQ_INT(ws_wa_signature_check(secret, strlen(secret), body, len, sig), 0);
    /* uppercase hex is the same signature */
    char up[72];
    for (size_t i = 0; i < sizeof up; i++)
        up[i] = (char)(i >= 7 && sig[i] >= 'a' && sig[i] <= 'f' ? sig[i] - 32 : sig[i]);
    CHECK_EQ_INT(ws_wa_signature_check(secret, strlen(secret), body, len, up), 0);
    CHECK_EQ_INT(ws_wa_signature_check("other", 5, body, len, sig), WS_EPERM);
    body[len / 2] ^= 1;
    CHECK_EQ_INT(ws_wa_signature_check(secret, strlen(secret), body, len, sig), WS_EPERM);
    body[len / 2] ^= 1;
    CHECK_EQ_INT(ws_wa_signature_check(secret, strlen(secret), body, len, NULL), WS_EINVAL);
    CHECK_EQ_INT(ws_wa_signature_check(secret, strlen(secret), body, len, "sha1=abc"), WS_EINVAL);
    CHECK_EQ_INT(ws_wa_signature_check(secret, strlen(secret), body, len, sig + 1), WS_EINVAL);
    char bad[72];
    memcpy(bad, sig, sizeof bad);
    bad[20] = 'g';
    CHECK_EQ_INT(ws_wa_signature_check(secret, strlen(secret), body, len, bad), WS_EINVAL);
    /* the same JSON with its \u escapes decoded (re-serialised) does not match */
    ws_arena *a = ws_arena_new(4096);
    ws_wa_batch b;
    CHECK_EQ_INT(ws_wa_parse(body, len, a, &b, NULL), 0);
    const char *esc = strstr(body, "Ol\\u00e1");
    CHECK(esc != NULL);
    ws_buf re = WS_BUF_INIT;
    ws_buf_append(&re, body, (size_t)(esc - body));
    ws_buf_puts(&re, "Ol\xc3\xa1");
    ws_buf_puts(&re, esc + 8);
    CHECK_EQ_INT(ws_wa_signature_check(secret, strlen(secret), re.data, re.len, sig), WS_EPERM);
    ws_buf_free(&re);
    ws_arena_free(a);
    free(body);
}

static ws_wa_batch parse_fixture(const char *name, ws_arena *a)
{
    size_t len;
    char *body = fixture(name, &len);
    ws_wa_batch b = {0};
    ws_error err = {0};
    CHECK(body != NULL);
    if (body)
        CHECK_EQ_INT(ws_wa_parse(body, len, a, &b, &err), 0);
    free(body);
    return b;
}

static void parse_text_with_emoji_escapes(void)
{
    ws_arena *a = ws_arena_new(4096);
    ws_wa_batch b = parse_fixture("text_emoji.json", a);
    CHECK_EQ_INT(b.n_messages, 1);
    CHECK_EQ_INT(b.n_statuses, 0);
    if (b.n_messages == 1) {
        const ws_wa_message *m = &b.messages[0];
        CHECK_EQ_STR(m->phone_number_id, "106540352242922");
        CHECK_EQ_STR(m->wamid, "wamid.HBgLMTY1MDUwNzY1MjAVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=");
        CHECK_EQ_STR(m->from, "16505551234");
        CHECK_EQ_STR(m->from_user_id, "US.13491208655302741918");
        CHECK_EQ_STR(m->profile_name, "Sheena Nelson");
        CHECK_EQ_INT(m->timestamp, 1749416383);
        CHECK_EQ_INT(m->type, WS_WA_MSG_TEXT);
        CHECK_EQ_STR(m->text, "Ol\xc3\xa1! Are we still on for tonight? \xf0\x9f\x98\x80\xf0\x9f\x8e\x89");
        CHECK(m->context_id == NULL);
    }
    ws_arena_free(a);
}

static void parse_interactive_and_image(void)
{
    ws_arena *a = ws_arena_new(4096);
    ws_wa_batch b = parse_fixture("interactive.json", a);
    CHECK_EQ_INT(b.n_messages, 2);
    if (b.n_messages == 2) {
        CHECK_EQ_INT(b.messages[0].type, WS_WA_MSG_INTERACTIVE);
        CHECK_EQ_STR(b.messages[0].ref_id, "yes-tonight");
        CHECK_EQ_STR(b.messages[0].text, "Yes, see you!");
        CHECK_EQ_STR(b.messages[0].context_id, "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBI3NjI4RkJCNUQ2N0U3MzIxRjEA");
        CHECK_EQ_STR(b.messages[1].ref_id, "slot-2");
        CHECK_EQ_STR(b.messages[1].text, "8 pm");
        CHECK(b.messages[1].from_user_id == NULL);
    }
    b = parse_fixture("image.json", a);
    CHECK_EQ_INT(b.n_messages, 1);
    if (b.n_messages == 1) {
        CHECK_EQ_INT(b.messages[0].type, WS_WA_MSG_IMAGE);
        CHECK(ws_wa_msg_is_media(b.messages[0].type));
        CHECK_EQ_STR(b.messages[0].media_id, "1003383421387256");
        CHECK_EQ_STR(b.messages[0].mime_type, "image/jpeg");
        CHECK_EQ_STR(b.messages[0].text, "The view from here");
    }
    ws_arena_free(a);
}

static void parse_statuses(void)
{
    ws_arena *a = ws_arena_new(4096);
    ws_wa_batch b = parse_fixture("statuses_batch.json", a);
    CHECK_EQ_INT(b.n_messages, 0);
    CHECK_EQ_INT(b.n_statuses, 3);
    if (b.n_statuses == 3) {
        CHECK_EQ_INT(b.statuses[0].status, WS_WA_STATUS_SENT);
        CHECK_EQ_INT(b.statuses[1].status, WS_WA_STATUS_DELIVERED);
        CHECK_EQ_INT(b.statuses[2].status, WS_WA_STATUS_READ);
        CHECK_EQ_STR(b.statuses[0].recipient_user_id, "US.13491208655302741918");
        CHECK_EQ_STR(b.statuses[2].recipient_id, "16505551234");
        CHECK_EQ_INT(b.statuses[2].timestamp, 1750263800);
        CHECK_EQ_INT(b.statuses[0].error_code, 0);
    }
    b = parse_fixture("status_delivered_late.json", a);
    CHECK_EQ_INT(b.n_statuses, 1);
    if (b.n_statuses == 1) {
        CHECK_EQ_INT(b.statuses[0].status, WS_WA_STATUS_DELIVERED);
        CHECK_EQ_STR(b.statuses[0].wamid, "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA");
        CHECK(b.statuses[0].recipient_user_id == NULL);
    }
    b = parse_fixture("status_failed.json", a);
    CHECK_EQ_INT(b.n_statuses, 1);
    if (b.n_statuses == 1) {
        CHECK_EQ_INT(b.statuses[0].status, WS_WA_STATUS_FAILED);
        CHECK_EQ_INT(b.statuses[0].error_code, 131047);
        CHECK_EQ_STR(b.statuses[0].error_title, "Re-engagement message");
    }
    ws_arena_free(a);
}

static void parse_every_message_type(void)
{
    ws_arena *a = ws_arena_new(4096);
    ws_wa_batch b = parse_fixture("all_types.json", a);
    CHECK_EQ_INT(b.n_messages, 10);
    CHECK_EQ_INT(b.n_skipped, 0);
    if (b.n_messages == 10) {
        const ws_wa_message *m = b.messages;
        CHECK_EQ_INT(m[0].type, WS_WA_MSG_REACTION);
        CHECK(m[0].from == NULL);
        CHECK_EQ_STR(m[0].from_user_id, "US.8812400001234567890");
        CHECK_EQ_STR(m[0].profile_name, "Pablo Morales");
        CHECK_EQ_STR(m[0].text, "\xe2\x9d\xa4\xef\xb8\x8f");
        CHECK_EQ_STR(m[0].ref_id, "wamid.HBgLMTY1MDUwNzY1MjAVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA");
        CHECK_EQ_INT(m[1].type, WS_WA_MSG_BUTTON);
        CHECK_EQ_STR(m[1].ref_id, "STOP_PROMOS");
        CHECK_EQ_STR(m[1].text, "Stop promotions");
        CHECK_EQ_STR(m[1].context_id, "wamid.TPL1");
        CHECK_EQ_INT(m[2].type, WS_WA_MSG_AUDIO);
        CHECK_EQ_STR(m[2].media_id, "1127483295421313");
        CHECK(m[2].text == NULL);
        CHECK_EQ_INT(m[3].type, WS_WA_MSG_VIDEO);
        CHECK_EQ_STR(m[3].text, "look");
        CHECK_EQ_INT(m[4].type, WS_WA_MSG_DOCUMENT);
        CHECK_EQ_STR(m[4].text, "the plan");
        CHECK_EQ_INT(m[5].type, WS_WA_MSG_STICKER);
        CHECK_EQ_STR(m[5].media_id, "1003383421387258");
        CHECK_EQ_INT(m[6].type, WS_WA_MSG_LOCATION);
        CHECK_EQ_STR(m[6].text, "Main office, 1 Hacker Way, Menlo Park, CA 94025 (37.483307, -122.148981)");
        CHECK_EQ_INT(m[7].type, WS_WA_MSG_CONTACTS);
        CHECK_EQ_STR(m[7].text, "Barbara J. Johnson");
        CHECK_EQ_INT(m[8].type, WS_WA_MSG_SYSTEM);
        CHECK_EQ_STR(m[8].from, "16505551234");
        CHECK(m[8].text && strstr(m[8].text, "changed from"));
        CHECK_EQ_INT(m[9].type, WS_WA_MSG_UNSUPPORTED);
        CHECK_EQ_INT(m[9].error_code, 131051);
        CHECK_EQ_STR(m[9].type_name, "unsupported");
    }
    ws_arena_free(a);
}

static void parse_rejects_and_caps(void)
{
    ws_arena *a = ws_arena_new(4096);
    ws_wa_batch b;
    CHECK_EQ_INT(ws_wa_parse("not json", 8, a, &b, NULL), WS_EFORMAT);
    CHECK_EQ_INT(ws_wa_parse("{\"object\":\"page\",\"entry\":[]}", 28, a, &b, NULL), WS_EFORMAT);
    CHECK_EQ_INT(ws_wa_parse("{\"object\":\"whatsapp_business_account\"}", 38, a, &b, NULL), WS_EFORMAT);
    const char *empty = "{\"object\":\"whatsapp_business_account\",\"entry\":[]}";
    CHECK_EQ_INT(ws_wa_parse(empty, strlen(empty), a, &b, NULL), 0);
    CHECK_EQ_INT(b.n_messages + b.n_statuses, 0);
    /* items without an id or a sender, a change of another field, a value without metadata */
    const char *partial =
        "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":["
        "{\"field\":\"messages\",\"value\":{\"metadata\":{\"phone_number_id\":\"1\"},"
        "\"messages\":[{\"id\":\"w1\",\"type\":\"text\"},{\"from\":\"2\",\"type\":\"text\"},"
        "{\"from\":\"2\",\"id\":\"w3\",\"type\":\"brand_new\",\"brand_new\":{}}],"
        "\"statuses\":[{\"id\":\"w4\",\"status\":\"deleted\"}]}},"
        "{\"field\":\"account_update\",\"value\":{\"messages\":[{\"id\":\"x\",\"from\":\"y\"}]}},"
        "{\"field\":\"messages\",\"value\":{\"messages\":[{\"id\":\"z\",\"from\":\"y\"}]}}]}]}";
    CHECK_EQ_INT(ws_wa_parse(partial, strlen(partial), a, &b, NULL), 0);
    CHECK_EQ_INT(b.n_messages, 1);
    CHECK_EQ_INT(b.n_skipped, 4);
    if (b.n_messages == 1) {
        CHECK_EQ_INT(b.messages[0].type, WS_WA_MSG_UNSUPPORTED);
        CHECK_EQ_STR(b.messages[0].type_name, "brand_new");
    }
    /* more than WS_WA_MAX_EVENTS updates */
    ws_buf big = WS_BUF_INIT;
    ws_buf_puts(&big, "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"value\":{"
                      "\"metadata\":{\"phone_number_id\":\"1\"},\"statuses\":[");
    for (int i = 0; i <= WS_WA_MAX_EVENTS; i++)
        ws_buf_printf(&big, "%s{\"id\":\"w%d\",\"status\":\"read\"}", i ? "," : "", i);
    ws_buf_puts(&big, "]}}]}]}");
    CHECK_EQ_INT(ws_wa_parse(big.data, big.len, a, &b, NULL), WS_ETOOBIG);
    CHECK_EQ_INT(b.n_statuses, 0);
    /* an id over WS_WA_ID_MAX */
    ws_buf_reset(&big);
    ws_buf_puts(&big,
                "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"changes\":[{\"value\":{"
                "\"metadata\":{\"phone_number_id\":\"1\"},\"statuses\":[{\"status\":\"read\",\"id\":\"");
    for (int i = 0; i < WS_WA_ID_MAX + 1; i++)
        ws_buf_putc(&big, 'w');
    ws_buf_puts(&big, "\"}]}}]}]}");
    CHECK_EQ_INT(ws_wa_parse(big.data, big.len, a, &b, NULL), WS_ETOOBIG);
    ws_buf_free(&big);
    ws_arena_free(a);
}

/* ---- the store ------------------------------------------------------------------------ */

/* The store tests run on SQLite always and on PostgreSQL when WS_TEST_PG_URL is set (by
 * tests/cli/store_services.sh, which starts a real server; WS_TEST_REQUIRE_PG=1 makes its
 * absence a failure). */
static const char *pg_url(void)
{
    const char *u = getenv("WS_TEST_PG_URL");
    return u && *u ? u : NULL;
}

static int pg_reset(const char *url)
{
    PGconn *c = PQconnectdb(url);
    int ok = PQstatus(c) == CONNECTION_OK;
    if (ok) {
        PGresult *r = PQexec(c, "SET client_min_messages = warning;"
                                " DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;");
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
    }
    if (!ok)
        fprintf(stderr, "pg reset: %s", PQerrorMessage(c));
    PQfinish(c);
    return ok ? 0 : -1;
}

static ws_store *open_db(bool pg, char *path, size_t n)
{
    snprintf(path, n, "/tmp/ws_test_whatsapp_%d.db", (int)getpid());
    unlink(path);
    if (pg)
        CHECK_EQ_INT(pg_reset(pg_url()), 0);
    ws_store_config c = {.url = pg ? pg_url() : path};
    ws_store *s = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_store_open(&c, &s, &err), 0);
    if (s)
        CHECK_EQ_INT(ws_store_migrate(s, NULL, &err), 0);
    return s;
}

static void close_db(ws_store *s, const char *path)
{
    ws_store_close(s);
    char p[300];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* Runs body on SQLite, then on PostgreSQL when configured. */
static void on_backends(void (*body)(bool pg))
{
    body(false);
    if (pg_url())
        body(true);
    else if (getenv("WS_TEST_REQUIRE_PG"))
        CHECK(!"WS_TEST_REQUIRE_PG is set but WS_TEST_PG_URL is not");
}

static const char *fail_on;
static int seen, last_attempts;

static int on_body(void *arg, ws_store *s, const ws_wa_inbox_item *it, ws_error *err)
{
    seen++;
    last_attempts = it->attempts;
    return fail_on && !strcmp(it->body, fail_on) ? ws_error_set(err, WS_EIO, "refused") : 0;
}

static void inbox_on(bool pg)
{
    char path[128];
    ws_store *s = open_db(pg, path, sizeof path);
    if (!s)
        return;
    ws_arena *a = ws_arena_new(4096);
    int64_t id1 = 0, id2 = 0, n = -1;
    CHECK_EQ_INT(ws_store_wa_inbox_put(s, "{\"a\":1}", 7, &id1, NULL), 0);
    CHECK_EQ_INT(ws_store_wa_inbox_put(s, "{\"b\":2}", 7, &id2, NULL), 0);
    CHECK(id2 > id1);
    CHECK_EQ_INT(ws_store_wa_inbox_put(s, "a\0b", 3, NULL, NULL), WS_EINVAL);
    ws_wa_inbox_item *items;
    size_t k;
    CHECK_EQ_INT(ws_store_wa_inbox_take(s, a, 1, &items, &k, NULL), 0);
    CHECK_EQ_INT(k, 1);
    if (k == 1) {
        CHECK_EQ_INT(items[0].id, id1);
        CHECK_EQ_STR(items[0].body, "{\"a\":1}");
        CHECK_EQ_INT(items[0].attempts, 1);
    }
    CHECK_EQ_INT(ws_store_wa_inbox_take(s, a, 10, &items, &k, NULL), 0);
    CHECK_EQ_INT(k, 2);
    if (k == 2)
        CHECK_EQ_INT(items[0].attempts, 2);
    CHECK_EQ_INT(ws_store_wa_inbox_done(s, id1, NULL), 0);
    CHECK_EQ_INT(ws_store_wa_inbox_count(s, &n, NULL), 0);
    CHECK_EQ_INT(n, 1);
    /* a batch in one transaction, all or none */
    const char *bodies[] = {"{\"c\":3}", "{\"d\":4}", "x\0y"};
    size_t lens[] = {7, 7, 3};
    CHECK_EQ_INT(ws_store_wa_inbox_put_many(s, bodies, lens, 3, NULL), WS_EINVAL);
    CHECK_EQ_INT(ws_store_wa_inbox_count(s, &n, NULL), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ws_store_wa_inbox_put_many(s, bodies, lens, 2, NULL), 0);
    CHECK_EQ_INT(ws_store_wa_inbox_count(s, &n, NULL), 0);
    CHECK_EQ_INT(n, 3);
    /* processing: a failing body rolls the batch back and counts an attempt; then all go */
    size_t done = 99;
    fail_on = "{\"d\":4}";
    seen = 0;
    CHECK_EQ_INT(ws_store_wa_inbox_process(s, a, 10, on_body, NULL, &done, NULL), WS_EIO);
    CHECK_EQ_INT(done, 0);
    CHECK_EQ_INT(seen, 3); /* b (attempts 2), c, then d fails */
    CHECK_EQ_INT(ws_store_wa_inbox_count(s, &n, NULL), 0);
    CHECK_EQ_INT(n, 3);
    fail_on = NULL;
    seen = 0;
    CHECK_EQ_INT(ws_store_wa_inbox_process(s, a, 2, on_body, NULL, &done, NULL), 0);
    CHECK_EQ_INT(done, 2);
    CHECK_EQ_INT(last_attempts, 1);
    CHECK_EQ_INT(ws_store_wa_inbox_process(s, a, 10, on_body, NULL, &done, NULL), 0);
    CHECK_EQ_INT(done, 1);
    CHECK_EQ_INT(ws_store_wa_inbox_count(s, &n, NULL), 0);
    CHECK_EQ_INT(n, 0);
    ws_arena_free(a);
    close_db(s, path);
}

static void links_on(bool pg)
{
    char path[128];
    ws_store *s = open_db(pg, path, sizeof path);
    if (!s)
        return;
    ws_arena *a = ws_arena_new(4096);
    ws_error err = {0};
    ws_user alice, bob;
    CHECK_EQ_INT(ws_store_user_create(s, a, "alice", NULL, NULL, &alice, &err), 0);
    CHECK_EQ_INT(ws_store_user_create(s, a, "bob", NULL, NULL, &bob, &err), 0);
    ws_wa_link l = {.phone_number_id = "106540352242922",
                    .user_id = alice.id,
                    .token_blob = "users/x/t",
                    .default_mode = WS_WA_MODE_DRAFT};
    CHECK_EQ_INT(ws_store_wa_link_put(s, &l, &err), 0);
    CHECK_EQ_INT(ws_store_wa_link_put(s, &l, &err), 0); /* relinking is fine */
    ws_wa_link lb = l;
    lb.user_id = bob.id;
    CHECK_EQ_INT(ws_store_wa_link_put(s, &lb, &err), WS_ECONFLICT);
    ws_wa_link got;
    CHECK_EQ_INT(ws_store_wa_link_get(s, a, l.phone_number_id, &got, &err), 0);
    CHECK_EQ_STR(got.user_id, alice.id);
    CHECK_EQ_INT(got.default_mode, WS_WA_MODE_DRAFT);
    CHECK_EQ_INT(ws_store_wa_link_get(s, a, "999", &got, &err), WS_ENOENT);
    /* modes: default, per contact by phone, per contact by business-scoped id; not bob's */
    ws_wa_mode m;
    CHECK_EQ_INT(ws_store_wa_mode_set(s, alice.id, l.phone_number_id, "16505551234", WS_WA_MODE_AUTO, &err),
                 0);
    CHECK_EQ_INT(ws_store_wa_mode_set(s, alice.id, l.phone_number_id, "US.1", WS_WA_MODE_OFF, &err), 0);
    CHECK_EQ_INT(ws_store_wa_mode_set(s, bob.id, l.phone_number_id, NULL, WS_WA_MODE_OFF, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_wa_mode_for(s, &l, "16505551234", NULL, &m, &err), 0);
    CHECK_EQ_INT(m, WS_WA_MODE_AUTO);
    CHECK_EQ_INT(ws_store_wa_mode_for(s, &l, NULL, "US.1", &m, &err), 0);
    CHECK_EQ_INT(m, WS_WA_MODE_OFF);
    CHECK_EQ_INT(ws_store_wa_mode_for(s, &l, "1999", NULL, &m, &err), 0);
    CHECK_EQ_INT(m, WS_WA_MODE_DRAFT);
    /* dedupe by wamid */
    ws_wa_msg_row in = {.wamid = "wamid.IN1",
                        .phone_number_id = l.phone_number_id,
                        .user_id = alice.id,
                        .contact_phone = "16505551234",
                        .msg_type = "text",
                        .body = "hi there",
                        .sent_at = ws_store_now_ms() - 1000};
    bool ins = false;
    CHECK_EQ_INT(ws_store_wa_msg_insert(s, &in, &ins, &err), 0);
    CHECK(ins);
    CHECK_EQ_INT(ws_store_wa_msg_insert(s, &in, &ins, &err), 0);
    CHECK(!ins);
    int64_t last = 0;
    CHECK_EQ_INT(ws_store_wa_last_incoming(s, l.phone_number_id, "16505551234", NULL, &last, &err), 0);
    CHECK_EQ_INT(last, in.sent_at);
    /* statuses by rank: read, then a late delivered; failed keeps its code */
    bool ap = false;
    const char *st = NULL;
    int code = 0;
    CHECK_EQ_INT(ws_store_wa_status_apply(s, "wamid.OUT1", l.phone_number_id, "read", 3, 0, NULL, &ap, &err),
                 0);
    CHECK(ap);
    CHECK_EQ_INT(
        ws_store_wa_status_apply(s, "wamid.OUT1", l.phone_number_id, "delivered", 2, 0, NULL, &ap, &err), 0);
    CHECK(!ap);
    CHECK_EQ_INT(ws_store_wa_msg_status(s, a, "wamid.OUT1", &st, &code, &err), 0);
    CHECK_EQ_STR(st, "read");
    CHECK_EQ_INT(ws_store_wa_status_apply(s, "wamid.OUT2", l.phone_number_id, "sent", 1, 0, NULL, &ap, &err),
                 0);
    CHECK_EQ_INT(ws_store_wa_status_apply(s, "wamid.OUT2", l.phone_number_id, "failed", 4, 131047,
                                          "Re-engagement", &ap, &err),
                 0);
    CHECK_EQ_INT(ws_store_wa_status_apply(s, "wamid.OUT2", l.phone_number_id, "read", 3, 0, NULL, &ap, &err),
                 0);
    CHECK(!ap);
    CHECK_EQ_INT(ws_store_wa_msg_status(s, a, "wamid.OUT2", &st, &code, &err), 0);
    CHECK_EQ_STR(st, "failed");
    CHECK_EQ_INT(code, 131047);
    /* the send is logged after its status arrived: the bare row is filled in, status kept */
    ws_wa_msg_row out = {.wamid = "wamid.OUT1",
                         .phone_number_id = l.phone_number_id,
                         .user_id = alice.id,
                         .outgoing = true,
                         .contact_phone = "16505551234",
                         .msg_type = "text",
                         .body = "sure",
                         .sent_at = ws_store_now_ms(),
                         .status = "accepted"};
    CHECK_EQ_INT(ws_store_wa_msg_insert(s, &out, &ins, &err), 0);
    CHECK(ins);
    CHECK_EQ_INT(ws_store_wa_msg_insert(s, &out, &ins, &err), 0);
    CHECK(!ins);
    CHECK_EQ_INT(ws_store_wa_msg_status(s, a, "wamid.OUT1", &st, &code, &err), 0);
    CHECK_EQ_STR(st, "read");
    /* drafts */
    ws_wa_draft d = {.user_id = alice.id,
                     .phone_number_id = l.phone_number_id,
                     .contact_phone = "16505551234",
                     .in_wamid = "wamid.IN1",
                     .mode = WS_WA_MODE_DRAFT};
    char id[48];
    CHECK_EQ_INT(ws_store_wa_draft_create(s, &d, id, &err), 0);
    char id2[48];
    CHECK_EQ_INT(ws_store_wa_draft_create(s, &d, id2, &err), WS_ECONFLICT);
    ws_wa_draft *items;
    size_t n;
    CHECK_EQ_INT(ws_store_wa_draft_due(s, a, "generating", ws_store_now_ms(), 10, &items, &n, &err), 0);
    CHECK_EQ_INT(n, 1);
    ws_wa_draft g;
    CHECK_EQ_INT(ws_store_wa_draft_get(s, a, id, &g, &err), 0);
    CHECK_EQ_STR(g.in_text, "hi there");
    CHECK_EQ_STR(g.status, "generating");
    g.status = "sent";
    g.reply = "hey!";
    g.out_wamid = "wamid.OUT3";
    CHECK_EQ_INT(ws_store_wa_draft_update(s, &g, "pending", &err), WS_ECONFLICT);
    CHECK_EQ_INT(ws_store_wa_draft_update(s, &g, "generating", &err), 0);
    CHECK_EQ_INT(ws_store_wa_draft_fail_sent(s, "wamid.OUT3", 131026, "Message undeliverable", &err), 0);
    CHECK_EQ_INT(ws_store_wa_draft_get(s, a, id, &g, &err), 0);
    CHECK_EQ_STR(g.status, "failed");
    CHECK_EQ_INT(g.error_code, 131026);
    CHECK_EQ_INT(ws_store_wa_draft_list(s, a, alice.id, "failed", 10, &items, &n, &err), 0);
    CHECK_EQ_INT(n, 1);
    CHECK_EQ_INT(ws_store_wa_draft_list(s, a, bob.id, NULL, 10, &items, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    /* erasure: the user's links, modes, log rows and drafts go with the user */
    int64_t cnt = 0;
    CHECK_EQ_INT(ws_store_wa_msg_count(s, alice.id, &cnt, &err), 0);
    CHECK_EQ_INT(cnt, 2);
    CHECK_EQ_INT(ws_store_user_delete(s, alice.id, &err), 0);
    CHECK_EQ_INT(ws_store_wa_msg_count(s, alice.id, &cnt, &err), 0);
    CHECK_EQ_INT(cnt, 0);
    CHECK_EQ_INT(ws_store_wa_link_get(s, a, l.phone_number_id, &got, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_wa_draft_get(s, a, id, &g, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_store_wa_mode_for(s, &l, "16505551234", NULL, &m, &err), 0);
    CHECK_EQ_INT(m, WS_WA_MODE_DRAFT); /* no contact row left: the (stale) link's default */
    ws_arena_free(a);
    close_db(s, path);
}

static void store_inbox(void)
{
    on_backends(inbox_on);
}

static void store_links_messages_drafts_erasure(void)
{
    on_backends(links_on);
}

WS_TEST_MAIN(T(signature_over_raw_bytes), T(parse_text_with_emoji_escapes), T(parse_interactive_and_image),
             T(parse_statuses), T(parse_every_message_type), T(parse_rejects_and_caps), T(store_inbox),
             T(store_links_messages_drafts_erasure))
