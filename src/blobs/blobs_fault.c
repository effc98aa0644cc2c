/* The blobs' fault-injecting backend (tests): wraps a handle's backend so that put, get, head,
 * delete and list fail with WS_EIO when the ws_fault says so; an injected put writes nothing.
 * See core/fault.h and ws_blobs_fault_wrap in blobs.h. */
#include <stdlib.h>

#include "blobs/blobs.h"
#include "core/fault.h"
#include "core/mem.h"

typedef struct fault_blobs {
    ws_blobs base;   /* first: the layer above sees a ws_blobs */
    ws_blobs *inner; /* the real backend, owned; its ring moved to base */
    ws_fault *f;     /* borrowed */
} fault_blobs;

static int injected(ws_error *err, const char *what)
{
    return ws_error_set(err, WS_EIO, "blobs: injected fault (%s)", what);
}

static ws_blobs *in(ws_blobs *b)
{
    return ((fault_blobs *)b)->inner;
}

static bool hit(ws_blobs *b)
{
    return ws_fault_hit(((fault_blobs *)b)->f);
}

static int f_put(ws_blobs *b, const char *key, const void *data, size_t len, ws_error *err)
{
    return hit(b) ? injected(err, "put") : in(b)->ops->put(in(b), key, data, len, err);
}

static int f_get(ws_blobs *b, const char *key, size_t max, ws_buf *out, ws_error *err)
{
    return hit(b) ? injected(err, "get") : in(b)->ops->get(in(b), key, max, out, err);
}

static int f_head(ws_blobs *b, const char *key, size_t n, ws_buf *out, ws_error *err)
{
    return hit(b) ? injected(err, "head") : in(b)->ops->head(in(b), key, n, out, err);
}

static int f_del(ws_blobs *b, const char *key, ws_error *err)
{
    return hit(b) ? injected(err, "delete") : in(b)->ops->del(in(b), key, err);
}

static int f_del_prefix(ws_blobs *b, const char *prefix, size_t *n, ws_error *err)
{
    return hit(b) ? injected(err, "delete prefix") : in(b)->ops->del_prefix(in(b), prefix, n, err);
}

static int f_list(ws_blobs *b, const char *prefix, int (*fn)(void *arg, const char *key), void *arg,
                  ws_error *err)
{
    return hit(b) ? injected(err, "list") : in(b)->ops->list(in(b), prefix, fn, arg, err);
}

static void f_close(ws_blobs *b)
{
    fault_blobs *fb = (fault_blobs *)b;
    fb->inner->ops->close(fb->inner); /* its ring is base's, freed by ws_blobs_close */
    free(fb);
}

static const ws_blobs_ops fault_ops = {"fault", f_put, f_get, f_head, f_del, f_del_prefix, f_list, f_close};

void ws_blobs_fault_wrap(ws_blobs **b, ws_fault *f)
{
    fault_blobs *fb = ws_xcalloc(1, sizeof *fb);
    fb->base.ops = &fault_ops;
    fb->base.ring = (*b)->ring;
    (*b)->ring = NULL;
    fb->inner = *b;
    fb->f = f;
    *b = &fb->base;
}
