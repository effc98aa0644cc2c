#!/usr/bin/env python3
"""Builds the tokenizer reference data in tests/reference/tokenizer/ (nothing is downloaded).

Run: bash tools/pyref-venv.sh && HF_HUB_OFFLINE=1 build/pyref-venv/bin/python tools/reference/make_tokenizer_ref.py

Trains four tiny byte-level BPE tokenizers with the `tokenizers` library, each configured like a
real model family's tokenizer.json:
  smollm2  Sequence[Digits(individual), ByteLevel(regex)], no BOS, <|endoftext|>/<|im_*|> specials
  gpt2     ByteLevel(add_prefix_space, regex), TemplateProcessing BOS, added tokens with
           lstrip/rstrip/single_word/normalized flags, merges in the legacy "a b" format
  llama3   Split(Llama-3 regex) + ByteLevel(no regex), ignore_merges, <|begin_of_text|> template
  qwen2    NFC normalizer, Split(Qwen2 regex, single digits) + ByteLevel(no regex), <|im_*|>
  mixed    every other Split behaviour, string patterns, invert, contiguous Digits, missing bytes + <unk>,
           truncation/padding stored in the file (transformers ignores them)
Then loads each with transformers' PreTrainedTokenizerFast(tokenizer_file=...) and writes
cases.jsonl, one line per (tokenizer, text):
  {"tok", "text" | "hex" (raw bytes, possibly invalid UTF-8, encoded as Python's
   bytes.decode("utf-8", "replace") would give them to transformers),
   "ids" (tokenizer(text)["input_ids"]), "ids_nospecial" (add_special_tokens=False),
   "decoded" (decode(ids)), "decoded_skip" (decode(ids, skip_special_tokens=True))}
"""
import json
import os
import random

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import PreTrainedTokenizerFast  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "reference", "tokenizer")

LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
            r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

TRICKY = [
    "", " ", "  ", "\t", "\n", "\r\n", "Hello world", " Hello world", "  Hello  world  ",
    "hello\n\nworld\r\n\r\nagain\n", "tabs\tand\t\ttabs \t mixed", "trailing spaces   ",
    "I'LL DO IT, don't you think? She's here, we'RE 'Ve 'M 'D 'T 'S 'LL",
    "it's 'sam' o'clock rock'n'roll ''s '", "'ſ 'ſt ſ",
    "1234567 12 123 1234 12345678901234567890 3.14159 -42 1,000,000 ²³ ½ ① Ⅻ ٣٤٥ ४५६",
    "👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 🇩🇪🇫🇷 🇺🇸 ❤️ ✌🏿 🤷‍♀️ 😂😂😂",
    "مرحبا بالعالم! كيف حالك؟ ١٢٣", "שלום עולם, מה שלומך?", "العربية English mixed עברית",
    "你好，世界！今天天气很好。", "日本語のテキスト、カタカナとひらがな。", "한국어 텍스트입니다 ㅋㅋㅋ",
    "नमस्ते दुनिया, आप कैसे हैं? क्षत्रिय", "Ελληνικά και русский текст", "Ünïcödé naïve café résumé Ångström",
    "cafe\u0301 e\u0301 a\u0308 o\u0302\u0323 \u1100\u1161\u11a8 A\u030a\u0301", "\u0301\u0301 leading combining marks",
    "x\u0334\u0301\u0316 \u0e01\u0e34\u0e48 Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324",
    "zero\u200bwidth\u200djoiner\ufeffbom \u00a0nbsp \u2003emspace \u3000ideographic",
    "control \x00 \x01 \x1f \x7f chars", "symbols: @#$%^&*()_+-=[]{}|;:\",.<>/?`~\\",
    "!!!???... ---- ==== **** ~~~~", "email me at john.doe+chat@example.com or https://wa.me/123?x=1",
    "[12/03/2024, 21:47:05] Anna Müller: haha 😂 okay, see you at 8pm!! 🎉\nI'LL bring the cake 🍰 don't forget",
    "12/03/24, 9:05 PM - +49 170 1234567: <Media omitted>\n12/03/24, 9:06 PM - Tom: ok 👍",
    "ﬁ ﬂ ﬃ ﬅ Ⅸ ㎏ ℌ ẛ̣ Å", "\U0001d400\U0001d401 \U0001f600 \U00020000\U0002a6d6 \U000e0001",
    "a" * 300, "ab" * 150, " " * 40 + "x", "\n" * 20, "!" * 100,
    # a long chat (hundreds of pre-tokens, so the per-call word cache is used)
    "".join(f"[{d:02d}/03/2024, 21:{d:02d}:05] {'Anna' if d % 3 else 'Tom'}: haha ok 😂 I'LL be there at {d}pm, "
            f"don't wait!! café? 👍🏽\n" for d in range(1, 40)),
]
SPECIAL_MIXES = {
    "smollm2": ["<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>", "a<|endoftext|>b",
                "<|im_start|><|im_end|>", "<|im_start", "< |im_end|>",
                # digits newer than the regex engine's Unicode (Rust is_numeric knows them)
                "\U00011de0\U00011de1 x\U00011de5y 1\U00011de9"],
    "gpt2": ["<|endoftext|>hello<|endoftext|>", "a <mask> b", "a<mask>b", "x   <mask>   y", "<mask>",
             "hello world is hello world", "hello worldly", "xhello world", "done.<mask> ok",
             "cafe\u0301 time, café time", "[TAG]x [TAG] [TAG]", "<|endoftext|><mask>",
             "hello world\U0003d2d7", "\u058c<mask>\U000f69ae", "Ⓐ<mask>", "<mask>\u0301", "_<mask>_", "1<mask>"],
    "llama3": ["<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>", "text<|eot_id|>",
               "<|reserved_special_token_3|> <|reserved_special_token_12|>", "<|eot_id", "<|begin_of_text|>"],
    "mixed": ["a--b--c", "--start and end--", "x::y::z ::", "a|b||c |", "12 345 6789x9", "ÿþ\x00\x01 rare bytes \u0f00",
              "-- :: | 99", "\U00011de0\U00011de1 x\U00011de5y 1\U00011de9"],
    "qwen2": ["<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhey<|im_end|>\n",
              "<tool_call>{\"a\":1}</tool_call>", "<|endoftext|>", "café!and cafe\u0301!", "x<|im_end|>y"],
}
# characters whose bytes never occur in the training corpus (unknown bytes for "mixed")
UNSEEN = ["\x1e\x1d\x1c x \U00100000\U00100001 ok", "\U0010fffd", "a\x1eb\x1dc"]
INVALID = [b"abc\xff def", b"\xc3\x28 \xa0\xa1 \xe2\x82 \xf0\x90\x80", b"\xed\xa0\x80 surrogate", b"\xf4\x90\x80\x80 big",
           b"ok \xe2\x28\xa1 \xc0\xaf", b"\x80\x80\x80", "trunc 👍".encode()[:-1]]


def corpus():
    rnd = random.Random(1)
    base = TRICKY + [t for v in SPECIAL_MIXES.values() for t in v]
    words = ("the of and to in is you that it he was for on are as with his they I at be this have from or one "
             "had by word but not what all were we when your can said there use an each which she do how their if "
             "will up other about out many then them these so some her would make like him into time has look two "
             "more write go see number no way could people my than first water been call who oil its now find long "
             "down day did get come made may part haha lol okay ok yes nope tomorrow tonight dinner love miss you "
             "don't can't won't I'm I'll you're we've they'd it's Hallo danke schön bitte gut mañana gracias 😂 👍 ❤️ 🎉").split()
    lines = []
    for _ in range(3000):
        n = rnd.randint(1, 14)
        line = " ".join(rnd.choice(words) for _ in range(n))
        if rnd.random() < 0.3:
            line += rnd.choice(["!", "?", "...", " 😂", " 123", ", 2024", "\n"])
        if rnd.random() < 0.2:
            line = line.capitalize()
        lines.append(line)
    return base * 3 + lines


def train(pre, normalizer, specials, vocab_size, full_alphabet=True, unk=None):
    tok = Tokenizer(models.BPE(unk_token=unk, fuse_unk=unk is not None))
    if normalizer:
        tok.normalizer = normalizer
    tok.pre_tokenizer = pre
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet() if full_alphabet else [],
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer=trainer)
    return tok


def build():
    toks = {}
    # (a) SmolLM2 style
    t = train(pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)]),
              None, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], 700)
    t.post_processor = processors.ByteLevel(trim_offsets=False)
    toks["smollm2"] = (t, None)
    # (a') GPT-2 style with a BOS template and added-token flags
    t = train(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True), None, ["<|endoftext|>"], 600)
    t.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, single_word=True, normalized=False, special=True)])
    t.add_tokens([AddedToken("hello world", normalized=True, single_word=True),
                  AddedToken("[TAG]", rstrip=True, normalized=False),
                  AddedToken("café", normalized=True)])
    bos = t.token_to_id("<|endoftext|>")
    t.post_processor = processors.TemplateProcessing(single="<|endoftext|> $A", pair="<|endoftext|> $A <|endoftext|> $B:1",
                                                     special_tokens=[("<|endoftext|>", bos)])
    toks["gpt2"] = (t, "legacy_merges")
    # (b) Llama-3 style
    llama_specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    llama_specials += [f"<|reserved_special_token_{i}|>" for i in range(16)]
    t = train(pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)]),
              None, [], 900)
    t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in llama_specials])
    bos = t.token_to_id("<|begin_of_text|>")
    t.post_processor = processors.Sequence([
        processors.ByteLevel(add_prefix_space=True, trim_offsets=False, use_regex=True),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|>:1 $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])
    toks["llama3"] = (t, "ignore_merges")
    # (c) Qwen2 style
    t = train(pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN2_RE), behavior="isolated", invert=False),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)]),
              normalizers.NFC(), [], 800)
    t.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]])
    t.add_tokens([AddedToken(s, special=False, normalized=False) for s in ["<tool_call>", "</tool_call>"]])
    t.add_tokens([AddedToken("café!", special=False, normalized=True)])
    t.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    toks["qwen2"] = (t, None)
    # (d) the other split behaviours, non-regex splits, contiguous digits, an incomplete byte
    # alphabet with a fused <unk>
    t = train(pre_tokenizers.Sequence([
        pre_tokenizers.Split("--", behavior="merged_with_next"),
        pre_tokenizers.Split("::", behavior="merged_with_previous"),
        pre_tokenizers.Split("|", behavior="removed"),
        pre_tokenizers.Split(Regex(QWEN2_RE), behavior="contiguous", invert=True),
        pre_tokenizers.Digits(individual_digits=False),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)]),
        None, ["<unk>"], 400, full_alphabet=False, unk="<unk>")
    # transformers ignores truncation/padding stored in the file; so must we
    t.enable_truncation(max_length=5)
    t.enable_padding(length=64)
    toks["mixed"] = (t, None)
    return toks


def save(name, tok, tweak):
    path = os.path.join(OUT, f"{name}.json")
    data = json.loads(tok.to_str())
    if tweak == "ignore_merges":
        data["model"]["ignore_merges"] = True
    if tweak == "legacy_merges":
        data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, separators=(",", ":"))
    return path


def random_texts(rnd, n):
    frags = TRICKY[:40] + ["<|im_end|>", "<|eot_id|>", "<mask>", "'s", "'LL", " ", "\n", "9", "é", "\u0301", "👍🏽", "🇩🇪", "ß"]
    out = []
    for _ in range(n):
        k = rnd.randint(1, 6)
        s = "".join(rnd.choice(frags)[: rnd.randint(1, 12)] for _ in range(k))
        out.append(s)
    return out


def nfc_texts(rnd, n):
    """Strings dense in combining marks, decomposable characters and Hangul jamo (NFC paths)."""
    import unicodedata
    marks = [c for c in range(0x300, 0x20000) if unicodedata.combining(chr(c))]
    comp = [c for c in range(0xC0, 0x30000)
            if unicodedata.decomposition(chr(c)) and not unicodedata.decomposition(chr(c)).startswith("<")]
    jamo = list(range(0x1100, 0x1113)) + list(range(0x1161, 0x1176)) + list(range(0x11A8, 0x11C3)) + [0xAC00, 0xD7A3]
    base = list("aeoAO c ") + ["\u0e01", "\u0915", "\u05d0", "<|im_end|>", "café!", "'s"]
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rnd.randint(1, 16)):
            r = rnd.random()
            if r < 0.35:
                parts.append(chr(rnd.choice(marks)))
            elif r < 0.55:
                parts.append(chr(rnd.choice(comp)))
            elif r < 0.7:
                parts.append(chr(rnd.choice(jamo)))
            elif r < 0.75:
                parts.append(unicodedata.normalize("NFD", chr(rnd.choice(comp))))
            else:
                parts.append(rnd.choice(base))
        out.append("".join(parts))
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    rnd = random.Random(7)
    lines = []
    for name, (tok, tweak) in build().items():
        path = save(name, tok, tweak)
        hf = PreTrainedTokenizerFast(tokenizer_file=path)
        raw = Tokenizer.from_file(path)
        texts = [(t, None) for t in TRICKY + SPECIAL_MIXES[name] + UNSEEN + random_texts(rnd, 60) + nfc_texts(rnd, 25)]
        texts += [(b.decode("utf-8", "replace"), b.hex()) for b in INVALID]
        for text, hexs in texts:
            ids = hf(text)["input_ids"]
            ids_ns = hf(text, add_special_tokens=False)["input_ids"]
            if name != "mixed":   # (raw Tokenizer applies the stored truncation/padding)
                assert ids == raw.encode(text).ids, (name, text)
                assert ids_ns == raw.encode(text, add_special_tokens=False).ids, (name, text)
            dec = hf.decode(ids)
            dec_skip = hf.decode(ids, skip_special_tokens=True)
            assert dec == raw.decode(ids, skip_special_tokens=False), (name, text, dec)
            assert dec_skip == raw.decode(ids, skip_special_tokens=True), (name, text, dec_skip)
            rec = {"tok": name}
            if hexs is None:
                rec["text"] = text
            else:
                rec["hex"] = hexs
            rec.update(ids=ids, ids_nospecial=ids_ns, decoded=dec, decoded_skip=dec_skip)
            lines.append(json.dumps(rec, ensure_ascii=False))
        print(f"{name}: vocab {raw.get_vocab_size()} -> {path}")
    with open(os.path.join(OUT, "cases.jsonl"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} cases")


if __name__ == "__main__":
    main()
