/* Allocation wrappers that abort on out-of-memory, so callers never handle NULL from them.
 * Everything they return is owned by the caller and released with free(). */
#ifndef WS_CORE_MEM_H
#define WS_CORE_MEM_H

#include <stddef.h>

void *ws_xmalloc(size_t n);
void *ws_xcalloc(size_t count, size_t size);
void *ws_xrealloc(void *p, size_t n);
char *ws_xstrdup(const char *s);
char *ws_xstrndup(const char *s, size_t n);
/* Aligned allocation (alignment a power of two >= sizeof(void*)); release with free(). */
void *ws_xaligned(size_t alignment, size_t n);

#endif
