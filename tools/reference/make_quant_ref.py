#!/usr/bin/env python3
"""Reference data for the quantized kernels (tests/unit/test_nn_quant.c), made with gguf-py
(llama.cpp's Python package: gguf.quants dequantizes every GGML type and quantizes several).

Writes under tests/reference/quant/ (little-endian binary, all small):
  deq_<TYPE>.bin    random blocks of TYPE (extreme scales included) and gguf-py's dequantized
                    floats:  "WSQD" u32 type u32 n_elems | row bytes | n_elems f32
  quant_<TYPE>.bin  random floats and gguf-py's quantization of them (Q8_0, Q4_0, Q4_1):
                    "WSQQ" u32 type u32 n_elems | n_elems f32 | row bytes
  model.bin         the first rows of tensors of models/base/SmolLM2-135M-Instruct.Q4_1.gguf
                    (read with GGUFReader) and their dequantized values:
                    "WSQM" u32 count u64 file_size, then per tensor: u32 type u32 cols u32 rows
                    u64 data_offset (absolute, in the file) | rows*cols f32
  model.json        the same tensors' names, types, shapes and offsets, for people

Run with the venv of tools/pyref-venv.sh:  build/pyref-venv/bin/python tools/reference/make_quant_ref.py
"""
import json
import os
import struct
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf import GGUFReader
from gguf import quants

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "reference", "quant")
MODEL = os.path.join(ROOT, "models", "base", "SmolLM2-135M-Instruct.Q4_1.gguf")

rng = np.random.default_rng(20261202)


def halves(n, extreme=True):
    """n f16 scales: normal-ish values of both signs, plus zero, the largest finite, tiny."""
    v = (rng.standard_normal(n) * 0.05).astype(np.float16)
    if extreme and n >= 8:
        v[0] = 0.0
        v[1] = np.float16(65504.0)
        v[2] = np.float16(-65504.0)
        v[3] = np.float16(6e-8)     # subnormal
        v[4] = np.float16(-1.0)
    return v.view(np.uint8).reshape(n, 2)


def random_blocks(qtype, n_blocks):
    """Raw bytes of n_blocks random blocks of qtype, with finite scales."""
    block, size = quants.GGML_QUANT_SIZES[qtype]
    raw = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    if qtype in (T.Q8_0, T.Q4_0):
        raw[:, 0:2] = halves(n_blocks)
    elif qtype == T.Q4_1:
        raw[:, 0:2] = halves(n_blocks)
        raw[:, 2:4] = halves(n_blocks)[::-1]
    elif qtype in (T.Q4_K, T.Q5_K):
        raw[:, 0:2] = halves(n_blocks)
        raw[:, 2:4] = halves(n_blocks)[::-1]
    elif qtype == T.Q6_K:
        raw[:, 208:210] = halves(n_blocks)
    if qtype in (T.Q8_0, T.Q4_0, T.Q4_1) and n_blocks > 6:
        raw[5, :] = 0                                   # an all-zero block
        raw[6, -(size - 4):] = 0xFF if qtype != T.Q8_0 else 0x80   # extreme quants
    return raw


def typed_values(qtype, n):
    if qtype == T.F32:
        v = rng.standard_normal(n).astype(np.float32) * 10.0
        v[:4] = [0.0, -0.0, 3.4e38, -1e-40]
        return v.view(np.uint8)
    if qtype == T.F16:
        bits = rng.integers(0, 0x10000, size=n, dtype=np.uint32).astype(np.uint16)
        bits = np.where((bits & 0x7C00) == 0x7C00, bits & 0x83FF, bits).astype(np.uint16)   # finite only
        return bits.view(np.uint8)
    bits = rng.integers(0, 0x10000, size=n, dtype=np.uint32).astype(np.uint16)   # BF16
    bits = np.where((bits & 0x7F80) == 0x7F80, bits & 0x807F, bits).astype(np.uint16)
    return bits.view(np.uint8)


def write_deq(qtype, raw):
    name = qtype.name
    deq = quants.dequantize(raw, qtype).astype(np.float32).reshape(-1)
    with open(os.path.join(OUT, f"deq_{name}.bin"), "wb") as f:
        f.write(b"WSQD" + struct.pack("<II", int(qtype), deq.size))
        f.write(raw.tobytes())
        f.write(deq.tobytes())


def write_quant(qtype, n):
    x = (rng.standard_normal(n) * rng.uniform(0.01, 4.0, size=n // 32).repeat(32)).astype(np.float32)
    x[0:32] = 0.0                                       # an all-zero block
    x[32:64] = np.linspace(-1.0, 1.0, 32, dtype=np.float32)
    x[64] = 1000.0                                      # one outlier in its block
    x[96:128] = -0.5                                    # constant block
    q = quants.quantize(x.reshape(-1, 32 * 8), qtype)
    with open(os.path.join(OUT, f"quant_{qtype.name}.bin"), "wb") as f:
        f.write(b"WSQQ" + struct.pack("<II", int(qtype), n))
        f.write(x.tobytes())
        f.write(q.tobytes())


def write_model(rows=2):
    if not os.path.exists(MODEL):
        print("no base model at", MODEL, "- model.bin not written", file=sys.stderr)
        return
    r = GGUFReader(MODEL)
    picked = []
    for want in (T.Q8_0, T.Q4_1):
        t = next(t for t in r.tensors if t.tensor_type == want)
        picked.append(t)
    t2 = next(t for t in r.tensors if t.name == "blk.29.ffn_down.weight")   # one from the end
    picked.append(t2)
    size = os.path.getsize(MODEL)
    meta = []
    with open(MODEL, "rb") as mf, open(os.path.join(OUT, "model.bin"), "wb") as f:
        f.write(b"WSQM" + struct.pack("<IQ", len(picked), size))
        for t in picked:
            cols = int(t.shape[0])
            row_bytes = t.data.shape[1]
            mf.seek(int(t.data_offset))
            assert mf.read(row_bytes * rows) == t.data[:rows].tobytes(), "offset is not absolute"
            deq = quants.dequantize(np.asarray(t.data[:rows]), t.tensor_type).astype(np.float32)
            assert deq.shape == (rows, cols)
            f.write(struct.pack("<IIIQ", int(t.tensor_type), cols, rows, int(t.data_offset)))
            f.write(deq.tobytes())
            meta.append({"name": t.name, "type": t.tensor_type.name, "shape": [int(s) for s in t.shape],
                         "data_offset": int(t.data_offset), "rows_written": rows})
    with open(os.path.join(OUT, "model.json"), "w") as f:
        json.dump({"file": "models/base/SmolLM2-135M-Instruct.Q4_1.gguf", "file_size": size,
                   "tensors": meta}, f, indent=1)
        f.write("\n")


def main():
    os.makedirs(OUT, exist_ok=True)
    for qtype in (T.F32, T.F16, T.BF16):
        write_deq(qtype, typed_values(qtype, 1024))
    for qtype, nb in ((T.Q8_0, 64), (T.Q4_0, 64), (T.Q4_1, 64), (T.Q4_K, 8), (T.Q5_K, 8), (T.Q6_K, 8)):
        write_deq(qtype, random_blocks(qtype, nb))
    for qtype in (T.Q8_0, T.Q4_0, T.Q4_1):
        write_quant(qtype, 2048)
    write_model()


if __name__ == "__main__":
    main()
