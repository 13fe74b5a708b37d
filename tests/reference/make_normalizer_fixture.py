#!/usr/bin/env python3
"""Regenerates the normaliser and WER fixtures that tests/eval_normalizer.rs checks against.

The Rust port in src/eval/normalize must give exactly what the Python reference gives, so this
runs the reference — whisper_normalizer 0.1.15's EnglishTextNormalizer (a copy of openai-whisper's
normalizers/english.py), the one the peer baselines were scored with — over tricky inputs, and
jiwer 4.0 over transcript pairs, and writes what they returned:

  tests/fixtures/normalizer/english_cases.jsonl  {"input", "expected"}
  tests/fixtures/normalizer/wer_cases.jsonl      {"reference", "hypothesis" (both normalised),
                                                  "substitutions", "deletions", "insertions",
                                                  "reference_words"}

Inputs: every reference in shared/corpus/manifest.jsonl, every hypothesis (and streaming
partial) in shared/baselines/*.json, the hand-written cases below and 200 seeded random word
salads; pairs: every (reference, hypothesis) in the baselines, a few hand-written ones and 150
seeded random ones full of alignment ties.

    pip install whisper-normalizer==0.1.15 jiwer==4.0.0
    python3 tests/reference/make_normalizer_fixture.py [--shared PATH]   # default: ../shared
"""

import argparse
import json
import random
from pathlib import Path

import jiwer
from whisper_normalizer.english import EnglishTextNormalizer

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "tests" / "fixtures" / "normalizer"

HAND_WRITTEN = [
    # numbers: cardinals, glue, multipliers, "and"
    "twenty five",
    "one hundred and one",
    "two thousand and twenty",
    "twenty twenty three",
    "nineteen eighty four",
    "fourteen ninety two",
    "twelve hundred",
    "nineteen hundred and ninety nine",
    "two thousand five hundred thousand",
    "eleven hundred thousand",
    "a hundred",
    "a million people",
    "the year two thousand",
    "one two three four",
    "seven eleven",
    "call five five five one two three four",
    # arabic numbers, commas, decimals
    "1,000,000",
    "1,2,3",
    "1 million",
    "1.5 million",
    "1.5 apples",
    "it is 1.0",
    "room 101, floor 3",
    "ip 192.168.0.1",
    "version 2. 5",
    "one point 5",
    "three point one four",
    "point five",
    "ninety nine point nine percent",
    "0 oh",
    "zero zero seven",
    "oh seven",
    "one oh one",
    "double oh seven",
    "triple five",
    "double trouble",
    # ordinals and plurals
    "the 1st",
    "the 3rd of may",
    "3 rd place",
    "42nd street",
    "twenty-first",
    "the twenty first century",
    "first second third fourth fifth",
    "the ninth and the nineth",
    "one hundred thousandth",
    "hundreds of people",
    "thousands",
    "the twenties and the thirtieth",
    "in the 1960s",
    "the nineteen sixties",
    "ones and twos",
    "sixes and sevens",
    "10s of thousands",
    # halves, signs, currency, percent
    "two and a half",
    "one and a half million",
    "and a half hour later",
    "bread and a half loaf",
    "minus forty degrees",
    "plus or minus",
    "negative five",
    "$5.50",
    "$1",
    "$0.07",
    "twenty dollars and seven cents",
    "$20 and 7 cents",
    "fifty cents",
    "five pounds fifty",
    "€10 million",
    "twenty million dollars",
    "£1.5 billion",
    "ten percent",
    "ten per cent",
    "per person",
    "60 percent of 600",
    "hello%",
    "100%",
    "6 × 10 = 60 not 600000 that gives us a 12% chance",
    "six times ten equals sixty not six hundred thousand that gives us a twelve percent chance",
    "١٢ apples",
    "𝟗𝟘 degrees",
    # integers past 64 and 128 bits, fractions times multipliers, odd glue
    "999999999999999999999999999999999999999999 thousand",
    "nine hundred ninety nine decillion and five",
    "0.000001 million",
    "1.23456 thousand",
    "seven hundredths",
    "1.5 hundredth",
    "0 hundred",
    "oh hundred",
    "one twenty first",
    "point oh five",
    "one point five point six",
    "1.2.3.4",
    "192 point 168 point 1 point 1",
    "$1 and 50 cents",
    "$0.075",
    "$05 and 7 cents",
    "fifty percent per cent",
    # contractions and titles
    "I won't, can't, and shouldn't",
    "let's go y'all",
    "I'm gonna wanna kinda sorta",
    "I dunno, gotta go",
    "she's been there, he'd gone, they've done it",
    "it's John's car and we'll see what you'd do",
    "we 're here and they 've left",
    "ma'am, I'ma head out",
    "'cause I said so",
    "rock ’n’ roll, don’t",
    "Mr. Smith and Mrs. Jones met Dr. Who",
    "St. Louis and the 1st st",
    "Capt. Lt. Col. Gen. Jr. Sr. Esq. Prof. Rev. Hon.",
    # British spellings
    "The colour of the centre was grey",
    "We organised a programme for the theatre",
    "travelling analysed behaviour",
    # symbols and diacritics
    "Café naïve résumé façade",
    "Œuvre, smørrebrød, straße, Łódź, þorn, Đorđe",
    "Hello, world! How are you?",
    "em—dash – en dash - hyphen",
    "“quoted” «text» ‘single’",
    "½ and ¼",
    "x² + y²",
    "A&B; C/D @home #hashtag",
    "100°F",
    "end.",
    "e.g. i.e. U.S.A.",
    "3.5 stars.",
    "... ellipsis",
    "tab\tseparated\nnewline",
    "x \x1c y",
    "um\u0301 um² um_ hmm\u200d",
    "İstanbul ΣΟΦΟΣ ﬁne Ⅻ",
    # brackets, parentheses, fillers
    "[MUSIC] Hello there",
    "<unk> word",
    "(laughs) okay (inaudible)",
    "nested [a (b) c] text",
    "unclosed (paren",
    "unclosed [bracket",
    "Hmm, um, I think uh yes",
    "mm mhm mmm",
    "umbrella hummus",
    "Uh-huh",
    # odd shapes
    "",
    "   ",
    "ALL CAPS SHOUTING",
    "Mixed 3rd-party and co-op",
]

# Pairs with ties between alignments, so the S/D/I split (not just the total) is pinned down.
HAND_PAIRS = [
    ("the cat sat on the mat", "the cat sat on the mat"),
    ("the cat sat on the mat", "cat sat on mat"),
    ("a b c d", "b c d e"),
    ("a b a b", "b a b a"),
    ("one two three", "three two one"),
    ("x", ""),
    ("", "hello there"),
]


def random_pairs(count=150, seed=7):
    """Short sentences over a four-word vocabulary: ties everywhere, for the S/D/I split."""
    rng = random.Random(seed)

    def sentence():
        return " ".join(rng.choice("abcd") for _ in range(rng.randint(0, 12)))

    return [(sentence(), sentence()) for _ in range(count)]


RANDOM_VOCABULARY = (
    "one two three five nine ten twelve nineteen twenty forty ninety hundred thousand million "
    "zero oh o first third nineth twentieth hundredth ones sixes twenties thousands and a half "
    "point double triple minus plus dollars dollar cents pounds euros per cent percent the cat "
    "1 2 10 12 100 007 1,000 1.5 3.14 0 0.5 $5 £10 €0.07 $0.5 1st 2nd 1960s 1s - % $ . , "
    "mr. st won't it's we've hmm um colour centre (aside) [noise] é ½ ² × ="
).split()


def random_inputs(count=200, seed=11):
    """Word salad from number words, digits and symbols, to catch state-machine corners."""
    rng = random.Random(seed)

    def salad():
        words = [rng.choice(RANDOM_VOCABULARY) for _ in range(rng.randint(1, 8))]
        separators = [rng.choice([" ", " ", " ", "", "  ", "-", ", ", ". "]) for _ in words]
        return "".join(w + sep for w, sep in zip(words, separators)).strip()

    return [salad() for _ in range(count)]


def strings_in(value, keys):
    """Every string under one of `keys`, anywhere in a JSON value."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in keys and isinstance(item, str):
                yield item
            else:
                yield from strings_in(item, keys)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item, keys)


def inputs(shared):
    manifest = (shared / "corpus" / "manifest.jsonl").read_text().splitlines()
    texts = [json.loads(line)["text"] for line in manifest if line.strip()]
    for path in sorted((shared / "baselines").glob("*.json")):
        texts += strings_in(json.loads(path.read_text()), {"hyp", "pending", "committed"})
    texts += HAND_WRITTEN + random_inputs()
    return list(dict.fromkeys(texts))  # de-duplicated, order kept


def transcript_pairs(shared):
    pairs = []
    for path in sorted((shared / "baselines").glob("*.json")):
        data = json.loads(path.read_text())
        for config in data.get("configs", []):
            pairs += [(clip["ref"], clip["hyp"]) for clip in config["clips"]]
        if isinstance(data.get("ref"), str) and isinstance(data.get("hyp"), str):
            pairs.append((data["ref"], data["hyp"]))
    return pairs


def wer_case(reference, hypothesis):
    out = jiwer.process_words(reference, hypothesis)
    return {
        "reference": reference,
        "hypothesis": hypothesis,
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "reference_words": out.substitutions + out.deletions + out.hits,
    }


def write_jsonl(path, rows):
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    shared = parser.parse_args().shared
    normalize = EnglishTextNormalizer()
    OUT.mkdir(parents=True, exist_ok=True)

    cases = [{"input": s, "expected": normalize(s)} for s in inputs(shared)]
    write_jsonl(OUT / "english_cases.jsonl", cases)

    pairs = [(normalize(r), normalize(h)) for r, h in transcript_pairs(shared)]
    pairs += HAND_PAIRS + random_pairs()
    rows = [wer_case(r, h) for r, h in dict.fromkeys(pairs)]
    write_jsonl(OUT / "wer_cases.jsonl", rows)
    print(f"{len(cases)} normaliser cases, {len(rows)} WER cases written to {OUT}")


if __name__ == "__main__":
    main()
