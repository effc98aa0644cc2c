/* Whole-file reads with a size cap, and atomic writes (temporary file, fsync, rename), so a
 * reader never sees a half-written artifact. */
#ifndef WS_CORE_FILE_H
#define WS_CORE_FILE_H

#include <stddef.h>

#include "core/error.h"

/* Reads the file at path into *data (malloc'd, NUL-terminated, the caller frees) and *len.
 * Errors: WS_ENOENT, WS_EIO, WS_ETOOBIG (more than cap bytes), with the path in err. */
int ws_file_read(const char *path, size_t cap, char **data, size_t *len, ws_error *err);

/* Writes len bytes to path atomically: path holds either its old content or all of data.
 * Errors: WS_EIO with the path and reason in err. */
int ws_file_write_atomic(const char *path, const void *data, size_t len, ws_error *err);

#endif
