"""Tokenizer reference for the GGUF base: the ids of SmolLM2's own tokenizer through the
`tokenizers` library, built from the GGUF file's vocabulary and merges with the pre-tokenizer
SmolLM2's tokenizer.json declares (Digits(individual_digits) then ByteLevel) — the tokenizer the
model was trained with. transformers' GGUF loader builds a plain ByteLevel pre-tokenizer instead
(it drops the Digits step), so its ids differ on non-ASCII numerals (Arabic-Indic digits, "½",
"①", "Ⅻ"); make_gguf_ref.py records those as "ids" and this script adds "ids_tokenizers".
Run: HF_HUB_OFFLINE=1 build/pyref-venv/bin/python tools/reference/make_gguf_tokenizer_ref.py"""
import json, os, sys

from gguf import GGUFReader
from tokenizers import Tokenizer, AddedToken, decoders, pre_tokenizers
from tokenizers.models import BPE

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
path = os.path.join(root, "models", "base", "SmolLM2-135M-Instruct.Q4_1.gguf")
ref = os.path.join(root, "tests", "reference", "gguf", "tokenizer.jsonl")

r = GGUFReader(path)
def field(name):
    f = r.fields[name]
    return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
def ints(name):
    f = r.fields[name]
    return [int(f.parts[i][0]) for i in f.data]
tokens, merges, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.merges"), ints("tokenizer.ggml.token_type")
tok = Tokenizer(BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=[tuple(m.split(" ", 1)) for m in merges]))
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
tok.decoder = decoders.ByteLevel()
tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t, ty in zip(tokens, types) if ty == 3])
rows = [json.loads(l) for l in open(ref, encoding="utf-8") if l.strip()]
differ = 0
for row in rows:
    row["ids_tokenizers"] = tok.encode(row["text"], add_special_tokens=False).ids
    differ += row["ids_tokenizers"] != row["ids"]
with open(ref, "w", encoding="utf-8") as f:
    for row in rows:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"{len(rows)} texts; transformers' GGUF tokenizer differs from SmolLM2's own on {differ}", file=sys.stderr)
