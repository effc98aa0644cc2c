#!/usr/bin/env python3
"""Dumps llama.cpp's intermediate tensors (every graph node its eval callback sees: attn_norm-N,
Qcur-N, kq-N, kq_soft_max-N, kqv_out-N, ffn_*-N, l_out-N, result_norm...) for one prompt of
tests/reference/gguf/llamacpp_greedy.json, then NGEN decode steps on llama.cpp's own tokens, into
an .npz (keys s<step>/<name>, a ' appended per repeated name; 'logits' [1+NGEN, vocab]) and the
ops/types/sources of each node into OUT.ops.json. Settings as make_gguf_ref.py's. How it served
the parity work: docs/nn.md ("How it was found").
Run: build/llamacpp-venv/bin/python tools/reference/llamacpp_dump.py GGUF PROMPT_INDEX OUT.npz [NGEN]
"""
import ctypes, json, os, sys
import numpy as np
import llama_cpp as L
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
gguf, pidx, outp = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ngen = int(sys.argv[4]) if len(sys.argv) > 4 else 0
ref = json.load(open(os.path.join(ROOT, "tests", "reference", "gguf", "llamacpp_greedy.json"), encoding="utf-8"))
pr = ref['prompts'][pidx]
ids = pr['prompt_ids']
class T(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("buffer", ctypes.c_void_p), ("ne", ctypes.c_int64*4), ("nb", ctypes.c_size_t*4),
                ("op", ctypes.c_int), ("op_params", ctypes.c_int32*16), ("flags", ctypes.c_int32),
                ("src", ctypes.c_void_p*10), ("view_src", ctypes.c_void_p), ("view_offs", ctypes.c_size_t),
                ("data", ctypes.c_void_p), ("name", ctypes.c_char*64), ("extra", ctypes.c_void_p), ("pad", ctypes.c_char*8)]
store = {}; step = [0]; ops = {}
def cb(t, ask, ud):
    tt = ctypes.cast(t, ctypes.POINTER(T)).contents
    if ask: return True
    name = tt.name.decode()
    ne = list(tt.ne); nb = list(tt.nb)
    key = f"s{step[0]}/{name}"
    while key in ops: key += "'"
    ops[key] = (tt.op, tt.type, ne, [ctypes.cast(s, ctypes.POINTER(T)).contents.name.decode() if s else None for s in tt.src[:3]],
                [ctypes.cast(s, ctypes.POINTER(T)).contents.type if s else None for s in tt.src[:3]])
    if tt.type in (0, 1) and tt.data:
        dt = np.float32 if tt.type == 0 else np.float16
        es = 4 if tt.type == 0 else 2
        # strided view
        size = sum((ne[i]-1)*nb[i] for i in range(4)) + es
        buf = (ctypes.c_char * size).from_address(tt.data)
        a = np.lib.stride_tricks.as_strided(np.frombuffer(buf, dtype=dt), shape=ne[::-1], strides=nb[::-1]).astype(np.float32)
        store[key] = a.copy()
    return True
CB = L.ggml_backend_sched_eval_callback(cb)
L.llama_backend_init()
mp = L.llama_model_default_params()
model = L.llama_model_load_from_file(gguf.encode(), mp)
cp = L.llama_context_default_params()
cp.n_ctx = 1024; cp.n_batch = 512; cp.n_threads = 2; cp.n_threads_batch = 2
cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_DISABLED
cp.cb_eval = CB
print("type_k", cp.type_k, "type_v", cp.type_v, "n_ubatch", cp.n_ubatch, file=sys.stderr)
ctx = L.llama_init_from_model(model, cp)
nv = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
arr = (ctypes.c_int32 * len(ids))(*ids)
L.llama_decode(ctx, L.llama_batch_get_one(arr, len(ids)))
lg = L.llama_get_logits_ith(ctx, -1)
logits = [np.ctypeslib.as_array(lg, shape=(nv,)).copy()]
for g in range(ngen):
    step[0] += 1
    tok = pr['llamacpp_tokens'][g]
    a1 = (ctypes.c_int32 * 1)(tok)
    L.llama_decode(ctx, L.llama_batch_get_one(a1, 1))
    logits.append(np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, -1), shape=(nv,)).copy())
store['logits'] = np.stack(logits)
np.savez(outp, **store)
json.dump(ops, open(outp + '.ops.json', 'w'))
print(len(ids), "tokens", len(store), "tensors", file=sys.stderr)
