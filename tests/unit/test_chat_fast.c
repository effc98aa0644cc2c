/* Tests of the header fast path (ws__chat_template_fast, header.c): on every line it accepts,
 * its time must be the general path's (template match, then ws__chat_resolve), and it must
 * accept every valid line of the remembered date, for 24h and 12h layouts, 1- and 2-digit
 * hours and every hour, minute and second, valid or not. */
#include "harness.h"

#include <stdio.h>

#include "chat/chat.h"
#include "chat/chat_int.h"
#include "core/utf8.h"

/* Each layout as a printf format of day, month, hour, minute (and second, marker). */
static const char *layouts[] = {
    "%02d/%02d/2021, %02d:%02d - Ana: hi",     "[%02d/%02d/2021, %02d:%02d:%02d] Ana: hi",
    "%d/%d/21, %d:%02d %s - Ana: hi",          "[%02d.%02d.21, %02d:%02d:%02d %s] Ana: hi",
    "%02d-%02d-2021 %d:%02d - Ana: hi x long", "%02d/%02d/2021, %d:%02d %s - Ana: hi",
};

static int format_line(char *out, size_t cap, int layout, int day, int month, int hour, int minute,
                       int second, const char *marker)
{
    switch (layout) {
    case 0: return snprintf(out, cap, layouts[0], day, month, hour, minute);
    case 1: return snprintf(out, cap, layouts[1], day, month, hour, minute, second);
    case 2: return snprintf(out, cap, layouts[2], month, day, hour, minute, marker);
    case 3: return snprintf(out, cap, layouts[3], day, month, hour, minute, second, marker);
    case 4: return snprintf(out, cap, layouts[4], day, month, hour, minute);
    default: return snprintf(out, cap, layouts[5], day, month, hour, minute, marker);
    }
}

static bool same_time(const ws_datetime *a, const ws_datetime *b)
{
    return a->year == b->year && a->month == b->month && a->day == b->day && a->hour == b->hour &&
           a->minute == b->minute && a->second == b->second;
}

static void fast_path_agrees_with_general_path(void)
{
#if defined(WS_CHAT_HAVE_MATCH_AVX2)
    if (!ws_cpu_avx2()) {
        CHECK(true); /* the fast path is never taken without AVX2: nothing to compare */
        return;
    }
    const char *markers[] = {"AM", "PM", "a.m.", "p.m."};
    long fast = 0, compared = 0;
    bool ok = true;
    for (int layout = 0; layout < 6; layout++)
        for (int mk = 0; mk < 4; mk++) {
            /* a template and its remembered date from a first valid line */
            _Alignas(32) char line[128] = {0}, first[128] = {0};
            int n = format_line(first, sizeof first, layout, 13, 5, 9, 30, 15, markers[mk]);
            chat_header h;
            chat_template t;
            ws_datetime ts;
            ws_date_order order = layout == 2 ? WS_DATE_MDY : WS_DATE_DMY;
            if (!ws__chat_parse_header(first, (size_t)n, &h) || !ws__chat_template_make(first, &h, &t) ||
                !t.avx2_32 || !ws__chat_resolve(&h, order, &ts))
                continue;
            ws__chat_template_remember_date(&t, first, sizeof first, &ts);
            for (int hour = 0; hour < 100; hour++)
                for (int minute = 0; minute < 100; minute += 7)
                    for (int second = 0; second < 100; second += 29) {
                        memset(line, 0, sizeof line);
                        n = format_line(line, sizeof line, layout, 13, 5, hour, minute, second, markers[mk]);
                        ws_datetime a, b;
                        bool f = ws__chat_template_fast(&t, line, (size_t)n, sizeof line, &a);
                        bool g = ws__chat_template_match(&t, line, (size_t)n, sizeof line, &h) &&
                                 ws__chat_resolve(&h, order, &b);
                        compared++;
                        fast += f;
                        if (f != g || (f && !same_time(&a, &b))) {
                            fprintf(stderr, "fast %d general %d on '%s'\n", f, g, line);
                            ok = false;
                        }
                    }
        }
    CHECK(ok);
    CHECK(compared > 10000);
    CHECK(fast > 1000);
#else
    CHECK(true); /* no AVX2 fast path on this platform */
#endif
}

WS_TEST_MAIN(T(fast_path_agrees_with_general_path))
