"""Tülu 3 IF functions: one hand-made pass and fail case for each of the 25, and the label form."""

import json

import pytest

from rlvr.rewards import run_verifier
from rlvr.rewards.tulu_if import IF_FUNCTIONS, is_tulu_label

ENGLISH = "This is a plain English sentence about the weather and the garden today."
CASES = [
    ("verify_keywords", {"keyword_list": ["Apple", "pie"]}, "I like apple PIE.", "I like apple."),
    ("verify_keyword_frequency", {"word": "cat", "N": 2}, "Cat and cat, not cats.", "cat cat cat"),
    ("validate_forbidden_words", {"forbidden_words": ["bad"]}, "All good.", "Badly done."),
    ("verify_letter_frequency", {"letter": "a", "N": 3}, "banana", "bAnana"),
    (
        "validate_response_language",
        {"language": "en"},
        ENGLISH,
        "Ceci est une phrase en français sur le temps.",
    ),
    ("verify_paragraph_count", {"N": 2}, "one\n  * * *  \ntwo", "one\n* * *\n* * *\ntwo"),
    ("validate_word_constraint", {"N": 10, "quantifier": "around"}, "w " * 11, "w " * 12),
    ("validate_word_constraint", {"N": 3, "quantifier": "at most"}, "a b c", "a b c d"),
    ("verify_sentence_constraint", {"N": 2, "quantifier": "at least"}, "One. Two!", "One."),
    ("validate_paragraphs", {"N": 2, "first_word": "Hello", "i": 2}, "a\n\nHello there", "a\n\nhello there"),
    ("verify_postscript", {"postscript_marker": "P.S."}, "Hi.\nP.S. more", "Hi.\nP.S."),
    ("validate_placeholders", {"N": 2}, "[name] at [place]", "[name] only"),
    ("verify_bullet_points", {"N": 2}, "* a\n- b\ntext", "* a\n* b\n* c"),
    ("validate_title", {}, "<<Title>> body", "Title body"),
    ("validate_choice", {"options": ["yes", "no"]}, "My answer is yes.", "maybe"),
    ("validate_highlighted_sections", {"N": 2}, "*one* and *two*", "*one* only"),
    (
        "validate_sections",
        {"N": 2, "section_splitter": "Section"},
        "SECTION 1 a SECTION 2 b",
        "Section 1 only",
    ),
    ("validate_json_format", {}, '{"a": 1}', "```json\n{}\n```"),
    ("validate_repeat_prompt", {"original_prompt": "Say hi."}, "Say hi. Hi!", "Hi! Say hi."),
    ("validate_two_responses", {}, "First.\n******\nSecond.", "Same.\n******\nSame."),
    ("validate_uppercase", {}, "ALL CAPS 123", "Not caps"),
    ("validate_lowercase", {}, "all lower 123", "Not lower"),
    ("validate_frequency_capital_words", {"N": 2, "quantifier": "at least"}, "NASA and ESA", "Nasa and ESA"),
    ("validate_end", {"end_phrase": "Bye."}, "Ok. Bye.", "Bye. Ok."),
    ("validate_quotation", {}, '"quoted"', 'not "quoted"'),
    ("validate_no_commas", {}, "no commas here", "one, two"),
]


def test_all_25_functions_are_covered():
    assert len(IF_FUNCTIONS) == 25
    assert {name for name, *_ in CASES} == set(IF_FUNCTIONS)


@pytest.mark.parametrize(
    ("name", "kwargs", "passing", "failing"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
def test_function_pass_and_fail(name, kwargs, passing, failing):
    label = {"func_name": name, **kwargs}
    passed = run_verifier("tulu_if", passing, label)
    assert passed.score == 1.0, passed.details
    assert passed.details["func_name"] == name and passed.details["followed"] is True
    assert run_verifier("tulu_if", failing, label).score == 0.0


def test_json_string_label_with_null_padding_and_ifeval_routing():
    label = json.dumps({"func_name": "validate_lowercase", "N": None, "quantifier": None, "word": None})
    assert is_tulu_label(label)
    assert run_verifier("tulu_if", "all lowercase", label).score == 1.0
    assert run_verifier("ifeval", "all lowercase", label).score == 1.0  # the RLVR data names these "ifeval"
    assert run_verifier("ifeval_old", "Not Lower", label).score == 0.0


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ({"func_name": "nope"}, "unknown IF function"),
        ({"N": 3}, "func_name"),
        ({"func_name": "validate_title", "N": 3}, "unexpected keyword"),
        ({"func_name": "validate_placeholders"}, "missing 1 required"),
        ({"func_name": "verify_letter_frequency", "letter": "ab", "N": 1}, "single character"),
        ({"func_name": "validate_paragraphs", "N": 1, "first_word": "a", "i": 5}, "outside"),
        ('{"func_name": ', "func_name"),
    ],
)
def test_label_errors(label, message):
    result = run_verifier("tulu_if", "a", label)
    assert result.score == 0.0 and message in result.details["error"]


def test_empty_text_language_is_an_error_not_a_pass():
    assert (
        "no features"
        in run_verifier(
            "tulu_if", "1234", {"func_name": "validate_response_language", "language": "en"}
        ).details["error"]
    )
