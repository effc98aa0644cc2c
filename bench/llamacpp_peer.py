#!/usr/bin/env python3
"""llama.cpp (llama-cpp-python, CPU) peer of the C engine's inference benchmark on the GGUF base:
prompt processing of a 512-token prompt and greedy generation of G tokens after a 16-token prompt,
median of R runs each (the KV cache is cleared before every run), with the process CPU time
(all threads) beside the wall time, peak RSS; one JSON line.
Usage: llamacpp_peer.py [threads] [reps] [gen_tokens] [gguf]   (defaults 2 3 64 models/base/...)
Run with build/llamacpp-venv/bin/python (tools/pyref-venv.sh llamacpp)."""
import json, os, resource, sys, time

# bench/ holds a timeit.py of its own: keep it from shadowing the standard module
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import numpy as np
import llama_cpp
from llama_cpp import Llama

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
gen = int(sys.argv[3]) if len(sys.argv) > 3 else 64
path = sys.argv[4] if len(sys.argv) > 4 else os.path.join(_here, "..", "models", "base",
                                                           "SmolLM2-135M-Instruct.Q4_1.gguf")
PROMPT = 512


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


llm = Llama(model_path=path, n_ctx=1024, n_batch=512, n_ubatch=512, n_threads=threads,
            n_threads_batch=threads, logits_all=False, verbose=False)
nv = llm.n_vocab()
first = 17          # SmolLM2's ids 0..16 are special tokens: keep them out of the prompts
prompt = [first + (i * 7919) % (nv - first) for i in range(PROMPT)]
short = [first + (i * 31 + 5) % (nv - first) for i in range(16)]


def prefill():
    llm.reset()     # n_tokens = 0: eval() then drops the whole KV cache before it decodes
    t0, c0 = time.perf_counter(), time.process_time()
    llm.eval(prompt)
    return time.perf_counter() - t0, time.process_time() - c0


def generate():
    llm.reset()
    llm.eval(short)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(gen):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        llm.eval([tok])
    return time.perf_counter() - t0, time.process_time() - c0


prefill()           # warm-up (page in the weights, size the buffers)
generate()
pp, ppc = zip(*[prefill() for _ in range(reps)])
tg, tgc = zip(*[generate() for _ in range(reps)])
out = {"impl": "llama.cpp", "llama_cpp_python": llama_cpp.__version__, "model": os.path.basename(path),
       "threads": threads, "reps": reps,
       "prompt_tokens": PROMPT, "prompt_s": round(median(pp), 4), "prompt_tokens_per_s": round(PROMPT / median(pp), 1),
       "prompt_cpu_s": round(median(ppc), 4),
       "gen_tokens": gen, "gen_s": round(median(tg), 4), "gen_tokens_per_s": round(gen / median(tg), 1),
       "gen_cpu_s": round(median(tgc), 4),
       "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)}
print(json.dumps(out))
