/* gRPC server reflection (grpc.reflection.v1.ServerReflection) over the FileDescriptorSet that
 * the build embeds (protoc --descriptor_set_out over proto/: ws_proto_descriptor_set), so stock
 * clients (grpcurl, grpcui, Postman) list and call our services without our .proto files.
 *
 * Ownership: the index over the embedded set is built once and lives for the process. */
#ifndef WS_GRPC_GRPC_REFLECT_H
#define WS_GRPC_GRPC_REFLECT_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "grpc/grpc_server.h"

#define WS_GRPC_REFLECTION_PATH "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"

/* Answers one serialized ServerReflectionRequest with a serialized ServerReflectionResponse
 * appended to out (lookups that fail are answered in-band with an error_response, as the
 * protocol wants). Returns a gRPC status: INVALID_ARGUMENT (with msg) for bytes that are not a
 * request. */
int ws_grpc_reflect_answer(const uint8_t *req, size_t len, ws_buf *out, ws_buf *msg);

/* The BIDI_INLINE handler for WS_GRPC_REFLECTION_PATH. */
int ws_grpc_reflect_handler(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg);

/* Walks protobuf wire data: the next field of [*p, end). Returns 1 with the field number, wire
 * type and value (varint in *num, or the bytes of a length-delimited field), 0 at the end, or
 * WS_EFORMAT for malformed data (groups included). */
int ws_grpc_pb_next(const uint8_t **p, const uint8_t *end, uint32_t *field, int *wire, uint64_t *num,
                    const uint8_t **val, size_t *vlen);

#endif
