#!/usr/bin/env python3
"""Writes the WhatsApp export fixtures of tests/fixtures/chat/: for every export variant, the
same conversation rendered the way that platform and locale print it (<variant>.txt), and the
messages it must parse to (<variant>.expected.jsonl, our `whatstyle parse --format jsonl`
contract: ts, author, text, kind, and "edited" where a marker ends the body). The renderers here
are independent of the C parser, so the test is a real round trip: messages -> export text ->
parser -> messages. Also one export per language and platform of the phrase table
src/chat/locale_strings.tsv (lang/<lang>_<platform>.txt, every row of the table in it) and the
traps of issue 14 (trap_*.txt).

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
        row = {"ts": ts, "author": author, "text": text, "kind": kind}
        if text.startswith("fixed typo "):   # the conversation's edited message
            row["edited"] = True
        rows.append(row)
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

# ---------------------------------------------------------------- every language of the table
# One export per language and platform of src/chat/locale_strings.tsv (tests/fixtures/chat/lang/):
# the same short conversation, then one message per row of the table for that language and
# platform (placeholders, deletion notices, edited markers, group events with their
# placeholders filled), so every row of the table is parsed back by the tests.

TABLE = os.path.join(os.path.dirname(__file__), "..", "src", "chat", "locale_strings.tsv")
MEDIA_KINDS = {"media", "image", "video", "audio", "sticker", "gif", "document", "contact"}
DELETED_KINDS = {"deleted", "deleted_you", "deleted_admin"}
EVENT_KINDS = {"joined_link", "subject", "created", "added", "left", "removed", "icon", "security_code",
               "disappearing", "description"}
OPENING_QUOTES = ('"', "'", "\u201c", "\u201e", "\u00ab", "\u300c")
NAMES = ["Ana Souza", "~\u202fBea", "Jean\u2011Luc"]

def read_table():
    rows = []
    with open(TABLE, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            lang, platform, kind, text, source = line.rstrip("\n").split("\t")
            rows.append((lang, platform, kind, text))
    return rows

def fill(template):
    """Placeholders: a quoted one is a group subject (holding ": ", the trap), others names."""
    subjects = iter(["Trip: 2024 \U0001f3d6", "Trip: 2025"])
    def one(m):
        quoted = m.start() > 0 and template[:m.start()].endswith(OPENING_QUOTES)
        return next(subjects, "Trip: 2026") if quoted else ("Jean\u2011Luc" if m.group(1) != "1" else "Omar Haddad")
    import re
    return re.sub(r"%(\d)", one, template)

def language_messages(rows):
    """(ts, author, text, kind, edited) for one language and platform."""
    ios = rows[0][1] == "ios"
    mark = LRM if ios else ""
    out = [("hi all \U0001f44b", "text"), ("noon exactly: lunch?", "text"),
           ("Plan:\n1. 05/01/2024 is the date\n21:03 - meeting", "text")]
    for lang, platform, kind, text in rows:
        if kind in MEDIA_KINDS:
            out.append((mark + text, "media"))
        elif kind in DELETED_KINDS:
            out.append((mark + text, "deleted"))
        elif kind == "attached":
            out.append((mark + text.replace("%1", "00000012-PHOTO-2024-01-13-10-00-00.jpg"), "media"))
        elif kind == "file_attached":
            out.append((text.replace("%1", "IMG-20240113-WA0001.jpg"), "media"))
        elif kind == "edited":
            out.append(("fixed typo " + mark + text, "edited"))
            # exports write a marker with and without a dot before its ">": both are markers
            other = text[:-2] + ">" if text.endswith(".>") else text[:-1] + ".>"
            out.append(("fixed typo again " + mark + other, "edited"))
        elif kind in EVENT_KINDS:
            out.append((fill(text), "event"))
    out.append(("bye \U0001f389", "text"))
    msgs = []
    minute = 8 * 60
    for i, (text, kind) in enumerate(out):
        day = 13 + minute // 1440
        ts = "2024-01-%02dT%02d:%02d:%02d" % (day, minute // 60 % 24, minute % 60, (i * 7) % 60)
        minute += 7
        if kind == "event":
            msgs.append((ts, None, text, "system", False))
        else:
            msgs.append((ts, NAMES[i % len(NAMES)], text, "text" if kind == "edited" else kind, kind == "edited"))
    return msgs

def render_language(platform, msgs):
    head = RENDERERS["android_en_gb" if platform == "android" else "ios_en_gb"]
    lines = []
    for ts, author, text, kind, edited in msgs:
        prefix = head(*parts(ts))
        if author is None:
            lines.append(LRM + prefix + "Trip \U0001f3d6: " + LRM + text if platform == "ios" else prefix + text)
        elif platform == "ios" and kind in ("media", "deleted"):
            lines.append(LRM + prefix + author + ": " + text)   # iOS marks these lines
        else:
            lines.append(prefix + author + ": " + text)
    return "".join(l + "\n" for l in lines)

def expected_language(platform, msgs):
    rows = []
    for ts, author, text, kind, edited in msgs:
        if platform == "android":
            ts = ts[:-2] + "00"
        if author is None and platform == "ios":
            text = LRM + text
        row = {"ts": ts, "author": author, "text": text, "kind": kind}
        if edited:
            row["edited"] = True
        rows.append(row)
    return rows

def write_languages():
    by = {}
    for row in read_table():
        by.setdefault((row[0], row[1]), []).append(row)
    outdir = os.path.join(OUT, "lang")
    os.makedirs(outdir, exist_ok=True)
    for name in os.listdir(outdir):
        os.remove(os.path.join(outdir, name))
    for (lang, platform), rows in sorted(by.items()):
        msgs = language_messages(rows)
        write(os.path.join("lang", "%s_%s" % (lang, platform)), render_language(platform, msgs),
              expected_language(platform, msgs))
    return len({k[0] for k in by})

# ---------------------------------------------------------------- the traps of issue 14

def write_traps():
    # 1. group events whose text holds ": " (a subject), among people who quote such a line
    msgs = [("2024-01-13T09:00:00", "Ana Souza", "morning", "text"),
            ("2024-01-13T09:01:00", None, 'Ana Souza changed the subject from "Trip: 2024" to "Trip: 2025"', "system"),
            ("2024-01-13T09:02:00", None, 'Jean\u2011Luc created group "Plans: summer"', "system"),
            ("2024-01-13T09:03:00", "Jean\u2011Luc", 'Ana Souza changed the subject from "Trip: 2024" to "x" (quoted)', "text"),
            ("2024-01-13T09:04:00", None, "Omar megváltoztatta a témát erről: \"a\", erre: \"b\"", "system"),
            ("2024-01-13T09:05:00", None, "Omar əlavə etdi: Ana Souza", "system"),
            ("2024-01-13T09:06:00", "O'Brien", 'he said "hi": ok', "text"),
            ("2024-01-13T09:07:00", "Ana Souza", "done", "text")]
    rows = [(ts, a, t, k) for ts, a, t, k in msgs]
    write("trap_subject_colon", render("android_en_gb", rows), expected("android_en_gb", rows))
    # 2. continuation lines that look like headers of other layouts (the file's is en-GB Android)
    body = ("forwarding what they sent:\n13.01.2024, 10:00 - Bob: from a German phone\n"
            "[13/01/2024, 10:00:00] Bob: from an iPhone\n1/13/24, 10:00\u202fAM - Bob: from a US phone\n"
            "2024-01-13 10:00 - Bob: from a Swedish one")
    msgs = [("2024-01-13T%02d:%02d:00" % (9 + i // 60, i % 60), NAMES[i % 3], "message %d" % i, "text")
            for i in range(60)]
    msgs.insert(5, ("2024-01-13T09:05:30", "Ana Souza", body, "text"))
    msgs = [(ts[:-2] + "00", a, t, k) for ts, a, t, k in msgs]
    write("trap_foreign_header", render("android_en_gb", msgs), expected("android_en_gb", msgs))
    # 3. iOS media lines in a time-first layout keep their author, in several languages
    by = {}
    for lang, platform, kind, text in read_table():
        if platform == "ios" and (kind in MEDIA_KINDS or kind == "attached"):
            by.setdefault(lang, []).append(text.replace("%1", "00000013-PHOTO-2024-01-13-10-00-00.jpg"))
    msgs = [("2024-01-13T09:00:00", "Ana Souza", "media in many languages follows", "text")]
    for i, lang in enumerate(["pl", "ru", "ja", "ar", "he", "ko", "th", "hi"]):
        for j, text in enumerate(by[lang][:3]):
            msgs.append(("2024-01-13T%02d:%02d:00" % (10 + i, j), NAMES[(i + j) % 3], LRM + text, "media"))
    lines = []
    for ts, author, text, kind in msgs:
        prefix = RENDERERS["time_first"](*parts(ts))
        lines.append((LRM if kind == "media" else "") + prefix + author + ": " + text)
    write("trap_ios_time_first_media", "".join(l + "\n" for l in lines),
          [{"ts": ts, "author": a, "text": t, "kind": k} for ts, a, t, k in msgs])
    # 4. a placeholder in a language the table lacks: several people send it many times
    placeholder = "<Aŭdvidaĵo forlasita>"
    msgs = []
    for i in range(14):
        text, kind = (placeholder, "media") if i % 2 else ("vorto %d" % i, "text")
        msgs.append(("2024-01-13T09:%02d:00" % i, NAMES[i % 3], text, kind))
    msgs.append(("2024-01-13T09:30:00", "Ana Souza", "<b>", "text"))
    msgs.append(("2024-01-13T09:31:00", "Ana Souza", "<once only, no placeholder>", "text"))
    # and its "edited" marker, the same "<…>" ending of many messages by several people
    edited = []
    for i in range(6):
        msgs.append(("2024-01-13T10:%02d:00" % i, NAMES[i % 3], "korektita %d <Mesaĝo redaktita>" % i, "text"))
        edited.append(len(msgs) - 1)
    msgs.append(("2024-01-13T10:30:00", "Ana Souza", "see <this>", "text"))
    rows = expected("android_en_gb", msgs)
    for i in edited:
        rows[i]["edited"] = True
    write("trap_unknown_language_media", render("android_en_gb", msgs), rows)

if __name__ == "__main__":
    main()
    print("%d languages" % write_languages())
    write_traps()
