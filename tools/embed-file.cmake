# Build step: embeds one binary file IN into a C file OUT as a byte array named NAME (with
# NAME_len), e.g. the protobuf descriptor set the gRPC server's reflection serves.
# Usage: cmake -DIN=file -DOUT=gen/x.c -DNAME=symbol -P embed-file.cmake
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" n)
math(EXPR n "${n} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
set(code "/* Generated from ${IN} by tools/embed-file.cmake. Do not edit. */\n#include <stddef.h>\n")
string(APPEND code "extern const unsigned char ${NAME}[];\nextern const size_t ${NAME}_len;\n")
string(APPEND code "const unsigned char ${NAME}[] = {${hex}0};\nconst size_t ${NAME}_len = ${n};\n")
file(WRITE ${OUT}.tmp "${code}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
