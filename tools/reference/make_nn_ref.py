#!/usr/bin/env python3
"""Makes the committed reference data for the C transformer engine (tests/reference/nn/).

For each tiny random model variant it writes the model directory (config.json + safetensors,
in the variant's on-disk dtype / sharding) and `ref.safetensors` with, computed by PyTorch +
transformers + peft in float32 from exactly the stored (rounded) weights:
  logits / loss of a batch with a loss mask, the gradient of every parameter,
  losses of 10 AdamW steps (warmup + cosine, clipping, 2-way gradient accumulation),
  LoRA gradients (A/B) from a PEFT adapter saved in PEFT format (adapter_init/),
  losses of 10 LoRA AdamW steps and the adapter PEFT trained (adapter_trained/) with its logits,
  greedy generations with natural-log probabilities of each new token.
Scalars and hyper-parameters go to ref.json. Before it is stored, each model is trained a few hundred
steps on the short English text below (its 256-token vocabulary is read as bytes; the BPE model of
`tiny_chat` on its own chat lines), so that greedy generation continues a prompt with varied text
instead of collapsing into one repeated token; the script refuses references with fewer than
MIN_DISTINCT distinct tokens or with a near-tie between the top two logits.
Run: bash tools/pyref-venv.sh && build/pyref-venv/bin/python tools/reference/make_nn_ref.py [--tiny-chat]
"""
import json, math, os, shutil, sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
from peft import LoraConfig, get_peft_model

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference", "nn")
torch.set_num_threads(1)

B, T = 2, 16
STEPS, ACCUM = 10, 2
TRAIN = dict(lr=1e-2, min_lr=1e-3, warmup=3, beta1=0.9, beta2=0.95, eps=1e-8, wd=0.1, clip=1.0)
LORA = dict(r=4, alpha=8, lr=3e-3, min_lr=3e-4, warmup=3, wd=0.01, clip=1.0,
            targets=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
MASKED_PREFIX = 5   # targets at positions < 5 of each row are ignored (loss on "reply" tokens only)
MIN_DISTINCT = 5    # a greedy reference must hold at least this many distinct tokens
MIN_MARGIN = 1e-3   # nor may its top two logits be closer than this at any step
PRETRAIN = dict(steps=200, batch=16, seq=48, lr=3e-3)

# written for this script: short chat-like English lines, the "real text" the byte-level variants learn
TEXT = """hey how are you doing today? i was thinking we could go for a walk later.
sounds good, see you at the station at seven. bring a jacket, it is cold outside.
did you finish the book? i stopped at the chapter where they leave the island.
no rush, we can talk about it over dinner. the new place near the river opens on friday.
i got the job!! starting next monday, still cannot believe it.
that is amazing news, congratulations! we should celebrate this weekend.
can you send me the address of the restaurant? my phone lost the message.
sure, it is on the corner of park street and the old bridge, next to the bakery.
running late, the train is stuck outside the city. order without me please.
what did you have for dinner? we made soup with the vegetables from the market.
the weather is lovely this morning, coffee in the garden before work?
thanks for yesterday, it was really good to see everyone again after so long.
"""

CHAT_LINES = ["hey how are you doing today?", "haha yes see you at the station at 7",
              "ok sounds good, I'll bring the snacks", "where are you? I'm already here",
              "lol that's so funny 😂", "good morning! coffee later?"]

VARIANTS = [
    # name, arch, kwargs, on-disk dtype, shard size, config style
    ("llama_tied", "llama", dict(num_key_value_heads=2, tie_word_embeddings=True, rope_theta=10000.0),
     torch.float32, None, "v5"),
    ("qwen2_bias", "qwen2", dict(num_key_value_heads=1, tie_word_embeddings=False, rope_theta=1000000.0),
     torch.float16, None, "v5"),
    ("llama3_rope", "llama", dict(num_key_value_heads=4, tie_word_embeddings=False, rope_theta=500000.0,
     rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                   "high_freq_factor": 4.0, "original_max_position_embeddings": 256}),
     torch.bfloat16, "40KB", "legacy"),
]


def lr_at(step, h):
    if step < h["warmup"]:
        return h["lr"] * (step + 1) / h["warmup"]
    prog = (step - h["warmup"]) / max(1, STEPS - h["warmup"])
    return h["min_lr"] + 0.5 * (h["lr"] - h["min_lr"]) * (1 + math.cos(math.pi * prog))


def make_model(arch, kw):
    common = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                  vocab_size=256, max_position_embeddings=512, rms_norm_eps=1e-5,
                  bos_token_id=1, eos_token_id=2)
    kw = dict(kw)
    rope = {"rope_type": "default", "rope_theta": kw.pop("rope_theta")}
    if "rope_scaling" in kw:
        rope.update(kw.pop("rope_scaling"))
    if arch == "llama":
        cfg = LlamaConfig(**common, **kw, rope_parameters=rope)
        m = LlamaForCausalLM(cfg)
    else:
        cfg = Qwen2Config(**common, **kw, rope_parameters=rope)
        m = Qwen2ForCausalLM(cfg)
    # weights large enough that logits are far from uniform
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif n.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif "embed" in n:
                p.copy_(0.3 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
    return m.float().eval()


def ce_loss(logits, targets):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def make_batch(g, vocab):
    ids = torch.randint(3, vocab, (B, T + 1), generator=g)
    inp = ids[:, :-1].clone()
    tgt = ids[:, 1:].clone()
    tgt[:, :MASKED_PREFIX] = -100
    return inp, tgt


def param_groups(named, wd):
    decay = [p for n, p in named if p.requires_grad and p.dim() >= 2]
    nodecay = [p for n, p in named if p.requires_grad and p.dim() < 2]
    return [{"params": decay, "weight_decay": wd}, {"params": nodecay, "weight_decay": 0.0}]


def train(model, named, h, batches):
    opt = torch.optim.AdamW(param_groups(named, h["wd"]), lr=h["lr"], betas=(0.9, 0.95), eps=1e-8)
    losses = []
    params = [p for _, p in named if p.requires_grad]
    for step in range(STEPS):
        for gr in opt.param_groups:
            gr["lr"] = lr_at(step, h)
        opt.zero_grad()
        tot = 0.0
        for a in range(ACCUM):
            inp, tgt = batches[step * ACCUM + a]
            loss = ce_loss(model(inp).logits, tgt)
            (loss / ACCUM).backward()
            tot += loss.item() / ACCUM
        torch.nn.utils.clip_grad_norm_(params, h["clip"])
        opt.step()
        losses.append(tot)
    return losses


def greedy(model, prompt, n):
    ids = list(prompt)
    toks, lps = [], []
    with torch.no_grad():
        for _ in range(n):
            logits = model(torch.tensor([ids])).logits[0, -1]
            lp = F.log_softmax(logits.double(), -1)
            t = int(torch.argmax(logits))
            top2 = torch.topk(logits, 2).values
            assert float(top2[0] - top2[1]) > MIN_MARGIN, f"near-tie at step {len(toks)}: {top2.tolist()}"
            toks.append(t)
            lps.append(float(lp[t]))
            ids.append(t)
    assert len(set(toks)) >= MIN_DISTINCT, f"greedy output collapses: {toks}"
    return toks, lps


def pretrain(model, seqs, seed):
    """A few hundred AdamW steps of next-token prediction on random windows of `seqs` (lists of
    token ids), so the model has learned something to continue a prompt with."""
    g = torch.Generator().manual_seed(seed)
    h = PRETRAIN
    data = [torch.tensor(s) for s in seqs if len(s) > 2]
    opt = torch.optim.AdamW(model.parameters(), lr=h["lr"], weight_decay=0.0)
    model.train()
    for step in range(h["steps"]):
        rows = []
        for _ in range(h["batch"]):
            s = data[int(torch.randint(len(data), (1,), generator=g))]
            if len(s) > h["seq"] + 1:
                o = int(torch.randint(len(s) - h["seq"] - 1, (1,), generator=g))
                s = s[o:o + h["seq"] + 1]
            rows.append(torch.cat([s, torch.full((h["seq"] + 1 - len(s),), -100, dtype=s.dtype)]))
        ids = torch.stack(rows)
        inp = ids[:, :-1].clamp(min=0)
        tgt = ids[:, 1:]
        opt.zero_grad()
        loss = ce_loss(model(inp).logits, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    model.eval()
    return float(loss)


def fix_config(d, style, arch):
    path = os.path.join(d, "config.json")
    cfg = json.load(open(path))
    cfg["architectures"] = ["LlamaForCausalLM" if arch == "llama" else "Qwen2ForCausalLM"]
    if style == "legacy":   # the form of real SmolLM2 / Llama-3.2 / Qwen2.5 config files
        rp = cfg.pop("rope_parameters")
        cfg["rope_theta"] = rp.pop("rope_theta")
        if rp.get("rope_type", "default") != "default":
            cfg["rope_scaling"] = rp
    json.dump(cfg, open(path, "w"), indent=2, sort_keys=True)


def main():
    os.makedirs(OUT, exist_ok=True)
    for vi, (name, arch, kw, dtype, shard, style) in enumerate(VARIANTS):
        torch.manual_seed(1234 + vi)
        g = torch.Generator().manual_seed(99 + vi)
        model = make_model(arch, kw)
        pl = pretrain(model, [[1] + list(TEXT.encode())], 555 + vi)
        print(name, "pretrained, loss", round(pl, 3))
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        # store in the variant's dtype, then compute from exactly the stored values
        model.to(dtype)
        save_kw = {"max_shard_size": shard} if shard else {}
        model.save_pretrained(d, **save_kw)
        for f in os.listdir(d):
            if f.endswith(".json") and f not in ("config.json", "model.safetensors.index.json"):
                os.remove(os.path.join(d, f))
        fix_config(d, style, arch)
        # reload: casting the live model would also round its RoPE inv_freq buffer
        model = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
        vocab = model.config.vocab_size
        ref = {}
        batches = [make_batch(g, vocab) for _ in range(STEPS * ACCUM)]
        ref["train_inputs"] = torch.stack([b[0] for b in batches]).int()
        ref["train_targets"] = torch.stack([b[1] for b in batches]).int()
        inp, tgt = batches[0]
        init_state = {k: v.clone() for k, v in model.state_dict().items()}

        # forward + gradients
        model.zero_grad()
        logits = model(inp).logits
        loss = ce_loss(logits, tgt)
        loss.backward()
        ref["logits"] = logits.detach().contiguous()
        ref["loss"] = loss.detach().reshape(1)
        for n, p in model.named_parameters():
            ref["grad." + n] = p.grad.detach().clone().contiguous()
        if model.config.tie_word_embeddings:
            assert "lm_head.weight" not in dict(model.named_parameters())

        # greedy generation
        prompts = [[1] + list(b"hey, how are"), [1] + list(b"see you at t")]
        gens = []
        for p in prompts:
            toks, lps = greedy(model, p, 12)
            gens.append({"prompt": p, "tokens": toks, "logprobs": lps})

        # full training, 10 steps
        model.train()
        full_losses = train(model, list(model.named_parameters()), TRAIN, batches)
        ref["final." + "model.norm.weight"] = model.model.norm.weight.detach().clone()
        ref["final.model.layers.1.mlp.down_proj.weight"] = model.model.layers[1].mlp.down_proj.weight.detach().clone()
        model.load_state_dict(init_state)
        model.zero_grad()

        # LoRA: adapter with random A and B (PEFT's init_lora_weights=False), saved in PEFT format
        torch.manual_seed(777 + vi)
        lcfg = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=0.0,
                          target_modules=LORA["targets"], init_lora_weights=False, task_type="CAUSAL_LM")
        pm = get_peft_model(model, lcfg)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_" in n:
                    p.mul_(2.0)
        pm.save_pretrained(os.path.join(d, "adapter_init"))
        pm.zero_grad()
        lg = pm(input_ids=inp).logits
        l2 = ce_loss(lg, tgt)
        l2.backward()
        ref["lora.logits"] = lg.detach().contiguous()
        ref["lora.loss"] = l2.detach().reshape(1)
        for n, p in pm.named_parameters():
            if p.requires_grad:
                key = n.replace(".default", "")
                ref["lora.grad." + key] = p.grad.detach().clone().contiguous()
        pm.train()
        lora_losses = train(pm, list(pm.named_parameters()), LORA, batches)
        pm.save_pretrained(os.path.join(d, "adapter_trained"))
        pm.eval()
        with torch.no_grad():
            ref["lora_trained.logits"] = pm(input_ids=inp).logits.contiguous()
        for sub in ("adapter_init", "adapter_trained"):
            rd = os.path.join(d, sub, "README.md")
            if os.path.exists(rd):
                os.remove(rd)
            # no machine's absolute path in committed data, and a stable order of the targets
            ac = os.path.join(d, sub, "adapter_config.json")
            acj = json.load(open(ac))
            acj["base_model_name_or_path"] = ".."
            acj["target_modules"] = sorted(acj["target_modules"])
            json.dump(acj, open(ac, "w"), indent=2, sort_keys=True)

        save_file({k: v.contiguous() for k, v in ref.items()}, os.path.join(d, "ref.safetensors"))
        meta = {"B": B, "T": T, "steps": STEPS, "accum": ACCUM, "masked_prefix": MASKED_PREFIX,
                "train": TRAIN, "lora": {k: v for k, v in LORA.items()},
                "full_losses": full_losses, "lora_losses": lora_losses, "generations": gens,
                "loss": float(loss), "lora_loss": float(l2)}
        json.dump(meta, open(os.path.join(d, "ref.json"), "w"), indent=1)
        print(name, "loss", float(loss), "full", [round(x, 4) for x in full_losses],
              "lora", [round(x, 4) for x in lora_losses])


def make_tiny_chat():
    """A tiny model with a byte-level BPE tokenizer (vocab 320) for the `whatstyle generate`
    black-box test: expected prompt ids (as transformers' tokenizer(prompt)), greedy tokens,
    log-probs and text."""
    from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
    from transformers import PreTrainedTokenizerFast
    d = os.path.join(OUT, "tiny_chat")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = CHAT_LINES * 20
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(text, trainer)
    tok.save(os.path.join(d, "tokenizer.json"))
    hf = PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
    vocab = tok.get_vocab_size()
    torch.manual_seed(4321)
    cfg = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=256, rms_norm_eps=1e-5,
                      tie_word_embeddings=True, bos_token_id=None, eos_token_id=2,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0})
    m = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "norm" in n:
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif "embed" in n:
                p.copy_(0.3 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / math.sqrt(p.shape[1]))
    pl = pretrain(m, [tok.encode(" ".join(CHAT_LINES * 4)).ids], 4322)
    print("tiny_chat pretrained, loss", round(pl, 3))
    m.save_pretrained(d)
    for f in os.listdir(d):
        if f.endswith(".json") and f not in ("config.json", "tokenizer.json"):
            os.remove(os.path.join(d, f))
    fix_config(d, "legacy", "llama")
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).eval()
    prompt = "hey, are you at the station? 😂"
    ids = hf(prompt)["input_ids"]
    toks, lps = greedy(m, ids, 8)
    exp = {"prompt": prompt, "prompt_tokens": ids, "tokens": toks, "logprobs": lps,
           "text": hf.decode(toks, skip_special_tokens=True)}
    json.dump(exp, open(os.path.join(d, "expected.json"), "w"), ensure_ascii=False)
    print("tiny_chat", exp)


if __name__ == "__main__":
    # both sets by default; --tiny-chat makes only the tiny chat model
    if "--tiny-chat" not in sys.argv:
        main()
    make_tiny_chat()
