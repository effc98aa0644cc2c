#!/usr/bin/env python3
"""PyTorch + PEFT peer of the held-out topic check (bench/relevance_check.c): a LoRA on SmolLM2
(the GGUF dequantized to f32 by transformers) trained for a time budget on the same examples a
clone trains on, in the same chat prompt (system message naming the persona, the last turns as
"Name: text" lines in the user message, the reply as the assistant message, loss on the reply
only), then asked the questions of questions.json with the reply sampling of the clone (T 0.8,
top-k 40, top-p 0.95, one sample a draw). Its answers go to a JSON file that
`bench_relevance_check QUESTIONS.json --answers FILE` judges with the same keyword judge as the
clones' answers, so both are counted alike.

The examples follow the clone's pairing (src/style/pairs.c) closely (Sam: 291 examples, the clone 292): a person's consecutive messages
less than 120 s apart make one turn, a gap of an hour starts a new session, an example is a
turn of the persona after someone else's, with the session's last 4 turns before it (each cut
to its last 160 bytes) as context; the last 10% are held out. LoRA rank 8, alpha 16, dropout
0.05 on q,k,v,o,gate,up,down; AdamW lr 1.5e-3 decaying to 1e-4; 2 examples a step; at most 3
epochs — the clone's settings (src/clone/train.c).

Usage: relevance_peer.py CHAT.txt QUESTIONS.json OUT.json PERSON [PERSON...]
       [--budget S] [--draws N] [--threads N] [--turns N] [--gguf PATH]
Run with build/pyref-venv/bin/python (tools/pyref-venv.sh)."""
import argparse, json, math, os, random, re, sys, time
from datetime import datetime

_here = os.path.dirname(os.path.abspath(__file__))
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != _here]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")
import torch
import transformers
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

MERGE_GAP_S, SESSION_GAP_S, CTX_TURNS, TURN_BYTES, REPLY_BYTES = 120, 3600, 4, 160, 160
LINE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}), (\d{1,2}):(\d{2}) - ([^:]+): (.*)$")


def tail_bytes(s, n):
    b = s.encode()
    if len(b) <= n:
        return s
    return b[len(b) - n:].decode(errors="ignore")


def head_bytes(s, n):
    return s.encode()[:n].decode(errors="ignore")


def read_turns(path):
    """[(session, author, text)] from an Android-style export."""
    msgs = []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        m = LINE.match(line)
        if m:
            d, mo, y, h, mi, who, text = m.groups()
            t = datetime(int(y), int(mo), int(d), int(h), int(mi)).timestamp()
            msgs.append([t, who, text])
        elif msgs and not re.match(r"^\d{1,2}/\d{1,2}/\d{4}, ", line):
            msgs[-1][2] += "\n" + line
    turns, session, last_t = [], 0, None
    for t, who, text in msgs:
        if text == "<Media omitted>":
            continue
        if last_t is not None and t - last_t > SESSION_GAP_S:
            session += 1
        if turns and turns[-1][0] == session and turns[-1][1] == who and t - last_t <= MERGE_GAP_S:
            turns[-1][2] += "\n" + text
        else:
            turns.append([session, who, text])
        last_t = t
    return turns


def system_msg(person):
    return f"You are {person}, chatting on WhatsApp. Reply to the last message as {person}."


def prompt_ids(tok, person, ctx):
    """ctx: [(author, text)], oldest first."""
    ctx = ctx[-CTX_TURNS:]
    user = "\n".join(f"{a}: {tail_bytes(t, TURN_BYTES)}" for a, t in ctx)
    msgs = [{"role": "system", "content": system_msg(person)}, {"role": "user", "content": user}]
    text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def examples(tok, turns, person):
    out = []
    for i, (s, who, text) in enumerate(turns):
        if who != person or i == 0 or turns[i - 1][0] != s or turns[i - 1][1] == person:
            continue
        ctx = [(a, t) for ss, a, t in turns[max(0, i - CTX_TURNS):i] if ss == s]
        p = prompt_ids(tok, person, ctx)
        r = tok(head_bytes(text, REPLY_BYTES) + "<|im_end|>", add_special_tokens=False)["input_ids"]
        out.append((p, r))
    n_held = max(1, len(out) // 10)
    return out[:-n_held]


def train(model, exs, budget_s, seed):
    random.seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1.5e-3, weight_decay=0.0)
    model.train()
    t0, step, order = time.perf_counter(), 0, []
    planned = None
    for epoch in range(3):
        order = list(range(len(exs)))
        random.shuffle(order)
        for b in range(0, len(order) - 1, 2):
            batch = [exs[k] for k in order[b:b + 2]]
            L = max(len(p) + len(r) for p, r in batch)
            ids = torch.zeros((len(batch), L), dtype=torch.long)
            lab = torch.full((len(batch), L), -100, dtype=torch.long)
            att = torch.zeros((len(batch), L), dtype=torch.long)
            for j, (p, r) in enumerate(batch):
                seq = p + r
                ids[j, :len(seq)] = torch.tensor(seq)
                lab[j, len(p):len(seq)] = torch.tensor(r)
                att[j, :len(seq)] = 1
            if planned:
                frac = min(1.0, step / planned)
                for g in opt.param_groups:
                    g["lr"] = 1e-4 + (1.5e-3 - 1e-4) * 0.5 * (1 + math.cos(math.pi * frac))
            loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad()
            step += 1
            el = time.perf_counter() - t0
            if step == 5:  # plan the schedule from the first steps' pace
                planned = min(3 * len(exs) // 2, int(budget_s / (el / step)))
            if el > budget_s:
                return step, el, loss.item()
    return step, time.perf_counter() - t0, loss.item()


def main():
    global CTX_TURNS
    ap = argparse.ArgumentParser()
    ap.add_argument("chat")
    ap.add_argument("questions")
    ap.add_argument("out")
    ap.add_argument("people", nargs="+")
    ap.add_argument("--budget", type=float, default=300)
    ap.add_argument("--draws", type=int, default=6)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--turns", type=int, default=CTX_TURNS, help="turns in the prompt (the clone's: 4)")
    ap.add_argument("--gguf", default=os.path.join(_here, "..", "models", "base", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    a = ap.parse_args()
    CTX_TURNS = a.turns
    torch.set_num_threads(a.threads)
    transformers.utils.logging.disable_progress_bar()
    path = os.path.abspath(a.gguf)
    d, f = os.path.dirname(path), os.path.basename(path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    turns = read_turns(a.chat)
    qs = json.load(open(a.questions))["questions"]
    answers = []
    for person in a.people:
        torch.manual_seed(1)
        model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32)
        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.05, task_type="CAUSAL_LM",
                                                 target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                 "gate_proj", "up_proj", "down_proj"]))
        exs = examples(tok, turns, person)
        steps, el, loss = train(model, exs, a.budget, 1)
        print(f"{person}: {len(exs)} examples, {steps} steps in {el:.0f} s, last loss {loss:.3f}", file=sys.stderr)
        model.eval()
        end = tok.convert_tokens_to_ids("<|im_end|>")
        for draw in range(a.draws):
            for q in qs:
                if q["answerer"] != person:
                    continue
                ctx = [(c["author"], c["text"]) for c in q.get("context", [])] + [(q["asker"], q["question"])]
                ids = torch.tensor([prompt_ids(tok, person, ctx)])
                torch.manual_seed(1000 * draw + q["id"])
                with torch.no_grad():
                    g = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                                       temperature=0.8, top_k=40, top_p=0.95, max_new_tokens=48,
                                       eos_token_id=end, pad_token_id=end)
                reply = tok.decode(g[0, ids.shape[1]:], skip_special_tokens=True).strip()
                answers.append({"id": q["id"], "answerer": person, "draw": draw, "reply": reply})
    json.dump({"peer": f"PyTorch {torch.__version__} + PEFT LoRA, {a.budget:.0f} s", "answers": answers},
              open(a.out, "w"), ensure_ascii=False, indent=1)


if __name__ == "__main__":
    main()
