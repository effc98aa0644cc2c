#!/usr/bin/env python3
"""Writes the WhatsApp export fixtures of tests/fixtures/chat/: for every export variant, the
same conversation rendered the way that platform and locale print it (<variant>.txt), and the
messages it must parse to (<variant>.expected.jsonl, our `whatstyle parse --format jsonl`
contract: ts, author, text, kind). The renderers here are independent of the C parser, so the
test is a real round trip: messages -> export text -> parser -> messages.

Run: python3 tools/make-chat-fixtures.py   (deterministic; the output is committed)
"""
import json
import os

OUT = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "chat")
NNBSP, NBSP, LRM, RLM = "\u202f", "\u00a0", "\u200e", "\u200f"

# (timestamp, author or None, text, kind). Dates include days > 12 so the order is decidable.
# Bodies hold lines that look like headers but are not, ": " inside text, emoji, marks.
def conversation(media, deleted, edited, system_created, system_added):
    return [
        ("2024-01-13T00:00:00", None, system_created, "system"),
        ("2024-01-13T00:05:09", "Ana Souza", "Hi all 👋", "text"),
        ("2024-01-13T12:00:00", "~\u202fBea", "noon exactly: lunch?", "text"),
        ("2024-01-13T12:30:00", "\u202a+44 7700 900123\u202c", "Plan:\n1. 05/01/2024 is the date\n21:03 - meeting\n[note] bring 🍕", "text"),
        ("2024-01-13T23:59:59", "Jean\u2011Luc", "late one", "text"),
        ("2024-01-14T00:00:01", None, system_added, "system"),
        ("2024-02-29T09:03:00", "Ana Souza", media, "media"),
        ("2024-02-29T21:15:30", "~\u202fBea", deleted, "deleted"),
        ("2024-03-01T07:07:07", "Ana Souza", "fixed typo " + edited, "text"),
        ("2023-12-31T23:59:00", "Jean\u2011Luc", "out of order line (clock skew)", "text"),
        ("2024-12-31T23:59:00", "Ana Souza", "Happy new year almost! 🎉🇧🇷👨\u200d👩\u200d👧", "text"),
        ("2025-01-01T00:00:00", "~\u202fBea", "🎆\n\nwith an empty line above", "text"),
    ]

EN = dict(media="<Media omitted>", deleted="This message was deleted", edited="<This message was edited>",
          system_created='Ana Souza created group "Trip 🏖"', system_added="Ana Souza added Jean\u2011Luc")
EN_IOS = dict(media=LRM + "image omitted", deleted=LRM + "This message was deleted.",
              edited=LRM + "<This message was edited>", system_created=EN["system_created"],
              system_added=EN["system_added"])
DE = dict(media="<Medien ausgeschlossen>", deleted="Diese Nachricht wurde gelöscht",
          edited="<Diese Nachricht wurde bearbeitet.>", system_created='Ana Souza hat die Gruppe „Trip 🏖“ erstellt',
          system_added="Ana Souza hat Jean\u2011Luc hinzugefügt")
ES = dict(media="<Multimedia omitido>", deleted="Se eliminó este mensaje", edited="<Se editó este mensaje.>",
          system_created='Ana Souza creó el grupo "Trip 🏖"', system_added="Ana Souza añadió a Jean\u2011Luc")
PT = dict(media="<Mídia oculta>", deleted="Mensagem apagada", edited="<Mensagem editada>",
          system_created='Ana Souza criou o grupo "Trip 🏖"', system_added="Ana Souza adicionou Jean\u2011Luc")
FR = dict(media=LRM + "image absente", deleted=LRM + "Ce message a été supprimé.", edited=LRM + "<Ce message a été modifié>",
          system_created='Ana Souza a créé le groupe « Trip 🏖 »', system_added="Ana Souza a ajouté Jean\u2011Luc")
AR = dict(media="<تم حذف الوسائط>", deleted="تم حذف هذه الرسالة", edited="<This message was edited>",
          system_created='أنشأ Ana Souza المجموعة "Trip 🏖"', system_added="أضاف Ana Souza Jean\u2011Luc")

def parts(ts):
    d, t = ts.split("T")
    y, mo, da = (int(x) for x in d.split("-"))
    h, mi, s = (int(x) for x in t.split(":"))
    return y, mo, da, h, mi, s

def h12(h):
    return (h % 12) or 12, h < 12

AR_DIGITS = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

# Each renderer: ts -> header prefix; "ios" renderers put the author after "] " too.
RENDERERS = {
    # Android, en-US (newer versions: U+202F before AM/PM)
    "android_en_us": lambda y, mo, da, h, mi, s: "%d/%d/%02d, %d:%02d%s%s - " % (mo, da, y % 100, h12(h)[0], mi, NNBSP, "AM" if h12(h)[1] else "PM"),
    # Android, en-GB
    "android_en_gb": lambda y, mo, da, h, mi, s: "%02d/%02d/%d, %02d:%02d - " % (da, mo, y, h, mi),
    # Android, de-DE
    "android_de": lambda y, mo, da, h, mi, s: "%02d.%02d.%02d, %02d:%02d - " % (da, mo, y % 100, h, mi),
    # Android, es-MX: "p. m." with NBSP inside and before
    "android_es": lambda y, mo, da, h, mi, s: "%d/%d/%d, %d:%02d%s%s - " % (da, mo, y, h12(h)[0], mi, NBSP, ("a." if h12(h)[1] else "p.") + NBSP + "m."),
    # Android, pt-BR: no comma between date and time
    "android_pt_br": lambda y, mo, da, h, mi, s: "%02d/%02d/%d %02d:%02d - " % (da, mo, y, h, mi),
    # Android, fi-FI: locale word and dotted time
    "android_fi": lambda y, mo, da, h, mi, s: "%d.%d.%d klo %d.%02d - " % (da, mo, y, h, mi),
    # Android, ar: Eastern Arabic digits, RLM marks, Arabic comma, ص/م
    "android_ar": lambda y, mo, da, h, mi, s: (RLM + "%d" + RLM + "/%d" + RLM + "/%d، %d:%02d %s - ").translate(AR_DIGITS) % (da, mo, y, h12(h)[0], mi, "ص" if h12(h)[1] else "م") if False else
        ((RLM + "%d/%d/%d، %d:%02d ") % (da, mo, y, h12(h)[0], mi)).translate(AR_DIGITS) + ("ص" if h12(h)[1] else "م") + " - ",
    # Android, sv-SE: year first with dashes
    "android_sv": lambda y, mo, da, h, mi, s: "%d-%02d-%02d %02d:%02d - " % (y, mo, da, h, mi),
    # Android, ja-JP: year first with slashes
    "android_ja": lambda y, mo, da, h, mi, s: "%d/%02d/%02d %d:%02d - " % (y, mo, da, h, mi),
    # iOS, en-US: brackets, seconds, U+202F before AM/PM
    "ios_en_us": lambda y, mo, da, h, mi, s: "[%d/%d/%02d, %d:%02d:%02d%s%s] " % (mo, da, y % 100, h12(h)[0], mi, s, NNBSP, "AM" if h12(h)[1] else "PM"),
    # iOS, en-GB
    "ios_en_gb": lambda y, mo, da, h, mi, s: "[%02d/%02d/%d, %02d:%02d:%02d] " % (da, mo, y, h, mi, s),
    # iOS, de-DE
    "ios_de": lambda y, mo, da, h, mi, s: "[%02d.%02d.%02d, %02d:%02d:%02d] " % (da, mo, y % 100, h, mi, s),
    # iOS, fr-FR: locale word between date and time
    "ios_fr": lambda y, mo, da, h, mi, s: "[%02d/%02d/%d à %02d:%02d:%02d] " % (da, mo, y, h, mi, s),
    # iOS, hu-HU: "2024. 01. 13. 0:05:09"
    "ios_hu": lambda y, mo, da, h, mi, s: "[%d. %02d. %02d. %d:%02d:%02d] " % (y, mo, da, h, mi, s),
    # iOS, en-IN style lower-case dotted markers: "a.m."
    "ios_en_in": lambda y, mo, da, h, mi, s: "[%02d/%02d/%02d, %d:%02d:%02d %s] " % (da, mo, y % 100, h12(h)[0], mi, s, "a.m." if h12(h)[1] else "p.m."),
    # time first
    "time_first": lambda y, mo, da, h, mi, s: "[%02d:%02d, %02d/%02d/%d] " % (h, mi, da, mo, y),
}

LANG = {"android_de": DE, "ios_de": DE, "android_es": ES, "android_pt_br": PT, "ios_fr": FR, "android_ar": AR,
        "ios_en_us": EN_IOS, "ios_en_gb": EN_IOS, "ios_hu": EN_IOS, "ios_en_in": EN_IOS}

def render(variant, msgs, newline="\n", bom=False, final_newline=True):
    head = RENDERERS[variant]
    ios = variant.startswith("ios") or variant == "time_first"
    lines = []
    for ts, author, text, kind in msgs:
        prefix = head(*parts(ts))
        if author is None:
            if ios:  # iOS prints group events as if sent by the group, after a LRM
                lines.append(LRM + prefix + "Trip 🏖: " + LRM + text)
            else:
                lines.append(prefix + text)
        else:
            lines.append(prefix + author + ": " + text)
    out = newline.join(l.replace("\n", newline) for l in lines)
    if final_newline:
        out += newline
    return ("\ufeff" if bom else "") + out

# Layouts that print no seconds: the parser reports ":00".
NO_SECONDS = {v for v in RENDERERS if v.startswith("android")} | {"time_first"}

def expected(variant, msgs):
    ios = variant.startswith("ios") or variant == "time_first"
    rows = []
    for ts, author, text, kind in msgs:
        if variant in NO_SECONDS:
            ts = ts[:-2] + "00"
        if author is None and ios:
            text = LRM + text
        rows.append({"ts": ts, "author": author, "text": text, "kind": kind})
    return rows

def write(name, text, rows):
    with open(os.path.join(OUT, name + ".txt"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    with open(os.path.join(OUT, name + ".expected.jsonl"), "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")

def main():
    os.makedirs(OUT, exist_ok=True)
    for variant in RENDERERS:
        msgs = conversation(**LANG.get(variant, EN))
        write(variant, render(variant, msgs), expected(variant, msgs))
    # line-ending and framing variants of one format
    msgs = conversation(**EN)
    write("crlf", render("android_en_gb", msgs, newline="\r\n"), expected("android_en_gb", msgs))
    write("bom_no_final_newline", render("android_en_gb", msgs, bom=True, final_newline=False),
          expected("android_en_gb", msgs))
    mixed = render("android_en_gb", msgs).split("\n")
    text = "".join(l + ("\r\n" if i % 2 else "\n") for i, l in enumerate(mixed[:-1]))
    write("mixed_line_endings", text, expected("android_en_gb", msgs))
    # LRM before every header (iOS does this for media and system lines)
    text = "".join(LRM + l + "\n" for l in render("ios_en_gb", msgs).split("\n")[:-1] if True)
    exp = expected("ios_en_gb", msgs)
    # a LRM before a continuation line is body text: keep it in the body
    fixed = []
    for r in exp:
        r = dict(r)
        r["text"] = r["text"].replace("\n", "\n" + LRM)
        fixed.append(r)
    write("lrm_before_every_line", text, fixed)

if __name__ == "__main__":
    main()
