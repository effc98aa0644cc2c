#!/usr/bin/env python3
"""Generates src/nn/tokenizer_unidata.h: the Unicode tables the C tokenizer needs.

Run: bash tools/pyref-venv.sh && HF_HUB_OFFLINE=1 build/pyref-venv/bin/python tools/gen_tokenizer_unicode.py

Character classes (bits; 16 = NFC quick check not "yes", 32 = numeric for the Digits
pre-tokenizer, i.e. Rust char::is_numeric, probed from the engine): L = \\p{L}, N = \\p{N}, S = \\s, as the regex engine inside Hugging Face
`tokenizers` (Oniguruma) sees them, and W = \\w as the Rust `regex` crate inside it sees it (used only
for added tokens with single_word). All four are read from the engine itself (a Split
pre-tokenizer, or an added token, run over every code point); L and N are cross-checked against
Python's unicodedata: the engine knows a newer Unicode than this Python, so the engine wins.

NFC tables (canonical combining class, full canonical decompositions, primary compositions) come
from Python's unicodedata, then are adjusted to the older Unicode data compiled into `tokenizers`'
NFC normalizer: marks the engine does not reorder get class 0, compositions it does not perform are
dropped. The script verifies the result against the engine on every code point and fails if any
difference is left.
"""
import os
import sys
import unicodedata

from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "nn", "tokenizer_unidata.h")
SEP = "\x01"
ALL = [c for c in range(0x110000) if not (0xD800 <= c < 0xE000)]


def engine_class(pattern):
    """Code points the tokenizers regex engine matches with `pattern` (one char each)."""
    s = "".join(chr(c) for c in ALL)
    pt = pre_tokenizers.Split(Regex(pattern), behavior="removed")
    rest = set("".join(p for p, _ in pt.pre_tokenize_str(s)))
    return {c for c in ALL if chr(c) not in rest}


def engine_word_chars():
    """Code points the engine's single_word check treats as word characters (Rust regex \\w):
    an added token "\\x02" with single_word=True is matched before c only when c is not one."""
    tok = Tokenizer(models.BPE())
    tok.add_tokens([AddedToken("\x02", single_word=True, normalized=False)])
    cps = [c for c in ALL if c not in (2, 0x20)]
    enc = tok.encode("".join("\x02" + chr(c) + " " for c in cps))
    matched = {o[0] for o in enc.offsets}
    word = {c for i, c in enumerate(cps) if 3 * i not in matched}
    print(f"\\w (single_word): {len(word)} code points")
    return word


def engine_numeric_chars():
    """Code points the Digits pre-tokenizer splits off (Rust char::is_numeric, whose Unicode
    version can be newer than the regex engine's)."""
    cps = [c for c in ALL if c != ord("a")]
    pieces = pre_tokenizers.Digits(individual_digits=True).pre_tokenize_str("".join("a" + chr(c) for c in cps))
    num = {ord(p) for p, _ in pieces if len(p) == 1 and p != "a"}
    print(f"is_numeric (Digits): {len(num)} code points")
    return num


def ud_class(prefix):
    return {c for c in ALL if unicodedata.category(chr(c)).startswith(prefix)}


def main():
    bits = {}
    for bit, pat, prefix in ((1, r"\p{L}", "L"), (2, r"\p{N}", "N"), (4, r"\s", None)):
        eng = engine_class(pat)
        if prefix:
            ud = ud_class(prefix)
            if ud - eng:
                sys.exit(f"{pat}: unicodedata has {len(ud - eng)} code points the engine lacks")
            print(f"{pat}: {len(eng)} code points ({len(eng - ud)} newer than unicodedata {unicodedata.unidata_version})")
        else:
            print(f"{pat}: {sorted(hex(c) for c in eng)}")
        for c in eng:
            bits[c] = bits.get(c, 0) | bit
    for c in engine_word_chars():
        bits[c] = bits.get(c, 0) | 8
    for c in engine_numeric_chars():
        bits[c] = bits.get(c, 0) | 32


    # NFC data from unicodedata, adjusted to the engine
    nfc = normalizers.NFC()
    ccc = {c: unicodedata.combining(chr(c)) for c in ALL if unicodedata.combining(chr(c))}
    marks = sorted(ccc)
    probe = ["x" + chr(c) + "\u0334" if ccc[c] > 1 else "x\u0301" + chr(c) for c in marks]
    got = nfc.normalize_str(SEP.join(probe)).split(SEP)
    stale = [c for i, c in enumerate(marks) if got[i] != unicodedata.normalize("NFC", probe[i])]
    for c in stale:
        del ccc[c]
    print(f"ccc: {len(ccc)} marks ({len(stale)} unknown to the engine get class 0)")

    def is_hangul(c):
        return 0xAC00 <= c < 0xAC00 + 11172

    decomp = {}
    for c in ALL:
        if is_hangul(c):
            continue
        d = unicodedata.normalize("NFD", chr(c))
        if d != chr(c):
            decomp[c] = [ord(x) for x in d]
    comp = {}
    for c in ALL:
        if is_hangul(c):
            continue
        d = unicodedata.decomposition(chr(c))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        if len(parts) == 2 and unicodedata.normalize("NFC", chr(c)) == chr(c):
            comp[(parts[0], parts[1])] = c
    # drop what the engine does not compose / decompose
    keys = sorted(comp)
    segs = ["".join(chr(x) for x in decomp.get(comp[k], list(k))) for k in keys]
    got = nfc.normalize_str(SEP.join(segs)).split(SEP)
    for i, k in enumerate(keys):
        if got[i] != unicodedata.normalize("NFC", segs[i]):
            print(f"composition {hex(k[0])}+{hex(k[1])} -> {hex(comp[k])} unknown to the engine: dropped")
            del decomp[comp[k]]
            del comp[k]

    # bit 16: the NFC quick check is not "yes" (a mark, a character NFC changes, or one that can
    # compose with the character before it); NFC leaves runs without such characters alone
    seconds = {b for (_, b) in comp} | set(range(0x1161, 0x1176)) | set(range(0x11A8, 0x11C3))
    for c in ALL:
        if c in ccc or c in seconds or unicodedata.normalize("NFC", chr(c)) != chr(c):
            bits[c] = bits.get(c, 0) | 16
    # two-level table: stage1[cp >> 8] -> block, stage2[block * 256 + (cp & 255)]
    blocks, index, stage1 = [], {}, []
    for hi in range(0x1100):
        blk = tuple(bits.get((hi << 8) | lo, 0) for lo in range(256))
        if blk not in index:
            index[blk] = len(blocks)
            blocks.append(blk)
        stage1.append(index[blk])

    write(stage1, blocks, ccc, decomp, comp)
    verify(ccc, decomp, comp)


def write(stage1, blocks, ccc, decomp, comp):
    out = []
    w = out.append
    w("/* Generated by tools/gen_tokenizer_unicode.py -- do not edit.")
    w(f" * Character classes of the tokenizers regex engine; NFC data from Unicode {unicodedata.unidata_version}")
    w(" * adjusted to the tokenizers NFC normalizer. Included only by tokenizer_unicode.c. */")
    w("#ifndef WS_NN_TOKENIZER_UNIDATA_H\n#define WS_NN_TOKENIZER_UNIDATA_H\n\n#include <stdint.h>\n")
    w(f"static const uint16_t uni_stage1[{len(stage1)}] = {{")
    for i in range(0, len(stage1), 16):
        w("    " + ",".join(str(x) for x in stage1[i:i + 16]) + ",")
    w("};\n")
    w(f"static const uint8_t uni_stage2[{len(blocks) * 256}] = {{")
    for b in blocks:
        for i in range(0, 256, 32):
            w("    " + ",".join(str(x) for x in b[i:i + 32]) + ",")
    w("};\n")
    items = sorted(ccc.items())
    w(f"#define UNI_N_CCC {len(items)}")
    w("static const struct { uint32_t cp; uint8_t ccc; } uni_ccc[UNI_N_CCC] = {")
    for i in range(0, len(items), 8):
        w("    " + " ".join(f"{{0x{c:X},{k}}}," for c, k in items[i:i + 8]))
    w("};\n")
    items = sorted(decomp.items())
    pool = []
    w(f"#define UNI_N_DECOMP {len(items)}")
    w("static const struct { uint32_t cp; uint16_t off; uint8_t len; } uni_decomp[UNI_N_DECOMP] = {")
    rows = []
    for c, d in items:
        rows.append(f"{{0x{c:X},{len(pool)},{len(d)}}},")
        pool.extend(d)
    for i in range(0, len(rows), 6):
        w("    " + " ".join(rows[i:i + 6]))
    w("};\n")
    w(f"static const uint32_t uni_decomp_pool[{len(pool)}] = {{")
    for i in range(0, len(pool), 10):
        w("    " + ",".join(f"0x{x:X}" for x in pool[i:i + 10]) + ",")
    w("};\n")
    items = sorted(comp.items())
    w(f"#define UNI_N_COMP {len(items)}")
    w("static const struct { uint32_t a, b, c; } uni_comp[UNI_N_COMP] = {")
    for i in range(0, len(items), 4):
        w("    " + " ".join(f"{{0x{a:X},0x{b:X},0x{c:X}}}," for (a, b), c in items[i:i + 4]))
    w("};\n")
    w("#endif")
    with open(OUT, "w") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {OUT}")


def verify(ccc, decomp, comp):
    """Runs a Python model of the C NFC algorithm over the tables and compares with the engine."""
    SB, LB, VB, TB, NL, NV, NT = 0xAC00, 0x1100, 0x1161, 0x11A7, 19, 21, 28

    def nfc(s):
        d = []
        for ch in s:
            c = ord(ch)
            if SB <= c < SB + 11172:
                i = c - SB
                d += [LB + i // (NV * NT), VB + (i % (NV * NT)) // NT]
                if i % NT:
                    d.append(TB + i % NT)
            else:
                d += decomp.get(c, [c])
        i = 1
        while i < len(d):  # stable insertion sort of non-starters
            j = i
            while j > 0 and ccc.get(d[j], 0) and ccc.get(d[j - 1], 0) > ccc.get(d[j], 0):
                d[j], d[j - 1] = d[j - 1], d[j]
                j -= 1
            i += 1
        out, st, last = [], -1, -1
        for c in d:
            k = ccc.get(c, 0)
            if st >= 0 and (last < k or (last == 0 and len(out) - 1 == st)):
                a = out[st]
                if LB <= a < LB + NL and VB <= c < VB + NV:
                    out[st] = SB + ((a - LB) * NV + (c - VB)) * NT
                    continue
                if SB <= a < SB + 11172 and (a - SB) % NT == 0 and TB < c < TB + NT:
                    out[st] = a + c - TB
                    continue
                p = comp.get((a, c))
                if p is not None:
                    out[st] = p
                    continue
            if k == 0:
                st = len(out)
            last = k
            out.append(c)
        return "".join(chr(c) for c in out)

    cases = [chr(c) for c in ALL if c != 1]
    cases += ["".join(chr(x) for x in d) for d in decomp.values()]
    cases += ["x" + chr(c) + "\u0334" for c in ccc] + ["x\u0301" + chr(c) for c in ccc]
    cases += ["e\u0301\u0327", "\u1100\u1161\u11a8", "a\u0323\u0302", "\u0041\u030a\u0301"]
    n = normalizers.NFC()
    got = n.normalize_str(SEP.join(cases)).split(SEP)
    bad = [c for i, c in enumerate(cases) if got[i] != nfc(c)]
    if bad:
        sys.exit(f"NFC model differs from the engine on {len(bad)} cases, e.g. {[hex(ord(x)) for x in bad[0]]}")
    print(f"NFC tables verified against the engine on {len(cases)} strings")


if __name__ == "__main__":
    main()
