# The gRPC service's protocol: C code generated from proto/**/*.proto with protoc-c at build time
# (into build/gen/proto/), and the serialized FileDescriptorSet (protoc --descriptor_set_out)
# embedded as a byte array for server reflection. Sets WS_PROTO_SOURCES and WS_PROTO_INCLUDE.
find_program(PROTOC_C protoc-c REQUIRED)
find_program(PROTOC protoc REQUIRED)
pkg_check_modules(PROTOBUF_C REQUIRED IMPORTED_TARGET libprotobuf-c)
set(WS_PROTO_DIR ${CMAKE_SOURCE_DIR}/proto)
set(WS_PROTO_FILES whatstyle/ai/v1/ai.proto grpc/health/v1/health.proto grpc/reflection/v1/reflection.proto)
set(WS_PROTO_INCLUDE ${CMAKE_BINARY_DIR}/gen/proto)
set(WS_PROTO_SOURCES "")
set(WS_PROTO_DEPS "")
foreach(p ${WS_PROTO_FILES})
  string(REGEX REPLACE "\\.proto$" "" stem ${p})
  list(APPEND WS_PROTO_SOURCES ${WS_PROTO_INCLUDE}/${stem}.pb-c.c)
  list(APPEND WS_PROTO_DEPS ${WS_PROTO_DIR}/${p})
  add_custom_command(OUTPUT ${WS_PROTO_INCLUDE}/${stem}.pb-c.c ${WS_PROTO_INCLUDE}/${stem}.pb-c.h
    COMMAND ${CMAKE_COMMAND} -E make_directory ${WS_PROTO_INCLUDE}
    COMMAND ${PROTOC_C} -I${WS_PROTO_DIR} --c_out=${WS_PROTO_INCLUDE} ${p}
    WORKING_DIRECTORY ${WS_PROTO_DIR}
    DEPENDS ${WS_PROTO_DIR}/${p}
    COMMENT "protoc-c ${p}")
endforeach()
set(WS_PROTO_DESC ${CMAKE_BINARY_DIR}/gen/proto/descriptors.pb)
set(WS_PROTO_DESC_C ${CMAKE_BINARY_DIR}/gen/proto_descriptors.c)
add_custom_command(OUTPUT ${WS_PROTO_DESC_C}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${WS_PROTO_INCLUDE}
  COMMAND ${PROTOC} -I${WS_PROTO_DIR} --include_imports --descriptor_set_out=${WS_PROTO_DESC} ${WS_PROTO_FILES}
  COMMAND ${CMAKE_COMMAND} -DIN=${WS_PROTO_DESC} -DOUT=${WS_PROTO_DESC_C} -DNAME=ws_proto_descriptor_set
          -P ${CMAKE_SOURCE_DIR}/tools/embed-file.cmake
  WORKING_DIRECTORY ${WS_PROTO_DIR}
  DEPENDS ${WS_PROTO_DEPS} ${CMAKE_SOURCE_DIR}/tools/embed-file.cmake
  COMMENT "Embedding the protobuf descriptor set")
list(APPEND WS_PROTO_SOURCES ${WS_PROTO_DESC_C})
# generated code is not held to our warning flags
set_source_files_properties(${WS_PROTO_SOURCES} PROPERTIES COMPILE_OPTIONS "-Wno-missing-prototypes;-Wno-unused-parameter")
