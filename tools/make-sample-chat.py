#!/usr/bin/env python3
"""Generates samples/group_chat.txt: a WhatsApp group export (Android, en-GB layout) of four
friends who write in clearly different styles, for `whatstyle demo` and the style tests.

- Maya: all lower case, no full stops, short bursts of several bubbles, many emoji, "lol", "omg", "u".
- Henrik: formal full sentences, capitalised, commas and full stops, long messages, no emoji.
- Tomás: Spanish-English mix, "jajaja", lots of exclamation marks!!, "amigo", 🔥 and 💪.
- Priya: questions and "???", CAPITALS for emphasis, "haha", the odd 🙏 or ✨.

Deterministic (fixed seed); run `python3 tools/make-sample-chat.py` to rebuild the committed file.
"""
import datetime
import os
import random

OUT = os.path.join(os.path.dirname(__file__), "..", "samples", "group_chat.txt")
rng = random.Random(20241113)

TOPICS = ["dinner", "the hike", "the concert", "football", "the new job", "the trip to Lisbon",
          "the flat", "the game", "coffee", "the party", "the weather", "the movie", "work",
          "the birthday", "the gym", "the exam", "the train", "the beach", "the recipe", "the book"]
PLACES = ["the station", "Marco's", "the park", "the old bar", "the cinema", "my place", "the café"]
TIMES = ["7", "8", "half 6", "noon", "9", "after work", "tomorrow morning"]


def maya(ctx):
    t, p, h = rng.choice(TOPICS), rng.choice(PLACES), rng.choice(TIMES)
    emo = rng.choice(["😂", "🙈", "😭", "💀", "✨", "🥹", "😂😂", "🙈🙈", "❤️", "😅"])
    opts = [
        [f"omg {t} {emo}", f"u coming??", rng.choice(["lol", "pls say yes", "i need this"])],
        [f"lol same {emo}", "i cant even"],
        [f"wait what {emo}", f"who said {t} was cancelled"],
        [f"{emo}{emo}", f"ok ok im in", f"see u at {p}"],
        [f"ngl {t} was kinda iconic {emo}"],
        [f"im literally at {p} rn", f"where r u {emo}"],
        [f"nooo {emo}", "why would u do that"],
        [f"yesss", f"{h}?? {emo}"],
        [f"brb {emo}"],
        [f"lmaooo {emo}", f"ur so dramatic"],
        [f"can we talk about {t} {emo}"],
        [f"omg yes", f"ill bring snacks {emo}"],
    ]
    return rng.choice(opts)


def henrik(ctx):
    t, p, h = rng.choice(TOPICS), rng.choice(PLACES), rng.choice(TIMES)
    opts = [
        [f"Good evening, everyone. Regarding {t}: I would suggest we meet at {p} at {h}, if that suits you all."],
        [f"Thank you for organising this. I shall be there, although I may arrive a few minutes late."],
        [f"I am afraid I cannot attend. Work has been rather demanding this week. Please do enjoy yourselves."],
        [f"That is an excellent point. However, we should also consider the cost before we decide."],
        [f"Could someone please confirm the time? I have {h} in my calendar."],
        [f"I have read the article about {t}. It was well written, though somewhat optimistic in its conclusions."],
        [f"Certainly. I will bring a bottle of wine and some bread."],
        [f"Apologies for the late reply. I was travelling and had no reception."],
        [f"In my opinion, {t} was rather overrated. Nevertheless, I enjoyed the company."],
        [f"Please let me know if I can help with anything. Best regards, Henrik."],
        [f"Indeed. I agree entirely."],
        [f"Noted. I will check my schedule and reply by tomorrow."],
    ]
    return rng.choice(opts)


def tomas(ctx):
    t, p, h = rng.choice(TOPICS), rng.choice(PLACES), rng.choice(TIMES)
    e = rng.choice(["🔥", "💪", "🔥🔥", "⚽", "🍻", "💪💪"])
    opts = [
        [f"jajaja vamos!!! {e}", f"{t} is going to be épico amigo"],
        [f"claro que sí!! count me in {e}"],
        [f"no manches!! jajaja"],
        [f"amigo where are you??", f"we are at {p} ya!!"],
        [f"qué bueno!!! {e}"],
        [f"jajajaja no way!!", f"that's so loco"],
        [f"vamos vamos!! {h} at {p} {e}"],
        [f"hermano that was INCREÍBLE!!! {e}"],
        [f"ay no... I forgot {t} jajaja", "lo siento amigos!!"],
        [f"dale!! {e}"],
        [f"buenísimo!! I'll bring the cervezas {e}"],
        [f"jajaja sí sí!!"],
    ]
    return rng.choice(opts)


def priya(ctx):
    t, p, h = rng.choice(TOPICS), rng.choice(PLACES), rng.choice(TIMES)
    e = rng.choice(["🙏", "✨", "", "", ""])
    opts = [
        [f"wait, is {t} still happening???"],
        [f"haha okay but WHO is booking {p}?? {e}".strip()],
        [f"Can we PLEASE decide on a time? {h} works for me haha"],
        [f"Did anyone check the weather for {t}??"],
        [f"haha that's SO true"],
        [f"Okay so what's the plan?? {e}".strip()],
        [f"I'm SO excited for {t} haha {e}".strip()],
        [f"Hmm, are we sure about {p}? Last time it was PACKED"],
        [f"Who's driving??"],
        [f"haha no WAY, really??"],
        [f"Sorry, just saw this!! What did I miss??"],
        [f"Wait WHAT?? haha"],
    ]
    return rng.choice(opts)


PEOPLE = {
    "Maya": (maya, (10, 26)),       # active late
    "Henrik": (henrik, (7, 21)),    # early bird
    "Tomás": (tomas, (12, 25)),
    "Priya": (priya, (8, 23)),
}


def main():
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    t = datetime.datetime(2024, 1, 13, 18, 2)
    lines = [t.strftime("%d/%m/%Y, %H:%M") + ' - Priya created group "Weekend crew 🎉"',
             t.strftime("%d/%m/%Y, %H:%M") + " - Priya added Maya, Henrik and Tomás"]
    names = list(PEOPLE)
    last = None
    for conv in range(330):
        # a conversation: 6-20 turns, then hours to a day or two of silence
        t += datetime.timedelta(minutes=rng.randint(180, 2600))
        if t.hour < 8:  # nobody starts a conversation before 8
            t = t.replace(hour=rng.randint(8, 11))
        turns = rng.randint(6, 20)
        for _ in range(turns):
            who = rng.choice([n for n in names if n != last])
            fn, (start, end) = PEOPLE[who]
            h = t.hour + (24 if t.hour < 4 else 0)
            if not (start <= h < end) and rng.random() < 0.7:
                continue
            for k, bubble in enumerate(fn(None)):
                t += datetime.timedelta(seconds=rng.randint(5, 50) if k else rng.randint(40, 900))
                if rng.random() < 0.02:
                    bubble = "<Media omitted>"
                lines.append(t.strftime("%d/%m/%Y, %H:%M") + f" - {who}: {bubble}")
            last = who
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{OUT}: {len(lines)} lines")


if __name__ == "__main__":
    main()
