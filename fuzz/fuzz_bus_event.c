/* libFuzzer target: the bus message payload parser (training-jobs / training-events; any
 * client of the broker can write them) must never crash or read out of bounds, and what it
 * accepts must hold only safe ids and in-range numbers. Also the relay's traceparent reader. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bus/event.h"
#include "bus/relay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_id(const char *s)
{
    if (!*s)
        abort();
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_' ||
              *s == '-'))
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size ? size : 1); /* exactly size bytes: ASan sees any over-read */
    memcpy(s, data, size);
    ws_bus_job_event ev;
    if (ws_bus_job_event_parse(s, size, &ev, NULL) == 0) {
        check_id(ev.job_id);
        check_id(ev.user_id);
        if (strncmp(ev.type, "training.", 9) || ev.progress < 0 || ev.progress > 1 || ev.samples < 0)
            abort();
    }
    char tp[64];
    if (ws_relay_payload_traceparent(s, size, tp) && strlen(tp) != 55)
        abort();
    free(s);
    return 0;
}
