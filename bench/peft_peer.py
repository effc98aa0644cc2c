#!/usr/bin/env python3
"""PyTorch + PEFT (CPU) peer of the C engine's LoRA training on the GGUF base: SmolLM2 loaded from
the GGUF and dequantized to f32 by transformers, LoRA rank 8 / alpha 16 on q,k,v,o,gate,up,down,
AdamW with global-norm clipping at 1.0 (as the C trainer), a batch of B x T random token ids (labels = inputs, shifted by the model), cross-entropy
over the whole batch. Times R training steps after 1 warm-up; median tokens/s, peak RSS; one JSON line.
Usage: peft_peer.py [threads] [batch] [seq] [reps] [gguf]   (defaults 2 4 128 3 models/base/...)
Run with build/pyref-venv/bin/python (tools/pyref-venv.sh)."""
import json, os, resource, sys, time

# bench/ holds a timeit.py of its own: keep it from shadowing the standard module torch imports
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")     # transformers' GGUF loader draws a progress bar
import torch
import transformers
import peft
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
B = int(sys.argv[2]) if len(sys.argv) > 2 else 4
T = int(sys.argv[3]) if len(sys.argv) > 3 else 128
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
path = os.path.abspath(sys.argv[5] if len(sys.argv) > 5 else os.path.join(
    _here, "..", "models", "base", "SmolLM2-135M-Instruct.Q4_1.gguf"))
torch.set_num_threads(threads)
torch.manual_seed(0)
transformers.utils.logging.disable_progress_bar()


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


t0 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(os.path.dirname(path), gguf_file=os.path.basename(path),
                                             dtype=torch.float32)
load_s = time.perf_counter() - t0
load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                         "gate_proj", "up_proj", "down_proj"]))
model.train()
params = [p for p in model.parameters() if p.requires_grad]
opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01)
g = torch.Generator().manual_seed(7)
vocab = model.config.vocab_size
inp = torch.randint(0, vocab, (B, T), generator=g)
rss_before = rss_mb()


def step():
    opt.zero_grad(set_to_none=True)
    loss = model(input_ids=inp, labels=inp).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)   # the C trainer clips at 1.0 too (folded into its AdamW pass)
    opt.step()
    return loss.item()


step()
ts = []
c0 = time.process_time()
for _ in range(reps):
    t0 = time.perf_counter()
    loss = step()
    ts.append(time.perf_counter() - t0)
cpu = (time.process_time() - c0) / reps
out = {"impl": "torch+peft", "torch": torch.__version__, "transformers": transformers.__version__,
       "peft": peft.__version__, "model": os.path.basename(path), "threads": threads, "batch": B, "seq": T,
       "reps": reps, "lora_rank": 8, "lora_alpha": 16, "trainable_params": sum(p.numel() for p in params),
       "load_s": round(load_s, 2), "step_s": round(median(ts), 3), "cpu_s": round(cpu, 3),
       "tokens_per_s": round(B * T / median(ts), 1), "loss": round(loss, 3),
       "rss_before_train_mb": round(rss_before), "load_peak_mb": round(load_peak),
       "peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)}
print(json.dumps(out))
