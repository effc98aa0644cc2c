/* Test helper: hands the blobs their settings the way the CLI does (ws_blobs_configure): the
 * master key and retired keys given, the S3 keys and region from the environment that
 * tests/cli/blobs_s3.sh sets (tests may read the environment; the library does not). */
#ifndef WS_TEST_BLOBS_SETTINGS_H
#define WS_TEST_BLOBS_SETTINGS_H

#include <stdlib.h>

#include "blobs/blobs.h"

static inline void t_blobs_s3(const char *master_key, const char *retired_keys, const char *secret_key,
                              size_t part_size)
{
    ws_blobs_configure(&(ws_blobs_settings){.master_key = master_key,
                                            .retired_keys = retired_keys,
                                            .s3_region = getenv("WS_S3_REGION"),
                                            .s3_access_key = getenv("WS_S3_ACCESS_KEY"),
                                            .s3_secret_key = secret_key,
                                            .s3_part_size = part_size});
}

static inline void t_blobs_keys(const char *master_key, const char *retired_keys)
{
    t_blobs_s3(master_key, retired_keys, getenv("WS_S3_SECRET_KEY"), 0);
}

#endif
