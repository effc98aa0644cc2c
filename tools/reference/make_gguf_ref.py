#!/usr/bin/env python3
"""Makes the GGUF reference data in tests/reference/gguf/ for the C engine's SmolLM2-135M-Instruct
Q4_1 path (tokenizer, chat template, dequantized f32 logits, llama.cpp greedy decoding).

Run (after tools/setup-base-model.sh and tools/pyref-venv.sh all):
  HF_HUB_OFFLINE=1 build/pyref-venv/bin/python tools/reference/make_gguf_ref.py [GGUF]
It runs itself once more under build/llamacpp-venv/bin/python (`--llamacpp IN OUT`, no torch
imported there) for llama.cpp's part. Nothing is downloaded. Writes:
  tokenizer.jsonl         {"text", "ids"} per line: transformers' AutoTokenizer (gguf_file=...)
                          with add_special_tokens=False and SmolLM2's own pre-tokenizer restored
                          (Digits(individual) + ByteLevel; the GGUF converter drops the Digits
                          step): "ids_hf_gguf" holds the converter's ids as they are where they
                          differ, "ids_llamacpp" llama.cpp's (special tokens parsed) where those
                          differ; "hex" holds the raw bytes where the text came from invalid UTF-8
                          (text = bytes.decode("utf-8", "replace"))
  chat_template.jsonl     {"messages", "add_generation_prompt", "text", "ids"}
  logits_f32.safetensors  prompt<i>_ids (int32 [n]), prompt<i>_logits (f32 [3, vocab]) at the
  + logits_f32.json       positions listed in the JSON, from the GGUF dequantized to f32
  llamacpp_greedy.json    40 chat prompts: messages, rendered text, llama.cpp's prompt ids, its 32
  + llamacpp_top16.safetensors  greedy ids (no EOS stop) and where it would have stopped, the
                          transformers f32 greedy ids, agreement figures; top16_ids/top16_logits
                          [40, 32, 16] (int32/f32) of llama.cpp's logits at each step
"""
import json
import os
import random
import subprocess
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")     # transformers' GGUF loader draws a progress bar

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "reference", "gguf")
DEFAULT_GGUF = os.path.join(ROOT, "models", "base", "SmolLM2-135M-Instruct.Q4_1.gguf")
LLAMACPP_PY = os.path.join(ROOT, "build", "llamacpp-venv", "bin", "python")
N_GEN, TOPK, THREADS = 32, 16, 2

# ---------------------------------------------------------------------------------------------
# texts for the tokenizer cases

WHATSAPP = [
    "[12/03/2024, 21:47:05] Anna Müller: haha 😂 okay, see you at 8pm!! 🎉",
    "12/03/24, 9:05 PM - +49 170 1234567: <Media omitted>",
    "12/03/24, 9:06 PM - Tom: ok 👍",
    "3/7/23, 23:59 - Lena: gute nacht 😴💤",
    "[07.03.23, 08:15:42] Papa: Guten Morgen! Wer holt heute die Kinder ab?",
    "‎[07.03.23, 08:16:01] Mama: ‎image omitted",
    "1/1/24, 00:00 - Messages and calls are end-to-end encrypted. No one outside of this chat, not even WhatsApp, can read or listen to them.",
    "05/06/2023, 14:22 - Carlos: jajaja no puede ser 🤣🤣🤣",
    "05/06/2023, 14:23 - María José: ¿vienes mañana? 🙏🏽",
    "[2023-11-05 18:30:12] Priya: okkk 👌🏾 will call u in 5 min",
    "This message was deleted",
    "You deleted this message",
    "<Media omitted>", "<Media omitted>\n<Media omitted>", "image omitted", "sticker omitted",
    "Missed voice call", "‎Location: https://maps.google.com/?q=52.520008,13.404954",
    "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=42s", "check this out https://t.co/AbC123xyz lol",
    "http://example.com/path/to/file.pdf?download=1#page=3", "www.whatsapp.com/dl/ ftp://files.example.org/x",
    "mail me: john.doe+chat@example.com", "call me at +1 (555) 010-9999 or +44 20 7946 0958",
    "omg 😍😍😍 sooo cute", "hahahahahaha", "lmaooooo 💀💀", "ok", "k", "kk", "👍", "?", "??!!", "...",
    "wait what", "I'm on my way, be there in 10", "don't forget the keys!!", "we're late again 🙄",
    "you've got mail", "she'll be fine, I'd say", "it's Sam's birthday tmrw 🎂", "can't won't shouldn't",
    "I'LL DO IT, don't you think? She's here, we'RE 'Ve 'M 'D 'T 'S 'LL",
    "it's 'sam' o'clock rock'n'roll ''s '", "Ok ’s ’t — curly apostrophes’re here", "‘quoted’ “double” «guillemets» „low“",
    "Happy new year!!! 🎆🎇✨ 2024 here we come", "pls 🥺🥺", "ty ❤️", "np :) ;) :D :P xD <3 :-(",
]

EMOJI = [
    "👍 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿", "👨‍👩‍👧‍👦 👩‍❤️‍👨 👨‍👨‍👦 🧑‍🤝‍🧑", "🏳️‍🌈 🏳️‍⚧️ 🏴‍☠️", "🇩🇪🇫🇷🇪🇸🇮🇹 🇺🇸 🇮🇳 🇧🇷 🇯🇵",
    "❤️ ❤ ♥️ 💕 💖 💗 🧡 💛 💚 💙 💜 🖤 🤍 🤎", "✌🏿 🤷‍♀️ 🤷🏽‍♂️ 🙋🏻‍♀️ 👩🏾‍💻 🧑🏼‍🚀", "😂😂😂😂😂😂😂😂",
    "🫠 🫡 🥹 🫶🏽 🪿 🫎", "#️⃣ *️⃣ 1️⃣2️⃣3️⃣ 🔟", "☺️ ☺ ☹️ ✔️ ✅ ❌ ⚠️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 🏴󠁧󠁢󠁷󠁬󠁳󠁿",
    "text👍text", "a😂b😂c", "👋hi", "bye👋", "🙏🏽🙏🏽🙏🏽 thanks", "💯💯", "🎉🎊🥳🍾",
]

SCRIPTS = [
    "Ünïcödé naïve café résumé Ångström", "cafe\u0301 e\u0301 a\u0308 (combining marks)", "Straße größer Übung Ärger",
    "ça va? très bien, merci! à bientôt", "¿Qué tal? ¡Genial! año niño", "Ação, coração, não, você",
    "Dziękuję, żółć, źdźbło", "Čeština: příliš žluťoučký kůň", "İstanbul'da ığdır şöyle", "Ελληνικά: Καλημέρα!",
    "Привет, как дела? Всё хорошо 😊", "Добрый вечер, ребята!", "你好，世界！今天天气很好。", "我们明天见吧 👋",
    "日本語のテキスト、カタカナとひらがな。", "ありがとうございます！", "한국어 텍스트입니다 ㅋㅋㅋ", "안녕하세요 반갑습니다",
    "مرحبا بالعالم! كيف حالك؟ ١٢٣", "إن شاء الله 🤲", "שלום עולם, מה שלומך?", "العربية English mixed עברית",
    "नमस्ते दुनिया, आप कैसे हैं? क्षत्रिय", "ভালো আছি, তুমি?", "வணக்கம்", "สวัสดีครับ ขอบคุณ", "Tiếng Việt có dấu: Người Việt",
    "ﬁ ﬂ ﬃ ﬅ Ⅸ ㎏ ℌ Å", "½ ¼ ¾ ² ³ ① Ⅻ", "€100 £5 ¥300 ₹250 $9.99 ₿0.001", "°C ±5 × ÷ ≠ ≤ ≥ ∞ √ π",
    "mixed 中文 and English 和 日本語 in one line", "Hinglish: kya haal hai bhai? sab badhiya 😄",
]

SPECIAL = [
    "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\n", "<|endoftext|>", "a<|endoftext|>b",
    "<|im_start|><|im_end|>", "<|im_start", "< |im_end|>", "<|im_end|>\n", " <|im_start|>system", "<|im_start|> x",
    "<repo_name>", "<file_sep>x", "<jupyter_code>", "<|IM_START|>", "<|im_start|>user<|im_end|>x<|im_end|>",
    "text <|endoftext|> text", "<s> </s> <unk> <pad> [INST]", "<|unknown_special|>",
]

INVALID_BYTES = [
    b"abc\xff def", b"\xc3\x28 \xa0\xa1 \xe2\x82 \xf0\x90\x80", b"\xed\xa0\x80 surrogate", b"\xf4\x90\x80\x80 big",
    b"\xc0\xaf overlong", b"half emoji \xf0\x9f\x98", b"\x80\x80\x80",
]

WEIRD = [
    "\ufffd replacement \ufffd\ufffd", "\ufeffBOM at start", "zero\u200bwidth\u200djoiner\u200cnon\u2060wj",
    "\u00a0nbsp \u2003emspace \u3000ideographic \u202fnarrow", "control \x00 \x01 \x1f \x7f chars",
    "\u202eRTL override\u202c and \u200fRLM", "\uffff\ufffe noncharacters \U0010ffff", "\ue000\uf8ff private use",
    "\u0301\u0301 leading combining marks", "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324 zalgo",
    "\U0001d400\U0001d401 math bold \U0001f600 \U00020000\U0002a6d6", "\U000e0001 tag char",
    "symbols: @#$%^&*()_+-=[]{}|;:\",.<>/?`~\\", "!!!???... ---- ==== **** ~~~~ ____", "\\n literal \\t backslashes",
    "```code block```", "{\"json\": [1, 2.5, true, null]}", "<b>html</b> &amp; &lt;tag&gt;", "C:\\Users\\maya\\file.txt",
]


def number_texts():
    out = []
    for n in range(1, 26):
        out.append("".join(str((i * 7 + n) % 10) for i in range(n)))
    out += ["0", "00", "007", "1,000,000", "3.14159", "-42", "+49", "1e10", "0x1F", "12:30", "2024-03-07",
            "21:47:05", "1/2", "10%", "#1", "v2.0.1", "abc123def4567", "R2D2 C3PO", "١٢٣٤٥ ४५६ ๑๒๓",
            "phone: 01701234567", "IBAN DE89 3704 0044 0532 0130 00"]
    return out


def whitespace_texts():
    out = ["", " ", "\t", "\n", "\r", "\r\n", "\n\n", " \n", "\n ", "\t\n\t"]
    for n in (2, 3, 4, 5, 7, 8, 13, 16, 31, 40):
        out.append(" " * n)
        out.append("a" + " " * n + "b")
    for n in (2, 3, 4, 6, 10, 20):
        out.append("\n" * n)
        out.append("line" + "\n" * n + "line")
    for n in (2, 3, 5):
        out.append("\t" * n + "x")
    out += ["trailing spaces   ", "   leading spaces", "tabs\tand\t\ttabs \t mixed", "x \n \n y",
            "hello\n\nworld\r\n\r\nagain\n", "  Hello  world  ", " Hello", "Hello world", "a\u00a0 b", " \t \n \r\n end"]
    return out


def long_texts():
    rnd = random.Random(11)
    names = ["Anna", "Tom", "Maya", "Jörg", "Lucía", "Priya", "李雷"]
    lines = ["haha ok 😂", "I'LL be there at {d}pm, don't wait!!", "<Media omitted>", "café? 👍🏽", "kk",
             "see https://example.com/x?id={d}", "na klar, bis gleich", "¿dónde estás?", "wyd", "👨‍👩‍👧‍👦❤️",
             "shall we get pizza tonight or sushi", "{d}{d}{d}", "good night 🌙✨"]
    chat = "".join(f"[{d % 28 + 1:02d}/03/2024, 21:{d % 60:02d}:05] {rnd.choice(names)}: "
                   f"{rnd.choice(lines).format(d=d)}\n" for d in range(90))
    prose = ("The quick brown fox jumps over the lazy dog. " * 3 + "It's 1984 and we're   waiting\tfor the 12:45 "
             "train to München, aren't we? ") * 12
    mixed = " ".join(rnd.choice(EMOJI + SCRIPTS + WHATSAPP) for _ in range(60))
    return [chat, prose, mixed, "a" * 400, "ab" * 200, "😂" * 120, " " * 300 + "x"]


def generated_chat_lines(n):
    rnd = random.Random(5)
    words = ["ok", "lol", "hey", "what", "are", "you", "doing", "tonight", "😂", "👍🏽", "café", "naïve", "100",
             "2", "PM", "don't", "it's", "we're", "you've", "  ", "\n", "!!", "?", "https://x.co/a1", "Müller",
             "ñ", "🇪🇸", "👩‍💻", "日本", "مرحبا", "<Media omitted>", "1234567", "\t", "...", "—", "'s", "'t"]
    return ["".join(rnd.choice(words) + rnd.choice(["", " ", " ", " ", "  ", "\n"]) for _ in range(rnd.randint(3, 14)))
            for _ in range(n)]


def tokenizer_cases():
    texts = (WHATSAPP + EMOJI + SCRIPTS + SPECIAL + WEIRD + number_texts() + whitespace_texts() + long_texts())
    cases = [{"text": t} for t in texts]
    cases += [{"text": b.decode("utf-8", "replace"), "hex": b.hex()} for b in INVALID_BYTES]
    need = 300 - len(cases)
    cases += [{"text": t} for t in generated_chat_lines(max(need, 20))]
    return cases


# ---------------------------------------------------------------------------------------------
# conversations

TEMPLATE_CONVS = [
    [{"role": "user", "content": "Hi!"}],
    [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": "What is 2+2?"}],
    [{"role": "system", "content": "Du bist Maya. Antworte kurz."}, {"role": "user", "content": "Na, wie geht's? 😊"},
     {"role": "assistant", "content": "Gut, danke! Und dir?"}, {"role": "user", "content": "Auch gut 👍🏽"}],
    [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "hey! what's up"},
     {"role": "user", "content": "nothing much, you?"}],
    [{"role": "system", "content": ""}, {"role": "user", "content": "empty system line"}],
    [{"role": "system", "content": "You are Maya, 27, from Lisbon."},
     {"role": "user", "content": "你好！今天怎么样？"}, {"role": "assistant", "content": "很好 😄"},
     {"role": "user", "content": "مرحبا\nsecond line\n\nthird"}],
    [{"role": "user", "content": "  leading and trailing spaces  "}, {"role": "assistant", "content": "<Media omitted>"}],
    [{"role": "system", "content": "Reply like a friend on WhatsApp."}, {"role": "user", "content": "r u coming?"},
     {"role": "assistant", "content": "yes!! 10 min"}, {"role": "user", "content": "ok hurry 🏃‍♀️"},
     {"role": "assistant", "content": "🏃‍♀️💨"}, {"role": "user", "content": "lol"}],
]

MAYA = ("You are Maya, a 27-year-old graphic designer from Lisbon. You chat casually with friends on "
        "WhatsApp: short messages, lowercase, a few emoji.")

TURNS = {
    "en": [("hey maya! how was your day?", "pretty good! busy at work tho 😅"),
           ("what did you have for dinner?", "just pasta lol, too tired to cook"),
           ("are you free this weekend?", "saturday yes, sunday i'm at my mom's"),
           ("did you watch the game last night?", "nope, fell asleep on the couch 😂"),
           ("wanna grab coffee tomorrow?", "yesss, 10am at the usual place?"),
           ("how's your sister doing?", "she's good, just started a new job"),
           ("i'm so bored", "same haha, wanna call?"),
           ("what are you up to?", "editing some photos, you?"),
           ("happy birthday!! 🎉", "aww thank youuu ❤️"),
           ("did you get my message?", "yes sorry, was driving")],
    "de": [("hey, wie war dein tag?", "ganz gut, bisschen stressig 😅"),
           ("was hast du heute gegessen?", "nur eine pizza haha"),
           ("hast du am wochenende zeit?", "samstag ja, sonntag nicht"),
           ("kommst du heute abend mit?", "klar, wann denn?")],
    "es": [("hola! qué tal tu día?", "bien, mucho trabajo jaja"),
           ("qué cenaste?", "una ensalada, nada especial"),
           ("vienes a la fiesta el sábado?", "sí!! llevo algo?")],
    "pt": [("oi maya, tudo bem?", "tudo ótimo! e contigo?"),
           ("o que jantaste hoje?", "bacalhau com natas 😋"),
           ("vamos à praia amanhã?", "bora! a que horas?")],
    "fr": [("salut! ça va?", "oui super, et toi?"),
           ("tu as mangé quoi ce soir?", "des crêpes 🥞")],
}


def greedy_convs():
    rnd = random.Random(2024)
    langs = ["en"] * 16 + ["de"] * 7 + ["es"] * 6 + ["pt"] * 6 + ["fr"] * 5
    convs = []
    for i, lang in enumerate(langs):
        pool = TURNS[lang] + (TURNS["en"] if lang != "en" and i % 3 == 0 else [])
        nturns = 1 + (i * 5) % 8       # 1..8 user turns
        msgs = [{"role": "system", "content": MAYA}]
        for t in range(nturns):
            q, a = pool[rnd.randrange(len(pool))]
            msgs.append({"role": "user", "content": q})
            if t < nturns - 1:
                msgs.append({"role": "assistant", "content": a})
        convs.append({"lang": lang, "messages": msgs})
    return convs


# ---------------------------------------------------------------------------------------------
# llama.cpp side (runs under build/llamacpp-venv; no torch here)

def llamacpp_main(inp, outp):
    import numpy as np
    import llama_cpp
    from llama_cpp import Llama

    job = json.load(open(inp, encoding="utf-8"))
    settings = dict(n_ctx=1024, n_batch=512, n_threads=THREADS, n_threads_batch=THREADS, logits_all=True,
                    seed=0, verbose=False)
    llm = Llama(model_path=job["gguf"], **settings)
    res = {"llama_cpp_python_version": llama_cpp.__version__, "settings": dict(settings, n_gpu_layers=0),
           "token_eos": llm.token_eos(), "token_bos": llm.token_bos(), "tokenizer": [], "greedy": []}
    for text in job["texts"]:
        res["tokenizer"].append(llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))
    for text in job["prompts"]:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        gen, top_ids, top_logits = [], [], []
        for _ in range(N_GEN):
            logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
            order = np.argsort(-logits, kind="stable")[:TOPK]
            tok = int(order[0])
            gen.append(tok)
            top_ids.append([int(x) for x in order])
            top_logits.append([float(logits[x]) for x in order])
            llm.eval([tok])
        res["greedy"].append({"prompt_ids": ids, "tokens": gen, "top_ids": top_ids, "top_logits": top_logits})
    json.dump(res, open(outp, "w", encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# transformers side

def run_llamacpp(job):
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.json"), os.path.join(tmp, "out.json")
        json.dump(job, open(inp, "w", encoding="utf-8"))
        subprocess.run([LLAMACPP_PY, os.path.abspath(__file__), "--llamacpp", inp, outp], check=True)
        return json.load(open(outp, encoding="utf-8"))


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def hf_greedy(model, torch, ids, n):
    """Greedy decoding with the KV cache, plain argmax, no EOS stop."""
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), use_cache=True)
        gen = []
        for _ in range(n):
            tok = int(torch.argmax(out.logits[0, -1]))
            gen.append(tok)
            out = model(input_ids=torch.tensor([[tok]]), cache=out.cache, use_cache=True)
        return gen


def main():
    import numpy as np
    import torch
    import transformers
    import gguf as gguf_py
    import tokenizers
    from tokenizers import pre_tokenizers
    from safetensors.numpy import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer
    transformers.utils.logging.disable_progress_bar()

    gguf_path = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_GGUF)
    mdir, mname = os.path.dirname(gguf_path), os.path.basename(gguf_path)
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(THREADS)
    tok_gguf = AutoTokenizer.from_pretrained(mdir, gguf_file=mname)
    tok = AutoTokenizer.from_pretrained(mdir, gguf_file=mname)
    # transformers' GGUF converter gives every "gpt2" model the plain ByteLevel(regex) pre-tokenizer
    # and ignores tokenizer.ggml.pre = "smollm"; SmolLM2's own tokenizer.json (and llama.cpp's
    # "smollm" pre-tokenizer) split every numeric character first. Restore that; the ids of the
    # converter as it is are kept as "ids_hf_gguf" wherever they differ.
    assert tok.backend_tokenizer.pre_tokenizer.__getstate__() == tok_gguf.backend_tokenizer.pre_tokenizer.__getstate__()
    tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    from importlib.metadata import version
    versions = {k: version(k) for k in ("torch", "transformers", "tokenizers", "gguf", "numpy", "safetensors")}

    # a. tokenizer
    cases = tokenizer_cases()
    nhf = 0
    for c in cases:
        c["ids"] = tok(c["text"], add_special_tokens=False)["input_ids"]
        hf = tok_gguf(c["text"], add_special_tokens=False)["input_ids"]
        if hf != c["ids"]:
            c["ids_hf_gguf"] = hf
            nhf += 1

    # b. chat template
    tmpl_rows = []
    for msgs in TEMPLATE_CONVS:
        for agp in (False, True):
            text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=agp)
            assert text == tok_gguf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=agp)
            ids = tok(text, add_special_tokens=False)["input_ids"]
            assert ids == tok_gguf(text, add_special_tokens=False)["input_ids"], text
            tmpl_rows.append({"messages": msgs, "add_generation_prompt": agp, "text": text, "ids": ids})
    write_jsonl(os.path.join(OUT, "chat_template.jsonl"), tmpl_rows)

    # d. llama.cpp (tokenizer cross-check + greedy)
    convs = greedy_convs()
    prompts = [tok.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=True) for c in convs]
    lc = run_llamacpp({"gguf": gguf_path, "texts": [c["text"] for c in cases], "prompts": prompts})
    ndiff = 0
    for c, lids in zip(cases, lc["tokenizer"]):
        if lids != c["ids"]:
            c["ids_llamacpp"] = lids
            ndiff += 1
    write_jsonl(os.path.join(OUT, "tokenizer.jsonl"), cases)

    # c. f32 logits of the dequantized model
    model = AutoModelForCausalLM.from_pretrained(mdir, gguf_file=mname, dtype=torch.float32)
    model.eval()
    logit_prompts = [
        ("chat", tok.apply_chat_template(
            [{"role": "system", "content": MAYA}, {"role": "user", "content": "hey! what are you doing tonight? 🍕"},
             {"role": "assistant", "content": "nothing much, netflix probably"},
             {"role": "user", "content": "wanna come over for pizza?"}],
            tokenize=False, add_generation_prompt=True)),
        ("english", "The old lighthouse keeper climbed the stairs every evening to light the lamp for passing ships."),
        ("multilingual", "Hola 👋 ¿qué tal? Ça va très bien 😊 — 日本語も少し話せます! Привет, друзья 🇩🇪🇪🇸"),
    ]
    tensors, lmeta = {}, []
    for i, (name, text) in enumerate(logit_prompts):
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert ids == tok_gguf(text, add_special_tokens=False)["input_ids"], text
        n = len(ids)
        pos = [n // 3, (2 * n) // 3, n - 1]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([ids])).logits[0]
        tensors[f"prompt{i}_ids"] = np.asarray(ids, dtype=np.int32)
        tensors[f"prompt{i}_logits"] = logits[pos].float().numpy().astype(np.float32)
        lmeta.append({"name": name, "text": text, "n_tokens": n, "positions": pos,
                      "argmax": [int(torch.argmax(logits[p])) for p in pos]})
    save_file(tensors, os.path.join(OUT, "logits_f32.safetensors"))
    json.dump({"model": mname, "dtype": "float32 (every tensor dequantized by transformers' GGUF loader)",
               "versions": versions, "threads": THREADS, "vocab_size": int(model.config.vocab_size),
               "tolerance_hint": "max |C - ref| <= 1e-3 for the dequantized f32 path",
               "tensors": "prompt<i>_ids int32 [n_tokens]; prompt<i>_logits float32 [3, vocab] at 'positions'",
               "prompts": lmeta}, open(os.path.join(OUT, "logits_f32.json"), "w", encoding="utf-8"),
              ensure_ascii=False, indent=1)

    # e. transformers greedy on llama.cpp's prompt ids, and agreement
    rows, top_ids, top_logits = [], [], []
    same_seq = same_first = tf_agree = tf_in_top = tf_total = hf_tok_same = 0
    prefix_lens = []
    top_diff_sum, top_diff_n, top_diff_max = 0.0, 0, 0.0
    for conv, text, g in zip(convs, prompts, lc["greedy"]):
        pids, ltoks = g["prompt_ids"], g["tokens"]
        hf_ids = tok(text, add_special_tokens=False)["input_ids"]
        hf_tok_same += hf_ids == pids
        htoks = hf_greedy(model, torch, pids, N_GEN)
        k = 0
        while k < N_GEN and htoks[k] == ltoks[k]:
            k += 1
        prefix_lens.append(k)
        same_seq += k == N_GEN
        same_first += htoks[0] == ltoks[0]
        with torch.no_grad():   # teacher-forced: transformers' argmax after llama.cpp's own prefix
            lg = model(input_ids=torch.tensor([pids + ltoks[:-1]])).logits[0, len(pids) - 1:]
        tf_top1 = torch.argmax(lg, dim=-1).tolist()
        d = (lg.gather(1, torch.tensor(g["top_ids"])) - torch.tensor(g["top_logits"])).abs()
        top_diff_sum += float(d.sum())
        top_diff_n += d.numel()
        top_diff_max = max(top_diff_max, float(d.max()))
        tf_agree += sum(int(a == b) for a, b in zip(tf_top1, ltoks))
        tf_in_top += sum(int(t in set(ti[:5])) for t, ti in
                         zip(tf_top1, g["top_ids"]))
        tf_total += N_GEN
        eos = lc["token_eos"]
        stop = ltoks.index(eos) if eos in ltoks else None
        rows.append({"lang": conv["lang"], "messages": conv["messages"], "text": text, "prompt_ids": pids,
                     "llamacpp_tokens": ltoks, "llamacpp_eos_at": stop,
                     "llamacpp_text": tok.decode(ltoks[:stop] if stop is not None else ltoks),
                     "hf_tokens": htoks, "common_prefix": k})
        top_ids.append(g["top_ids"])
        top_logits.append(g["top_logits"])
    save_file({"top16_ids": np.asarray(top_ids, dtype=np.int32),
               "top16_logits": np.asarray(top_logits, dtype=np.float32)},
              os.path.join(OUT, "llamacpp_top16.safetensors"))
    n = len(rows)
    summary = {
        "prompts": n, "steps": N_GEN,
        "hf_tokenization_equals_llamacpp": hf_tok_same,
        "identical_32_token_sequences": same_seq,
        "same_first_token": same_first,
        "mean_common_prefix": round(sum(prefix_lens) / n, 2),
        "teacher_forced_top1_agreement": round(tf_agree / tf_total, 4),
        "teacher_forced_hf_top1_in_llamacpp_top5": round(tf_in_top / tf_total, 4),
        "teacher_forced_top16_logit_abs_diff_mean": round(top_diff_sum / top_diff_n, 4),
        "teacher_forced_top16_logit_abs_diff_max": round(top_diff_max, 4),
        "note": ("llama.cpp runs the Q4_1 weights with activations quantized to Q8_1 in its dot products; "
                 "transformers runs the same weights dequantized to f32, so the two drift apart at "
                 "near-ties and then diverge; teacher-forced agreement compares each step on llama.cpp's "
                 "own prefix; the logit differences are transformers' f32 logits minus llama.cpp's "
                 "at llama.cpp's top-16 ids of every step, on llama.cpp's prefix"),
    }
    json.dump({"model": mname, "llama_cpp": {"llama_cpp_python": lc["llama_cpp_python_version"],
                                            "settings": lc["settings"],
                                            "build": "from source, CMAKE_ARGS in tools/pyref-venv.sh",
                                            "decoding": ("greedy: argmax of llm.scores after llm.eval, no sampler, "
                                                         "no repetition penalty, no EOS stop (llamacpp_eos_at "
                                                         "is where it would have stopped)"),
                                            "tokenize": "llm.tokenize(text, add_bos=False, special=True)",
                                            "token_eos": lc["token_eos"], "token_bos": lc["token_bos"]},
               "transformers": dict(versions, decoding="argmax with KV cache from llama.cpp's prompt ids, f32"),
               "top16": "llamacpp_top16.safetensors: top16_ids int32 / top16_logits f32 [prompt, step, 16], "
                        "sorted by logit, descending",
               "tokenizer_jsonl_cases_where_llamacpp_differs": ndiff,
               "tokenizer_jsonl_cases_where_hf_gguf_differs": nhf,
               "agreement": summary, "prompts": rows},
              open(os.path.join(OUT, "llamacpp_greedy.json"), "w", encoding="utf-8"), ensure_ascii=False)
    print(json.dumps({"tokenizer_cases": len(cases), "tokenizer_llamacpp_diff": ndiff,
                      "tokenizer_hf_gguf_diff": nhf, **summary}))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--llamacpp":
        llamacpp_main(sys.argv[2], sys.argv[3])
    else:
        main()
