"""IFEval: every instruction type against hand-made cases (most taken from the official tests),
the strict/loose modes of evaluation_lib, label parsing, and the real IFEval prompts."""

import json

import pytest

from rlvr.rewards import run_verifier
from rlvr.rewards.ifeval import INSTRUCTIONS, follows, loose_variants, parse_label
from rlvr.rewards.ifeval_util import count_sentences, count_words, detect_language, sentences, word_tokenize

BULLETS = """
  A Markdown bullet point is a way of formatting text to create a list. To
  create a bullet point, start each line with an asterisk (*). For example:
  * This is a bullet point.
  *(no space required)Another bullet point.
  * (no newline ending required)Another bullet point.
  markdown bullet points are often used to create to-do lists or to list items
  in a step-by-step guide."""
HIGHLIGHTS = """
  There is allowed to be *two different* highlighted *sections in the same*
  line. **This is also true** for **double markdown highlights.**
  """
PARAGRAPH_WORDS = """
  Wow this is a very long response.

  I can't believe there is more than three paragraphs.

  "Really?! more than three? No way!"

  I can't believe it but I guess I am living proof.

  Haha, you go that right."""
FORBIDDEN = """
  The Nazis came to power in 1933 through a combination of legal and illegal
  means. By 1934, Hitler had become dictator of Germany.
  """

# (instruction id, kwargs, response, expected verdict in strict mode)
CASES = [
    ("keywords:existence", {"keywords": ["romantic", "river", "Mona Lisa"]},
     "The romantic River Seine runs past the Louvre, where the Mona Lisa resides.", True),
    ("keywords:existence", {"keywords": ["romantic", "river", "Mona Lisa"]}, "Paris has romantic river cruises.", False),
    ("keywords:frequency", {"keyword": "  keyword ", "frequency": 4, "relation": "less than"},
     "keyword, Keyword, KEYWORD", True),
    ("keywords:frequency", {"keyword": "KEYWORD", "frequency": 4, "relation": "at least"},
     "*keyword\n*Keyword\n*KEYWORD", False),
    ("keywords:forbidden_words", {"forbidden_words": ["HOUSE", "POWER", "BECOME"]}, FORBIDDEN, False),
    ("keywords:forbidden_words", {"forbidden_words": ["GENE", "TRANSFORM"]}, "Generative transformers are genes?", True),
    ("keywords:letter_frequency", {"letter": "T", "let_frequency": 4, "let_relation": "at least"},
     "There is the T. Four T's.", True),
    ("keywords:letter_frequency", {"letter": "p", "let_frequency": 4, "let_relation": "at least"}, "asdfghjkl!!aA", False),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 4, "let_relation": "at least"},
     "#one #two #three #four", True),
    ("language:response_language", {"language": "es"}, "Desayunamos en McDonald's hoy", True),
    ("language:response_language", {"language": "en"}, "Today we visit the Louvre", True),
    ("language:response_language", {"language": "fr"}, "This reply is written in plain English words.", False),
    ("language:response_language", {"language": "fr"}, "12345 !!!", True),  # undetectable counts as followed
    ("length_constraints:number_sentences", {"num_sentences": 4, "relation": "less than"},
     "xx,x. xx,x! xx/x. x{x}x?", False),
    ("length_constraints:number_sentences", {"num_sentences": 5, "relation": "less than"},
     "xxxx. xx,x! xxxx. x(x)x?", True),
    ("length_constraints:number_sentences", {"num_sentences": 4, "relation": "at least"},
     "xxxx. xx,x! xx|x. x&x x?", True),
    ("length_constraints:number_sentences", {"num_sentences": 5, "relation": "at least"},
     "xx-x. xx,x! xx}x. x,xx?", False),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 3},
     "\n          ***\n  paragraph 1\n          ***\n      paragraph 2\n          ***\n      paragraph 3", True),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2},
     "\n  paragraph 1\n          ***\n      paragraph 2\n          ***\n          ***", False),
    ("length_constraints:number_words", {"num_words": 8, "relation": "less than"},
     "\n  d3sCRi7 lArge lAnguagE M0del w1tH 20 w0RdS.", True),
    ("length_constraints:number_words", {"num_words": 16, "relation": "less than"},
     "L4RGE L4NGU4GE M0DEL: AI syst3m th4t und3rstands, g3n3r4tes, or tr4nsforms\n"
     "l4ngu4g3 b4s3d on pr3vious l3arning & d4t4.", False),
    ("length_constraints:number_words", {"num_words": 16, "relation": "at least"},
     "L4RGE L4NGU4GE M0DEL: AI syst3m th4t und3rstands, g3n3r4tes, or tr4nsforms\n"
     "l4ngu4g3 b4s3d on pr3vious l3arning & d4t4.", True),
    # 5 words: NLTK's RegexpTokenizer(r"\w+") runs on the `regex` engine, where vowel signs and viramas
    # (combining marks) are word characters; the stdlib `re` splits this into 10 runs.
    ("length_constraints:number_words", {"num_words": 6, "relation": "less than"}, "हमने बाजार में नाश्ता किया", True),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 5, "nth_paragraph": 3, "first_word": "Really"},
     PARAGRAPH_WORDS, True),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 3, "nth_paragraph": 2, "first_word": "I"},
     "\n  paragraph 1\n\n  fail paragraph 2\n\n  paragraph 3", False),
    ("detectable_content:number_placeholders", {"num_placeholders": 7},
     "My [adjective] [noun] is [adjective] [noun]. I [verb] and [verb].", False),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], see [address].", True),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"},
     "If the area is one.\n  p.p.s what if the entire response was lower case letters?\n  ", True),
    ("detectable_content:postscript", {"postscript_marker": "P.S."},
     "The mysteries of space.\n  P. S. Sometimes there are even spaces between P. and S..\n", True),
    ("detectable_content:postscript", {"postscript_marker": "PS:"}, "Text.\n\nP.S. I hope this helps.", False),
    ("detectable_format:number_bullet_lists", {"num_bullets": 3}, BULLETS, True),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, BULLETS, False),
    ("detectable_format:constrained_response", {}, "\n My answer is no.\n", True),
    ("detectable_format:constrained_response", {}, "My answer is probably no.", False),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 4}, HIGHLIGHTS, True),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2},
     "*Finite difference methods\n*Finite element methods*\n*Boundary element methods", False),
    ("detectable_format:multiple_sections", {"section_spliter": "SECTION", "num_sections": 2},
     "SECTION 1\n  [content of section 1]\n  SECTION 2\n  [content of section 2]", True),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 3},
     "Mark each with Section X, such as:\n  Section 1\n  [one]\n  Section 2\n  [two]", False),
    ("detectable_format:json_format", {}, '```json\n{"a": [1, 2]}\n```', True),
    ("detectable_format:json_format", {}, "{'a': 1}", False),
    ("detectable_format:title", {}, "\n  <<Song of Joy>>\n  La la la. Happy song.\n  ", True),
    ("detectable_format:title", {}, "\n  <<This is not a title.\n  This is a paragraph.>>\n  ", False),
    ("combination:two_responses", {}, "\n  ******\n  Response 1\n  ******\n  Response 2\n  ******\n  ", True),
    ("combination:two_responses", {}, "\n  This is response 1.\n  ******\n  This is response 1.\n  ", False),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a CL description."},
     "Write a CL description. Hi, Le and TJ, please\n  check this out. Thanks.\n  ", True),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a CL description."},
     "Hi, Le and TJ. Write a CL description. Thanks.", False),
    ("startend:end_checker", {"end_phrase": "\n  Any more questions?\n  "}, "\n  The answer is 7. Any more questions?\n  ", True),
    ("startend:end_checker", {"end_phrase": "This will fail."}, "\n  This will fail. Paris is cool.\n  ", False),
    ("change_case:capital_word_frequency", {"capital_frequency": 3, "capital_relation": "at least"},
     "\n  HERE there are THREE FUlly CAPITAL words.\n  ", True),
    ("change_case:capital_word_frequency", {"capital_frequency": 4, "capital_relation": "less than"},
     "\n  THERE are Four FULLY CAPITAL WORDS. Many Others Are Only Partially So.\n  ", False),
    ("change_case:english_capital", {}, "\n  THIS IS AN ENGLISH SENTENCE. EVERY LETTER IS CAPITALIZED!!! AMAZING.\n  ", True),
    ("change_case:english_capital", {}, "\n  Every Word Is Capitalized.\n  ", False),
    ("change_case:english_lowercase", {}, "\n  every letter is lowercase.\n  ", True),
    ("change_case:english_lowercase", {}, "\n  Almost every letter is lowercase.\n  ", False),
    ("punctuation:no_comma", {}, "\n  Every sentence is short. There is no need for a comma.\n  ", True),
    ("punctuation:no_comma", {}, "\n  Since the start of time, people have always found a way to punctuate.\n  ", False),
    ("startend:quotation", {}, '\n  "This entire message is wrapped in double quotation marks."\n  ', True),
    ("startend:quotation", {}, '\n  "This message is wrapped in double quotation marks." But not everything.\n  ', False),
]  # fmt: skip


def test_every_instruction_type_has_cases():
    assert len(INSTRUCTIONS) == 25
    for instruction_id in INSTRUCTIONS:
        verdicts = {expected for i, _, _, expected in CASES if i == instruction_id}
        assert verdicts == {True, False}, f"{instruction_id} needs a following and a failing case"


@pytest.mark.parametrize(
    ("instruction_id", "kwargs", "response", "expected"),
    CASES,
    ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)],
)
def test_instruction_verdicts(instruction_id, kwargs, response, expected):
    label = {"instruction_id_list": [instruction_id], "kwargs": [kwargs]}
    result = run_verifier("ifeval", response, label)
    assert result.details["instructions"] == [{"id": instruction_id, "followed": expected}]
    assert result.score == float(expected)


def test_util_hand_values():
    assert sentences("Dr. Smith went home at 5 p.m. He was tired. Really? Yes.") == [
        "Dr. Smith went home at 5 p.m.",
        "He was tired.",
        "Really?",
        "Yes.",
    ]
    assert count_sentences("xx,x. xx,x! xx/x. x{x}x?") == 4
    assert count_words("it's a well-known fact_1") == 6  # it, s, a, well, known, fact_1
    # Unicode's word class (the `regex` engine NLTK's RegexpTokenizer uses), not the stdlib re's:
    assert count_words("હમને બજારમાં નાસ્તો") == 3  # combining vowel signs join their letters
    assert count_words("re\u0301sume\u0301 done") == 2  # e + combining acute accent: one word
    assert count_words("x² ½") == 1  # superscripts and fractions are not word characters
    assert word_tokenize("HERE there, THREE.") == ["HERE", "there", ",", "THREE", "."]
    assert detect_language("Ceci est une phrase en français.") == "fr"
    assert detect_language("1234 !!") is None


def test_score_is_the_fraction_followed_and_all_or_nothing():
    label = {"instruction_id_list": ["punctuation:no_comma", "startend:quotation"], "kwargs": [{}, {}]}
    result = run_verifier("ifeval", "no commas here", label)
    assert result.score == 0.5 and result.details["followed"] == 1 and result.details["total"] == 2
    assert run_verifier("ifeval", "no commas here", label, options={"all_or_nothing": True}).score == 0.0


def test_empty_response_follows_nothing():
    label = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    assert run_verifier("ifeval", "   ", label).score == 0.0


def test_loose_mode_variants():
    response = "Sure, here it is:\n*no commas here*\nHope that helps, bye"
    assert loose_variants("a\nb\nc") == ["a\nb\nc", "a\nb\nc", "b\nc", "a\nb", "b", "b\nc", "a\nb", "b"]
    kwargs: dict = {}
    assert not follows(response, "punctuation:no_comma", kwargs, "strict")
    assert follows(response, "punctuation:no_comma", kwargs, "loose")  # first and last lines dropped
    label = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    assert run_verifier("ifeval", response, label, options={"mode": "loose"}).score == 1.0
    quoted = '"Quoted*"'
    assert follows(quoted, "startend:quotation", {}, "strict")
    assert "mode must be" in run_verifier("ifeval", "x", label, options={"mode": "lenient"}).details["error"]


def test_labels_as_json_strings_with_null_padding():
    label = json.dumps(
        {
            "instruction_id_list": ["length_constraints:number_words"],
            "kwargs": [{"num_words": 3, "relation": "at least", "keywords": None, "language": None}],
        }
    )
    assert parse_label(label) == [
        ("length_constraints:number_words", {"num_words": 3, "relation": "at least"})
    ]
    assert parse_label([{"instruction_id": ["punctuation:no_comma"], "kwargs": [None]}]) == [
        ("punctuation:no_comma", {})
    ]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ({"instruction_id_list": ["nope:x"], "kwargs": [{}]}, "unknown IFEval instruction"),
        ({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 3}]}, "missing kwargs"),
        ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{"x": 1}]}, "unexpected kwargs"),
        ({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": -1, "relation": "at least"}]}, "bad num_words"),
        ({"instruction_id_list": ["length_constraints:number_words"], "kwargs": [{"num_words": 3, "relation": "at most"}]}, "bad relation"),
        ({"instruction_id_list": ["keywords:letter_frequency"], "kwargs": [{"letter": "ab", "let_frequency": 1, "let_relation": "at least"}]}, "single character"),
        ({"instruction_id_list": ["length_constraints:nth_paragraph_first_word"], "kwargs": [{"num_paragraphs": 2, "nth_paragraph": 3, "first_word": "a"}]}, "nth_paragraph"),
        ({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}, {}]}, "parallel"),
        ({"instruction_id_list": []}, "non-empty"),
        ("{not json", "not valid JSON"),
        (42, "must be an object"),
    ],
)  # fmt: skip
def test_label_errors_score_zero_with_the_reason(label, message):
    result = run_verifier("ifeval", "a response", label)
    assert result.score == 0.0 and message in result.details["error"]


def test_real_ifeval_prompts(benchmark_data):
    rows = [json.loads(line) for line in (benchmark_data / "ifeval_input_data.jsonl").open()]
    assert len(rows) == 58
    seen = set()
    for row in rows:
        label = {"instruction_id_list": row["instruction_id_list"], "kwargs": row["kwargs"]}
        seen.update(row["instruction_id_list"])
        # the prompt itself as a response: every label must parse and every check must run
        for mode in ("strict", "loose"):
            result = run_verifier("ifeval", row["prompt"], label, options={"mode": mode})
            assert "error" not in result.details, (row["key"], result.details)
            assert len(result.details["instructions"]) == len(row["instruction_id_list"])
    assert seen == set(INSTRUCTIONS)
    repeat = next(r for r in rows if "combination:repeat_prompt" in r["instruction_id_list"])
    index = repeat["instruction_id_list"].index("combination:repeat_prompt")
    prompt_to_repeat = repeat["kwargs"][index]["prompt_to_repeat"]
    assert follows(
        prompt_to_repeat + "\nMy answer.", "combination:repeat_prompt", {"prompt_to_repeat": prompt_to_repeat}
    )


def test_fast_language_detector_is_bit_identical_to_langdetect(benchmark_data):
    from langdetect.detector import Detector
    from langdetect.lang_detect_exception import LangDetectException

    from rlvr.rewards.ifeval_util import _fast_detector_class, _language_factory

    factory, fast = _language_factory(), _fast_detector_class()
    texts = [json.loads(line)["prompt"] for line in (benchmark_data / "ifeval_input_data.jsonl").open()][:150]
    texts += [
        "Desayunamos en McDonald's hoy",
        "日本語のテキストです",
        "Привет, мир",
        "ABC DEF ghi",
        "1234",
        "ÉCOLE Ça va",
    ]
    for text in texts:
        outcomes = []
        for cls in (Detector, fast):
            detector = cls(factory)
            detector.append(text)
            try:
                outcomes.append((detector.detect(), detector.langprob))
            except LangDetectException:
                outcomes.append(None)
        assert outcomes[0] == outcomes[1], text
