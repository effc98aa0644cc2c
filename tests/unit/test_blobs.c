/* Blobs: the AES-256-GCM format (round trip, tamper detection, wrong key, wrong name), the
 * master key (created 0600, WS_MASTER_KEY, unsafe files refused), the local-directory
 * backend, key validation, SigV4 against AWS's published example, and — when
 * WS_TEST_S3_URL is set (tests/cli/blobs_s3.sh starts a real S3 server, SeaweedFS with signature checks, on
 * loopback) — the same backend suite against S3. WS_TEST_REQUIRE_S3=1 makes a missing S3
 * URL a failure. */
#include "blobs_settings.h"
#include "harness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blobs/blobs.h"
#include "blobs/blobs_crypt.h"
#include "blobs/s3_sign.h"
#include "core/file.h"
#include "core/mem.h"

static char dir[256];

static void mkdata(void)
{
    snprintf(dir, sizeof dir, "/tmp/ws-test-blobs-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
}

static void rmdata(void)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK_EQ_INT(system(cmd), 0);
}

static const unsigned char key_a[32] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15, 16,
                                        17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const unsigned char key_b[32] = {32, 31, 30};

static void crypt_round_trip_and_tamper_detection(void)
{
    const size_t sizes[] = {0, 1, 15, 16, 17, 1000, 100000};
    for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
        size_t n = sizes[t];
        char *plain = ws_xmalloc(n + 1);
        for (size_t i = 0; i < n; i++)
            plain[i] = (char)(i * 7 + 3);
        ws_buf sealed = WS_BUF_INIT, out = WS_BUF_INIT, again = WS_BUF_INIT;
        ws_error err = {0};
        CHECK_EQ_INT(ws_blob_seal(key_a, "users/u/a.txt", plain, n, &sealed, &err), 0);
        CHECK_EQ_INT(sealed.len, n + WS_BLOB_OVERHEAD);
        CHECK(!memcmp(sealed.data, "WSBL\x01\x01\x0c\x10", 8));
        ws_blob_header h;
        CHECK_EQ_INT(ws_blob_header_parse(sealed.data, sealed.len, &h, &err), 0);
        CHECK_EQ_INT(h.version, 1);
        CHECK_EQ_INT(ws_blob_unseal(key_a, "users/u/a.txt", sealed.data, sealed.len, &out, &err), 0);
        CHECK_EQ_INT(out.len, n);
        CHECK(n == 0 || !memcmp(out.data, plain, n));
        /* a fresh nonce each time: the same plaintext seals differently */
        CHECK_EQ_INT(ws_blob_seal(key_a, "users/u/a.txt", plain, n, &again, &err), 0);
        CHECK(memcmp(again.data + 12, sealed.data + 12, 12) != 0);
        if (n >= 17) {
            /* every region: header fields, nonce, ciphertext, tag */
            const size_t at[] = {4, 5, 6, 8, 12, 23, 24, WS_BLOB_HDR_LEN + n / 2, sealed.len - 1};
            const int want[] = {WS_EFORMAT, WS_EFORMAT, WS_EFORMAT, WS_EPERM,  WS_EUNSAFE,
                                WS_EUNSAFE, WS_EUNSAFE, WS_EUNSAFE, WS_EUNSAFE};
            for (size_t k = 0; k < sizeof at / sizeof at[0]; k++) {
                sealed.data[at[k]] ^= 0x20;
                ws_buf_reset(&out);
                ws_error e = {0};
                CHECK_EQ_INT(ws_blob_unseal(key_a, "users/u/a.txt", sealed.data, sealed.len, &out, &e),
                             want[k]);
                CHECK_EQ_INT(out.len, 0); /* nothing unauthenticated comes out */
                if (want[k] == WS_EUNSAFE)
                    CHECK(strstr(e.msg, "failed authentication") != NULL);
                sealed.data[at[k]] ^= 0x20;
            }
            ws_error e = {0};
            ws_buf_reset(&out);
            CHECK_EQ_INT(ws_blob_unseal(key_a, "users/u/b.txt", sealed.data, sealed.len, &out, &e),
                         WS_EUNSAFE);
            CHECK(strstr(e.msg, "another name") != NULL);
            CHECK_EQ_INT(ws_blob_unseal(key_b, "users/u/a.txt", sealed.data, sealed.len, &out, &e), WS_EPERM);
            CHECK(strstr(e.msg, "different master key") != NULL);
            CHECK_EQ_INT(ws_blob_unseal(key_a, "users/u/a.txt", sealed.data, WS_BLOB_OVERHEAD - 1, &out, &e),
                         WS_EFORMAT);
            /* truncated by one byte: the tag moves, authentication fails */
            CHECK_EQ_INT(ws_blob_unseal(key_a, "users/u/a.txt", sealed.data, sealed.len - 1, &out, &e),
                         WS_EUNSAFE);
            /* the output's limit is honoured */
            ws_buf small = WS_BUF_INIT;
            small.limit = n - 1;
            CHECK_EQ_INT(ws_blob_unseal(key_a, "users/u/a.txt", sealed.data, sealed.len, &small, &e),
                         WS_ETOOBIG);
            ws_buf_free(&small);
        }
        free(plain);
        ws_buf_free(&sealed);
        ws_buf_free(&out);
        ws_buf_free(&again);
    }
}

/* Blobs sealed by an independent AES-GCM implementation (Python's cryptography package,
 * which wrote the fuzz seed corpus) open here: the format is what blobs_crypt.h says. */
static void opens_blobs_sealed_elsewhere(void)
{
    char *raw = NULL;
    size_t n = 0;
    ws_error err = {0};
    ws_buf out = WS_BUF_INIT;
    CHECK_EQ_INT(ws_file_read("fuzz/corpus/fuzz_blob/valid_short", 4096, &raw, &n, &err), 0);
    CHECK_EQ_INT(ws_blob_unseal(key_a, "users/u/exports/e.txt", raw, n, &out, &err), 0);
    CHECK_EQ_STR(out.data, "12/01/2024, 10:00 - Ann: hi\n");
    free(raw);
    ws_buf_reset(&out);
    CHECK_EQ_INT(ws_file_read("fuzz/corpus/fuzz_blob/other_name", 4096, &raw, &n, &err), 0);
    CHECK_EQ_INT(ws_blob_unseal(key_a, "users/u/exports/e.txt", raw, n, &out, &err), WS_EUNSAFE);
    CHECK_EQ_INT(ws_blob_unseal(key_a, "users/v/exports/e.txt", raw, n, &out, &err), 0);
    CHECK_EQ_STR(out.data, "hello");
    free(raw);
    ws_buf_free(&out);
}

static void keys_are_validated(void)
{
    const char *good[] = {"a", "users/usr_1/exports/exp_2.txt", "x.y-z_0/A"};
    const char *bad[] = {"", "/a", "a/", "a//b", "../a", "a/../b", "a/./b", ".", "a b", "a\\b", "é"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        CHECK_EQ_INT(ws_blobs_check_key(good[i], NULL), 0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ws_error e = {0};
        CHECK_EQ_INT(ws_blobs_check_key(bad[i], &e), WS_EINVAL);
    }
    char longkey[WS_BLOB_KEY_MAX + 2];
    memset(longkey, 'a', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    CHECK_EQ_INT(ws_blobs_check_key(longkey, NULL), WS_EINVAL);
}

static void master_key_file_and_env(void)
{
    mkdata();
    t_blobs_keys(NULL, NULL);
    unsigned char k1[32], k2[32];
    ws_error err = {0};
    CHECK_EQ_INT(ws_blobs_master_key(dir, k1, &err), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/master.key", dir);
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK_EQ_INT(st.st_size, 32);
    CHECK_EQ_INT(ws_blobs_master_key(dir, k2, &err), 0);
    CHECK(!memcmp(k1, k2, 32)); /* the same key next time */
    chmod(path, 0644);
    CHECK_EQ_INT(ws_blobs_master_key(dir, k2, &err), WS_EUNSAFE);
    CHECK(strstr(err.msg, "readable by others") != NULL);
    chmod(path, 0600);
    truncate(path, 16);
    CHECK_EQ_INT(ws_blobs_master_key(dir, k2, &err), WS_EFORMAT);

    t_blobs_keys("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", NULL);
    CHECK_EQ_INT(ws_blobs_master_key(NULL, k2, &err), 0);
    CHECK_EQ_INT(k2[0], 0);
    CHECK_EQ_INT(k2[31], 0x1f);
    t_blobs_keys("0001", NULL);
    CHECK_EQ_INT(ws_blobs_master_key(NULL, k2, &err), WS_EINVAL);
    t_blobs_keys("zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", NULL);
    CHECK_EQ_INT(ws_blobs_master_key(NULL, k2, &err), WS_EINVAL);
    t_blobs_keys(NULL, NULL);
    rmdata();
}

/* The backend suite, run on local and S3 blobs alike. */
static void backend_suite(ws_blobs *b, const char *root)
{
    ws_error err = {0};
    char k1[256], k2[256], k3[256], other[256], prefix[256];
    snprintf(k1, sizeof k1, "%s/users/usr_a/exports/one.txt", root);
    snprintf(k2, sizeof k2, "%s/users/usr_a/models/v1/model.bin", root);
    snprintf(k3, sizeof k3, "%s/users/usr_ab/exports/x.txt", root);
    snprintf(other, sizeof other, "%s/users/usr_b/exports/two.txt", root);
    snprintf(prefix, sizeof prefix, "%s/users/usr_a/", root);
    const char *text = "12/01/2024, 10:00 - Ann: secret plans 🤫\n";
    size_t big_n = 300000;
    char *big = ws_xmalloc(big_n);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (char)(i % 251);
    CHECK_EQ_INT(ws_blobs_put(b, k1, text, strlen(text), &err), 0);
    CHECK_EQ_INT(ws_blobs_put(b, k2, big, big_n, &err), 0);
    CHECK_EQ_INT(ws_blobs_put(b, k3, "x", 1, &err), 0);
    CHECK_EQ_INT(ws_blobs_put(b, other, "keep", 4, &err), 0);
    ws_buf out = WS_BUF_INIT;
    CHECK_EQ_INT(ws_blobs_get(b, k1, 1 << 20, &out, &err), 0);
    CHECK_EQ_STR(out.data, text);
    ws_buf_reset(&out);
    CHECK_EQ_INT(ws_blobs_get(b, k2, big_n, &out, &err), 0);
    CHECK(out.len == big_n && !memcmp(out.data, big, big_n));
    ws_buf_reset(&out);
    CHECK_EQ_INT(ws_blobs_get(b, k2, big_n - 1, &out, &err), WS_ETOOBIG);
    CHECK_EQ_INT(out.len, 0);
    /* replacing an object */
    CHECK_EQ_INT(ws_blobs_put(b, k1, "v2", 2, &err), 0);
    CHECK_EQ_INT(ws_blobs_get(b, k1, 100, &out, &err), 0);
    CHECK_EQ_STR(out.data, "v2");
    ws_buf_reset(&out);
    /* to a private temporary file */
    char *tmp = NULL;
    CHECK_EQ_INT(ws_blobs_get_to_temp(b, k2, big_n, dir, &tmp, &err), 0);
    if (tmp) {
        struct stat st;
        CHECK_EQ_INT(stat(tmp, &st), 0);
        CHECK_EQ_INT(st.st_mode & 0777, 0600);
        CHECK_EQ_INT(st.st_size, (long long)big_n);
        unlink(tmp);
        free(tmp);
    }
    char missing[256];
    snprintf(missing, sizeof missing, "%s/users/usr_a/none", root);
    CHECK_EQ_INT(ws_blobs_get(b, missing, 100, &out, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_blobs_get(b, "../etc/passwd", 100, &out, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_blobs_put(b, "a//b", "x", 1, &err), WS_EINVAL);
    /* erasure of one user's folder leaves the others (usr_ab shares the text prefix) */
    size_t n = 0;
    CHECK_EQ_INT(ws_blobs_delete_prefix(b, prefix, &n, &err), 0);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(ws_blobs_get(b, k1, 100, &out, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_blobs_get(b, k2, big_n, &out, &err), WS_ENOENT);
    CHECK_EQ_INT(ws_blobs_get(b, k3, 100, &out, &err), 0);
    ws_buf_reset(&out);
    CHECK_EQ_INT(ws_blobs_get(b, other, 100, &out, &err), 0);
    CHECK_EQ_STR(out.data, "keep");
    CHECK_EQ_INT(ws_blobs_delete_prefix(b, prefix, &n, &err), 0);
    CHECK_EQ_INT(n, 0);
    CHECK_EQ_INT(ws_blobs_delete_prefix(b, "no-slash", &n, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_blobs_delete(b, other, &err), 0);
    CHECK_EQ_INT(ws_blobs_delete(b, other, &err), 0); /* absent: fine */
    CHECK_EQ_INT(ws_blobs_delete(b, k3, &err), 0);
    CHECK_EQ_INT(ws_blobs_get(b, other, 100, &out, &err), WS_ENOENT);
    ws_buf_free(&out);
    free(big);
}

static void local_backend_round_trip_encrypted_on_disk(void)
{
    mkdata();
    t_blobs_keys(NULL, NULL);
    ws_blobs *b = NULL;
    ws_error err = {0};
    CHECK_EQ_INT(ws_blobs_open(NULL, dir, &b, &err), 0);
    if (!b) {
        rmdata();
        return;
    }
    CHECK_EQ_STR(ws_blobs_backend(b), "local");
    backend_suite(b, "t");
    /* on disk: sealed, 0600, no plaintext */
    const char *secret = "the secret export text";
    CHECK_EQ_INT(ws_blobs_put(b, "users/u1/e.txt", secret, strlen(secret), &err), 0);
    char path[300];
    snprintf(path, sizeof path, "%s/blobs/users/u1/e.txt", dir);
    char *raw = NULL;
    size_t rl = 0;
    CHECK_EQ_INT(ws_file_read(path, 1 << 20, &raw, &rl, &err), 0);
    CHECK_EQ_INT(rl, strlen(secret) + WS_BLOB_OVERHEAD);
    CHECK(raw && !memmem(raw, rl, "secret", 6));
    struct stat st;
    CHECK_EQ_INT(stat(path, &st), 0);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    /* tampering with the file on disk is detected with a clear error */
    raw[WS_BLOB_HDR_LEN + 3] ^= 1;
    CHECK_EQ_INT(ws_file_write_atomic(path, raw, rl, &err), 0);
    ws_buf out = WS_BUF_INIT;
    CHECK_EQ_INT(ws_blobs_get(b, "users/u1/e.txt", 1 << 20, &out, &err), WS_EUNSAFE);
    CHECK(strstr(err.msg, "users/u1/e.txt failed authentication") != NULL);
    CHECK_EQ_INT(out.len, 0);
    raw[WS_BLOB_HDR_LEN + 3] ^= 1;
    CHECK_EQ_INT(ws_file_write_atomic(path, raw, rl, &err), 0);
    free(raw);
    ws_blobs_close(b);
    /* reopened: the same master key reads it */
    CHECK_EQ_INT(ws_blobs_open(NULL, dir, &b, &err), 0);
    CHECK_EQ_INT(ws_blobs_get(b, "users/u1/e.txt", 1 << 20, &out, &err), 0);
    CHECK_EQ_STR(out.data, secret);
    ws_blobs_close(b);
    /* another master key: refused, saying so */
    t_blobs_keys("ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", NULL);
    char url[300];
    snprintf(url, sizeof url, "file:%s/blobs", dir);
    CHECK_EQ_INT(ws_blobs_open(url, NULL, &b, &err), 0);
    ws_buf_reset(&out);
    CHECK_EQ_INT(ws_blobs_get(b, "users/u1/e.txt", 1 << 20, &out, &err), WS_EPERM);
    CHECK(strstr(err.msg, "different master key") != NULL);
    ws_blobs_close(b);
    t_blobs_keys(NULL, NULL);
    CHECK_EQ_INT(ws_blobs_open("ftp://x/y", dir, &b, &err), WS_EINVAL);
    CHECK_EQ_INT(ws_blobs_open("s3://host-only", dir, &b, &err), WS_EINVAL);
    ws_buf_free(&out);
    rmdata();
}

/* AWS's published example (S3 API reference, "Signature Calculations for the Authorization
 * Header", GET Object): examplebucket, test.txt, Range bytes=0-9, 20130524T000000Z. */
static void sigv4_matches_the_aws_example(void)
{
    const char *empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    char h[65];
    ws_s3_sha256_hex("", 0, h);
    CHECK_EQ_STR(h, empty);
    ws_s3_header hs[] = {{"x-amz-date", "20130524T000000Z"},
                         {"range", "bytes=0-9"},
                         {"host", "examplebucket.s3.amazonaws.com"},
                         {"x-amz-content-sha256", empty}};
    char auth[512];
    CHECK_EQ_INT(ws_s3_sign("GET", "/test.txt", "", hs, 4, empty, "20130524T000000Z", "us-east-1",
                            "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", auth,
                            sizeof auth),
                 0);
    CHECK_EQ_STR(auth, "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
                       "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
                       "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    CHECK_EQ_INT(ws_s3_sign("GET", "/", "", hs, 4, empty, "bad", "us-east-1", "a", "b", auth, sizeof auth),
                 -1);
    CHECK_EQ_INT(
        ws_s3_sign("GET", "/test.txt", "", hs, 4, empty, "20130524T000000Z", "us-east-1", "a", "b", auth, 20),
        -1);
    char enc[64];
    CHECK_EQ_INT(ws_s3_uri_encode("a b/c~d+é", 1, enc, sizeof enc), 18);
    CHECK_EQ_STR(enc, "a%20b/c~d%2B%C3%A9");
    CHECK_EQ_INT(ws_s3_uri_encode("a/b", 0, enc, sizeof enc), 5);
    CHECK_EQ_STR(enc, "a%2Fb");
    CHECK_EQ_INT(ws_s3_uri_encode("abcdef", 0, enc, 4), -1);
}

static void count_key(void *arg, const char *key)
{
    ws_buf *b = arg;
    ws_buf_printf(b, "[%s]", key);
}

static void s3_listing_parser(void)
{
    char next[64] = "";
    ws_buf keys = WS_BUF_INIT;
    const char *page = "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name><Prefix>u/</Prefix>"
                       "<Contents><Key>u/a&amp;b.txt</Key><Size>3</Size></Contents>"
                       "<Contents><Key>u/&lt;x&gt;</Key></Contents>"
                       "<IsTruncated>true</IsTruncated><NextContinuationToken>tok+/=</NextContinuationToken>"
                       "</ListBucketResult>";
    CHECK_EQ_INT(ws_s3_parse_list(page, count_key, &keys, next, sizeof next), 1);
    CHECK_EQ_STR(keys.data, "[u/a&b.txt][u/<x>]");
    CHECK_EQ_STR(next, "tok+/=");
    ws_buf_reset(&keys);
    CHECK_EQ_INT(
        ws_s3_parse_list("<IsTruncated>false</IsTruncated><Key>k</Key>", count_key, &keys, next, sizeof next),
        0);
    CHECK_EQ_STR(keys.data, "[k]");
    /* a key too long is skipped, the rest still seen; unterminated elements end the scan */
    ws_buf big = WS_BUF_INIT;
    ws_buf_puts(&big, "<Key>");
    for (int i = 0; i < WS_S3_LIST_KEY_MAX + 10; i++)
        ws_buf_putc(&big, 'a');
    ws_buf_puts(&big, "</Key><Key>short</Key><Key>open");
    ws_buf_reset(&keys);
    CHECK_EQ_INT(ws_s3_parse_list(big.data, count_key, &keys, next, sizeof next), 0);
    CHECK_EQ_STR(keys.data, "[short]");
    /* truncated without a token: not "more" */
    CHECK_EQ_INT(ws_s3_parse_list("<IsTruncated>true</IsTruncated>", count_key, &keys, next, sizeof next), 0);
    ws_buf_free(&big);
    ws_buf_free(&keys);
}

static const char *root_of_run(void)
{
    static char root[32];
    snprintf(root, sizeof root, "run%d", (int)getpid());
    return root;
}

/* A large export goes up as a multipart upload (5 MiB parts: 12 MiB + 1 byte = 3 parts) and
 * reads back whole; a wrong secret is refused by the server (it checks signatures) with a
 * clear error. */
static void s3_multipart_and_credentials(const char *url, const char *root)
{
    ws_error err = {0};
    ws_blobs *b = NULL;
    const char *mk = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    t_blobs_s3(mk, NULL, getenv("WS_S3_SECRET_KEY"), 5u << 20);
    CHECK_EQ_INT(ws_blobs_open(url, NULL, &b, &err), 0);
    t_blobs_keys(mk, NULL);
    if (b) {
        size_t n = (12u << 20) + 1;
        unsigned char *big = ws_xmalloc(n);
        for (size_t i = 0; i < n; i++)
            big[i] = (unsigned char)((i * 7919u) >> 3);
        char k[128];
        snprintf(k, sizeof k, "%s/users/usr_big/exports/big.txt", root);
        int rc = ws_blobs_put(b, k, big, n, &err);
        if (rc)
            fprintf(stderr, "multipart put: %s\n", err.msg);
        CHECK_EQ_INT(rc, 0);
        ws_buf out = WS_BUF_INIT;
        CHECK_EQ_INT(ws_blobs_get(b, k, n, &out, &err), 0);
        CHECK(out.len == n && !memcmp(out.data, big, n));
        ws_buf_free(&out);
        CHECK_EQ_INT(ws_blobs_delete(b, k, &err), 0);
        free(big);
        ws_blobs_close(b);
    }
    t_blobs_s3(mk, NULL, "not-the-secret", 0);
    b = NULL;
    CHECK_EQ_INT(ws_blobs_open(url, NULL, &b, &err), WS_EPERM);
    CHECK(strstr(err.msg, "refused our credentials") && strstr(err.msg, "WS_S3_SECRET_KEY"));
    CHECK(strstr(err.msg, "not-the-secret") == NULL); /* never the secret itself */
    ws_blobs_close(b);
    t_blobs_keys(mk, NULL);
}

static void s3_backend_against_a_real_server(void)
{
    const char *url = getenv("WS_TEST_S3_URL");
    const char *require = getenv("WS_TEST_REQUIRE_S3");
    if (!url || !*url) {
        if (require && *require == '1')
            CHECK(!"WS_TEST_S3_URL is set (an S3-compatible server is running)");
        else
            printf("  (no WS_TEST_S3_URL: S3 backend not exercised in this run; tests/cli/blobs_s3.sh runs "
                   "it)\n");
        return;
    }
    mkdata();
    t_blobs_keys("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", NULL);
    ws_blobs *b = NULL;
    ws_error err = {0};
    int rc = ws_blobs_open(url, NULL, &b, &err);
    if (rc)
        fprintf(stderr, "s3 open: %s\n", err.msg);
    CHECK_EQ_INT(rc, 0);
    if (b) {
        CHECK_EQ_STR(ws_blobs_backend(b), "s3");
        const char *root = root_of_run();
        backend_suite(b, root);
        /* more than one listing page (the server pages at 1000 keys; use many small ones) */
        enum { MANY = 1100 };
        char k[128];
        for (int i = 0; i < MANY; i++) {
            snprintf(k, sizeof k, "%s/users/usr_many/o%04d", root, i);
            CHECK_EQ_INT(ws_blobs_put(b, k, "x", 1, &err), 0);
        }
        snprintf(k, sizeof k, "%s/users/usr_many/", root);
        size_t n = 0;
        CHECK_EQ_INT(ws_blobs_delete_prefix(b, k, &n, &err), 0);
        CHECK_EQ_INT(n, MANY);
        ws_blobs_close(b);
    }
    s3_multipart_and_credentials(url, root_of_run());
    /* a server that is not there */
    CHECK_EQ_INT(ws_blobs_open("s3+http://127.0.0.1:1/bucket", NULL, &b, &err), WS_EIO);
    t_blobs_keys(NULL, NULL);
    rmdata();
}

WS_TEST_MAIN(T(crypt_round_trip_and_tamper_detection), T(opens_blobs_sealed_elsewhere), T(keys_are_validated),
             T(master_key_file_and_env), T(local_backend_round_trip_encrypted_on_disk),
             T(sigv4_matches_the_aws_example), T(s3_listing_parser), T(s3_backend_against_a_real_server))
