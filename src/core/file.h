/* Whole-file reads with a size cap, atomic writes (temporary file, fsync, rename), so a
 * reader never sees a half-written artifact, and folder trees (create parents, remove). */
#ifndef WS_CORE_FILE_H
#define WS_CORE_FILE_H

#include <stddef.h>

#include "core/error.h"

/* Reads the file at path into *data (malloc'd, NUL-terminated, the caller frees) and *len.
 * On error *data is NULL. Errors: WS_ENOENT, WS_EIO, WS_ETOOBIG (more than cap bytes), with the
 * path in err. */
int ws_file_read(const char *path, size_t cap, char **data, size_t *len, ws_error *err);

/* Writes len bytes to path atomically: path holds either its old content or all of data.
 * Errors: WS_EIO with the path and reason in err. */
int ws_file_write_atomic(const char *path, const void *data, size_t len, ws_error *err);

/* Creates the missing folders above path (mode 0700), from byte `skip` of path on (the length
 * of a prefix known to exist, e.g. a root folder; 0 = all). Errors: WS_EIO. */
int ws_file_make_parents(const char *path, size_t skip, ws_error *err);

/* Creates the folder at path and the missing ones above it (mode 0700: they hold people's
 * data). An existing folder is fine; an existing file of that name is WS_EIO. */
int ws_file_make_dirs(const char *path, ws_error *err);

/* Removes the folder at path and everything below it, never following symbolic links (at most
 * 64 levels deep). An absent folder is not an error. *n_files (may be NULL) gets how many files
 * were deleted. Errors: WS_EIO with the path and reason in err. */
int ws_file_remove_tree(const char *path, size_t *n_files, ws_error *err);

/* Hex SHA-256 of the file at path (65 bytes with the NUL). Errors: WS_ENOENT, WS_EIO. */
int ws_file_sha256(const char *path, char hex[65], ws_error *err);

#endif
