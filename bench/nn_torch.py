#!/usr/bin/env python3
"""PyTorch (CPU) peer of bench_nn_bench: same configs, same measurement, one JSON line.
Usage: nn_torch.py MODE CONFIG [threads] [reps]  (run with build/pyref-venv/bin/python from tools/pyref-venv.sh)."""
import json, os, resource, sys, time

# bench/ holds a timeit.py of its own: keep it from shadowing the standard module torch imports
_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

mode, cname = sys.argv[1], sys.argv[2]
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
reps = int(sys.argv[4]) if len(sys.argv) > 4 else 3
torch.set_num_threads(threads)
torch.manual_seed(0)


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def config(name):
    if name == "smol":
        kw = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3)
    else:
        kw = dict(vocab_size=4096, hidden_size=256, intermediate_size=768, num_hidden_layers=4,
                  num_attention_heads=4, num_key_value_heads=2)
    return LlamaConfig(**kw, max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=True,
                       rope_parameters={"rope_type": "default", "rope_theta": 100000.0}, bos_token_id=1,
                       eos_token_id=None, pad_token_id=None)


def median(v):
    v = sorted(v)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


out = {"impl": "torch", "mode": mode, "config": cname, "threads": threads}
if mode == "sgemm":
    a = torch.rand(1024, 576)
    b = torch.rand(1536, 576)
    a @ b.T
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(10):
            a @ b.T
        ts.append((time.perf_counter() - t0) / 10)
    out["gflops"] = round(2 * 1024 * 1536 * 576 / median(ts) * 1e-9, 1)
else:
    cfg = config(cname)
    model = LlamaForCausalLM(cfg).float()
    if mode.startswith("train"):
        B, T = 4, 256
        if mode == "train-lora":
            from peft import LoraConfig, get_peft_model
            model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0,
                                                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                                      task_type="CAUSAL_LM"))
        model.train()
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
        g = torch.Generator().manual_seed(7)
        inp = torch.randint(0, cfg.vocab_size, (B, T), generator=g)
        tgt = torch.randint(0, cfg.vocab_size, (B, T), generator=g)

        def step():
            opt.zero_grad(set_to_none=True)
            logits = model(input_ids=inp).logits
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
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
        out.update(step_s=round(median(ts), 3), cpu_s=round(cpu, 3), tokens_per_s=round(B * T / median(ts)),
                   loss=round(loss, 3))
        if os.environ.get("WS_TORCH_PROFILE"):   # per-op breakdown of one more step, to stderr
            from torch.profiler import ProfilerActivity, profile
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    elif mode == "prefill":
        model.eval()
        ids = (torch.arange(512) * 7919 % cfg.vocab_size).unsqueeze(0)
        with torch.no_grad():
            model(input_ids=ids, use_cache=True, logits_to_keep=1)
            ts = []
            for _ in range(reps):
                t0 = time.perf_counter()
                model(input_ids=ids, use_cache=True, logits_to_keep=1)
                ts.append(time.perf_counter() - t0)
        out.update(tokens=512, s=round(median(ts), 3), tokens_per_s=round(512 / median(ts), 1))
    elif mode == "generate":
        model.eval()
        ids = ((torch.arange(16) * 31 + 5) % cfg.vocab_size).unsqueeze(0)
        kw = dict(do_sample=False, pad_token_id=0, eos_token_id=None)
        with torch.no_grad():
            model.generate(ids, max_new_tokens=2, min_new_tokens=2, **kw)
            t1s, t64s = [], []
            for _ in range(reps):
                t0 = time.perf_counter()
                model.generate(ids, max_new_tokens=1, min_new_tokens=1, **kw)
                t1s.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                model.generate(ids, max_new_tokens=64, min_new_tokens=64, **kw)
                t64s.append(time.perf_counter() - t0)
        a, b = median(t1s), median(t64s)
        out.update(new_tokens=64, total_s=round(b, 3), tokens_per_s=round(63 / (b - a), 1))
out["peak_mb"] = round(peak_mb())
print(json.dumps(out))
