/* Fan-out on threads for coarse parallel work (parsing parts of a file, embedding ranges of a
 * corpus, re-sealing blobs): one thread per part, the caller waits for all. The numeric kernels
 * use the engine's persistent pool instead (nn/parallel.h). */
#ifndef WS_CORE_FANOUT_H
#define WS_CORE_FANOUT_H

#include <stddef.h>

/* Runs fn(items + i * item_size) for i in [0, n), each on a thread of its own, and returns when
 * all have returned (item_size 0: every call gets items itself). A part whose thread cannot
 * start, and the only part when n == 1, runs on the calling thread, so every part always runs.
 * fn must be thread-safe for distinct items; items stay owned by the caller. */
void ws_fanout(size_t n, void (*fn)(void *item), void *items, size_t item_size);

#endif
