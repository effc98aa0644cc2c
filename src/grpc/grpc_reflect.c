/* Server reflection over the embedded descriptor set (see grpc_reflect.h). */
#include "grpc/grpc_reflect.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/mem.h"
#include "grpc/grpc_wire.h"
#include "grpc/reflection/v1/reflection.pb-c.h"

extern const unsigned char ws_proto_descriptor_set[];
extern const size_t ws_proto_descriptor_set_len;

#define MAX_FILES 16
#define MAX_DEPS 8
#define MAX_SYMBOLS 256
#define SYMBOL_MAX 160

typedef struct pfile {
    const uint8_t *data; /* the serialized FileDescriptorProto, inside the embedded set */
    size_t len;
    char name[SYMBOL_MAX];
    char deps[MAX_DEPS][SYMBOL_MAX];
    int n_deps;
} pfile;

typedef struct refl_index {
    pfile files[MAX_FILES];
    int n_files;
    struct {
        char name[SYMBOL_MAX];
        int file;
        bool service, message;
    } syms[MAX_SYMBOLS];
    int n_syms;
} refl_index;

static refl_index idx;
static pthread_once_t idx_once = PTHREAD_ONCE_INIT;

int ws_grpc_pb_next(const uint8_t **p, const uint8_t *end, uint32_t *field, int *wire, uint64_t *num,
                    const uint8_t **val, size_t *vlen)
{
    if (*p >= end)
        return 0;
    uint64_t v[2] = {0, 0};
    for (int part = 0; part < 2; part++) {
        if (part == 1 && (v[0] & 7) != 0 && (v[0] & 7) != 2)
            break;
        int shift = 0;
        for (;;) {
            if (*p >= end || shift > 63)
                return WS_EFORMAT;
            uint8_t b = *(*p)++;
            v[part] |= (uint64_t)(b & 0x7f) << shift;
            shift += 7;
            if (!(b & 0x80))
                break;
        }
    }
    *field = (uint32_t)(v[0] >> 3);
    *wire = (int)(v[0] & 7);
    if (*field == 0)
        return WS_EFORMAT;
    switch (*wire) {
    case 0: *num = v[1]; return 1;
    case 1:
    case 5: {
        size_t n = *wire == 1 ? 8 : 4;
        if ((size_t)(end - *p) < n)
            return WS_EFORMAT;
        *val = *p;
        *vlen = n;
        *p += n;
        return 1;
    }
    case 2:
        if (v[1] > (uint64_t)(end - *p))
            return WS_EFORMAT;
        *val = *p;
        *vlen = (size_t)v[1];
        *p += v[1];
        return 1;
    default: return WS_EFORMAT;
    }
}

static void copy_str(char *dst, const uint8_t *s, size_t n)
{
    n = n < SYMBOL_MAX - 1 ? n : SYMBOL_MAX - 1;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

static void add_sym(const char *scope, const uint8_t *name, size_t n, int file, bool service, bool message)
{
    if (idx.n_syms >= MAX_SYMBOLS)
        return;
    char leaf[SYMBOL_MAX];
    copy_str(leaf, name, n);
    int i = idx.n_syms++;
    ws_buf b = WS_BUF_INIT;
    ws_buf_printf(&b, "%s%s%s", scope, *scope ? "." : "", leaf);
    copy_str(idx.syms[i].name, (const uint8_t *)b.data, b.len);
    ws_buf_free(&b);
    idx.syms[i].file = file;
    idx.syms[i].service = service;
    idx.syms[i].message = message;
}

/* A field's string value (field 1 = name in every descriptor we read). */
static bool name_of(const uint8_t *d, size_t n, const uint8_t **s, size_t *sl)
{
    const uint8_t *p = d, *val;
    uint32_t f;
    int w;
    uint64_t num;
    size_t vl;
    while (ws_grpc_pb_next(&p, d + n, &f, &w, &num, &val, &vl) == 1)
        if (f == 1 && w == 2) {
            *s = val, *sl = vl;
            return true;
        }
    return false;
}

/* Indexes a message (and its nested messages and enums) or a service (and its methods). */
static void index_scope(const uint8_t *d, size_t n, const char *scope, int file, bool service)
{
    const uint8_t *nm, *p = d, *val;
    size_t nl, vl;
    if (!name_of(d, n, &nm, &nl))
        return;
    add_sym(scope, nm, nl, file, service, !service);
    char inner[SYMBOL_MAX];
    copy_str(inner, (const uint8_t *)idx.syms[idx.n_syms - 1].name, strlen(idx.syms[idx.n_syms - 1].name));
    uint32_t f;
    int w;
    uint64_t num;
    while (ws_grpc_pb_next(&p, d + n, &f, &w, &num, &val, &vl) == 1) {
        if (w != 2)
            continue;
        const uint8_t *s;
        size_t sl;
        if (!service && f == 3) /* nested_type */
            index_scope(val, vl, inner, file, false);
        else if (((!service && f == 4) || (service && f == 2)) && name_of(val, vl, &s, &sl))
            add_sym(inner, s, sl, file, false, false); /* enum_type, or method */
    }
}

static void index_file(const uint8_t *d, size_t n)
{
    if (idx.n_files >= MAX_FILES)
        return;
    int fi = idx.n_files++;
    pfile *pf = &idx.files[fi];
    pf->data = d;
    pf->len = n;
    char pkg[SYMBOL_MAX] = "";
    const uint8_t *p = d, *val;
    uint32_t f;
    int w;
    uint64_t num;
    size_t vl;
    while (ws_grpc_pb_next(&p, d + n, &f, &w, &num, &val, &vl) == 1) {
        if (w == 2 && f == 1)
            copy_str(pf->name, val, vl);
        else if (w == 2 && f == 2)
            copy_str(pkg, val, vl);
        else if (w == 2 && f == 3 && pf->n_deps < MAX_DEPS)
            copy_str(pf->deps[pf->n_deps++], val, vl);
    }
    for (p = d; ws_grpc_pb_next(&p, d + n, &f, &w, &num, &val, &vl) == 1;) {
        const uint8_t *s;
        size_t sl;
        if (w == 2 && f == 4)
            index_scope(val, vl, pkg, fi, false);
        else if (w == 2 && f == 6)
            index_scope(val, vl, pkg, fi, true);
        else if (w == 2 && f == 5 && name_of(val, vl, &s, &sl))
            add_sym(pkg, s, sl, fi, false, false);
    }
}

static void build_index(void)
{
    const uint8_t *d = ws_proto_descriptor_set, *p = d, *val;
    uint32_t f;
    int w;
    uint64_t num;
    size_t vl;
    while (ws_grpc_pb_next(&p, d + ws_proto_descriptor_set_len, &f, &w, &num, &val, &vl) == 1)
        if (f == 1 && w == 2)
            index_file(val, vl);
}

static int file_named(const char *name)
{
    for (int i = 0; i < idx.n_files; i++)
        if (!strcmp(idx.files[i].name, name))
            return i;
    return -1;
}

/* The file and its transitive dependencies, each once (sent[] marks them). */
static void collect(int fi, bool *sent, ProtobufCBinaryData *out, size_t *n)
{
    if (fi < 0 || sent[fi])
        return;
    sent[fi] = true;
    out[(*n)++] = (ProtobufCBinaryData){idx.files[fi].len, (uint8_t *)idx.files[fi].data};
    for (int i = 0; i < idx.files[fi].n_deps; i++)
        collect(file_named(idx.files[fi].deps[i]), sent, out, n);
}

static int symbol_file(const char *sym, bool *is_message)
{
    for (int i = 0; i < idx.n_syms; i++)
        if (!strcmp(idx.syms[i].name, sym)) {
            if (is_message)
                *is_message = idx.syms[i].message;
            return idx.syms[i].file;
        }
    return -1;
}

int ws_grpc_reflect_answer(const uint8_t *req, size_t len, ws_buf *out, ws_buf *msg)
{
    pthread_once(&idx_once, build_index);
    Grpc__Reflection__V1__ServerReflectionRequest *rq =
        grpc__reflection__v1__server_reflection_request__unpack(NULL, len, req);
    if (!rq) {
        ws_buf_puts(msg, "malformed ServerReflectionRequest");
        return WS_GRPC_INVALID_ARGUMENT;
    }
    Grpc__Reflection__V1__ServerReflectionResponse rs =
        GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__INIT;
    Grpc__Reflection__V1__FileDescriptorResponse fdr = GRPC__REFLECTION__V1__FILE_DESCRIPTOR_RESPONSE__INIT;
    Grpc__Reflection__V1__ListServiceResponse lsr = GRPC__REFLECTION__V1__LIST_SERVICE_RESPONSE__INIT;
    Grpc__Reflection__V1__ServiceResponse svc[MAX_SYMBOLS], *svcp[MAX_SYMBOLS];
    Grpc__Reflection__V1__ErrorResponse er = GRPC__REFLECTION__V1__ERROR_RESPONSE__INIT;
    Grpc__Reflection__V1__ExtensionNumberResponse enr = GRPC__REFLECTION__V1__EXTENSION_NUMBER_RESPONSE__INIT;
    ProtobufCBinaryData files[MAX_FILES];
    bool sent[MAX_FILES] = {0};
    size_t nf = 0;
    int fi = -1;
    bool is_message = false;
    rs.valid_host = rq->host;
    rs.original_request = rq;
    switch (rq->message_request_case) {
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_LIST_SERVICES:
        for (int i = 0; i < idx.n_syms; i++)
            if (idx.syms[i].service) {
                grpc__reflection__v1__service_response__init(&svc[lsr.n_service]);
                svc[lsr.n_service].name = idx.syms[i].name;
                svcp[lsr.n_service] = &svc[lsr.n_service];
                lsr.n_service++;
            }
        lsr.service = svcp;
        rs.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_LIST_SERVICES_RESPONSE;
        rs.list_services_response = &lsr;
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_BY_FILENAME:
        fi = file_named(rq->file_by_filename);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_FILE_CONTAINING_SYMBOL:
        fi = symbol_file(rq->file_containing_symbol, NULL);
        break;
    case GRPC__REFLECTION__V1__SERVER_REFLECTION_REQUEST__MESSAGE_REQUEST_ALL_EXTENSION_NUMBERS_OF_TYPE:
        if (symbol_file(rq->all_extension_numbers_of_type, &is_message) >= 0 && is_message) {
            enr.base_type_name = rq->all_extension_numbers_of_type; /* we declare no extensions */
            rs.message_response_case =
                GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ALL_EXTENSION_NUMBERS_RESPONSE;
            rs.all_extension_numbers_response = &enr;
        }
        break;
    default: /* file_containing_extension: none declared; an empty request: nothing to find */ break;
    }
    if (fi >= 0) {
        collect(fi, sent, files, &nf);
        fdr.n_file_descriptor_proto = nf;
        fdr.file_descriptor_proto = files;
        rs.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_FILE_DESCRIPTOR_RESPONSE;
        rs.file_descriptor_response = &fdr;
    } else if (rs.message_response_case ==
               GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE__NOT_SET) {
        er.error_code = WS_GRPC_NOT_FOUND;
        er.error_message = "not found";
        rs.message_response_case =
            GRPC__REFLECTION__V1__SERVER_REFLECTION_RESPONSE__MESSAGE_RESPONSE_ERROR_RESPONSE;
        rs.error_response = &er;
    }
    size_t n = grpc__reflection__v1__server_reflection_response__get_packed_size(&rs);
    uint8_t *buf = ws_xmalloc(n ? n : 1);
    grpc__reflection__v1__server_reflection_response__pack(&rs, buf);
    ws_buf_append(out, buf, n);
    free(buf);
    grpc__reflection__v1__server_reflection_request__free_unpacked(rq, NULL);
    return WS_GRPC_OK;
}

int ws_grpc_reflect_handler(ws_grpc_call *call, const uint8_t *req, size_t len, void *arg, ws_buf *msg)
{
    ws_buf out = WS_BUF_INIT;
    int st = ws_grpc_reflect_answer(req, len, &out, msg);
    if (st == WS_GRPC_OK &&
        ws_grpc_call_send(call, (const uint8_t *)(out.data ? out.data : ""), out.len) != 0)
        st = WS_GRPC_CANCELLED;
    ws_buf_free(&out);
    return st;
}
