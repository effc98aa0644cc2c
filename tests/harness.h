/* A minimal unit-test harness: TEST(name) functions registered in a table, CHECK macros
 * that record failures without stopping the test, and a closing line CI can read:
 * "N passed, N failed". Include once per test program; define main with WS_TEST_MAIN. */
#ifndef WS_TESTS_HARNESS_H
#define WS_TESTS_HARNESS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ws_t_failed_checks;
static const char *ws_t_current;

#define CHECK(cond)                                                                                          \
    do {                                                                                                     \
        if (!(cond)) {                                                                                       \
            ws_t_failed_checks++;                                                                            \
            fprintf(stderr, "%s:%d: %s: CHECK(%s) failed\n", __FILE__, __LINE__, ws_t_current, #cond);       \
        }                                                                                                    \
    } while (0)
#define CHECK_EQ_INT(a, b)                                                                                   \
    do {                                                                                                     \
        long long _a = (long long)(a), _b = (long long)(b);                                                  \
        if (_a != _b) {                                                                                      \
            ws_t_failed_checks++;                                                                            \
            fprintf(stderr, "%s:%d: %s: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__,              \
                    ws_t_current, #a, _a, #b, _b);                                                           \
        }                                                                                                    \
    } while (0)
#define CHECK_EQ_STR(a, b)                                                                                   \
    do {                                                                                                     \
        const char *_a = (a), *_b = (b);                                                                     \
        if (!_a || !_b || strcmp(_a, _b)) {                                                                  \
            ws_t_failed_checks++;                                                                            \
            fprintf(stderr, "%s:%d: %s: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, ws_t_current,  \
                    #a, _a ? _a : "(null)", _b ? _b : "(null)");                                             \
        }                                                                                                    \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                                                \
    do {                                                                                                     \
        double _a = (a), _b = (b);                                                                           \
        if (!(fabs(_a - _b) <= (tol))) {                                                                     \
            ws_t_failed_checks++;                                                                            \
            fprintf(stderr, "%s:%d: %s: %s == %g, expected %g (tol %g)\n", __FILE__, __LINE__, ws_t_current, \
                    #a, _a, _b, (double)(tol));                                                              \
        }                                                                                                    \
    } while (0)

typedef struct {
    const char *name;
    void (*fn)(void);
} ws_test_case;

#define WS_TEST_MAIN(...)                                                                                    \
    int main(int argc, char **argv)                                                                          \
    {                                                                                                        \
        static const ws_test_case cases[] = {__VA_ARGS__};                                                   \
        int passed = 0, failed = 0;                                                                          \
        setenv("UV_THREADPOOL_SIZE", "16", 0); /* as `whatstyle serve` sets it for libuv */                  \
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {                                        \
            if (argc > 1 && strcmp(argv[1], cases[i].name) != 0)                                             \
                continue;                                                                                    \
            int before = ws_t_failed_checks;                                                                 \
            ws_t_current = cases[i].name;                                                                    \
            cases[i].fn();                                                                                   \
            if (ws_t_failed_checks == before) {                                                              \
                passed++;                                                                                    \
                printf("ok   %s\n", cases[i].name);                                                          \
            } else {                                                                                         \
                failed++;                                                                                    \
                printf("FAIL %s\n", cases[i].name);                                                          \
            }                                                                                                \
        }                                                                                                    \
        printf("%d passed, %d failed\n", passed, failed);                                                    \
        return failed ? 1 : 0;                                                                               \
    }
#define T(fn)                                                                                                \
    {                                                                                                        \
#fn, fn                                                                                              \
    }

/* Directory of the test fixtures (env WS_FIXTURES, else tests/fixtures under the source root,
 * where the tests run). The public corpus lives under corpus/whatsapp/, with its sources. */
static inline const char *ws_t_fixtures(void)
{
    const char *s = getenv("WS_FIXTURES");
    return s && *s ? s : "tests/fixtures";
}

#endif
