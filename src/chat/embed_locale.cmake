# Build step: embeds src/chat/locale_strings.tsv (the localized phrase table) into a C file as a
# byte array, so the binary carries it and the table stays a reviewable text file.
# Usage: cmake -DIN=src/chat/locale_strings.tsv -DOUT=gen/chat_locale.c -P embed_locale.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
file(SIZE ${IN} size)
set(code "/* Generated from src/chat/locale_strings.tsv by src/chat/embed_locale.cmake. Do not edit. */\n")
string(APPEND code "#include <stddef.h>\n\n")
string(APPEND code "extern const unsigned char ws__chat_locale_tsv[];\nextern const size_t ws__chat_locale_tsv_len;\n")
string(APPEND code "const unsigned char ws__chat_locale_tsv[] = {${hex}0};\n")
string(APPEND code "const size_t ws__chat_locale_tsv_len = ${size};\n")
file(WRITE ${OUT}.tmp "${code}")
file(COPY_FILE ${OUT}.tmp ${OUT} ONLY_IF_DIFFERENT)
file(REMOVE ${OUT}.tmp)
