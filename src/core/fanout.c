/* Fan-out on threads (see fanout.h). */
#include "core/fanout.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "core/mem.h"

typedef struct part {
    void (*fn)(void *item);
    void *item;
    pthread_t thread;
    bool started;
} part;

static void *part_main(void *arg)
{
    part *p = arg;
    p->fn(p->item);
    return NULL;
}

void ws_fanout(size_t n, void (*fn)(void *item), void *items, size_t item_size)
{
    if (n == 0)
        return;
    if (n == 1) {
        fn(items);
        return;
    }
    part *parts = ws_xcalloc(n, sizeof *parts);
    for (size_t i = 0; i < n; i++) {
        parts[i].fn = fn;
        parts[i].item = (char *)items + i * item_size;
        parts[i].started = pthread_create(&parts[i].thread, NULL, part_main, &parts[i]) == 0;
    }
    for (size_t i = 0; i < n; i++)
        if (!parts[i].started)
            fn(parts[i].item);
    for (size_t i = 0; i < n; i++)
        if (parts[i].started)
            pthread_join(parts[i].thread, NULL);
    free(parts);
}
