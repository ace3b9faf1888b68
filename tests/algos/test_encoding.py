"""Assistant-only labels, the truncation policy, packing, padding, and bad preference rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from base_model.tokenizer import load_tokenizer
from rlvr.algos.common import DataConfig, load_training_rows
from rlvr.algos.encoding import (
    IGNORE_INDEX,
    EncodedChat,
    build_labels,
    encode_pairs,
    encode_sft,
    pack,
    pad_right,
    same_prompt_problems,
    truncate,
)
from rlvr.chat import EOS_TOKEN
from rlvr.data import DataError

X = IGNORE_INDEX
CHAT = [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "2 + 3 = 5. #### 5"}]
MULTI = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello there"},
    {"role": "user", "content": "Add 1 and 1"},
    {"role": "assistant", "content": "1 + 1 = 2"},
]


def test_labels_mark_tokens_starting_inside_a_span() -> None:
    ids = [10, 11, 12, 13, 14]
    offsets = [(0, 3), (3, 5), (5, 8), (8, 9), (9, 12)]
    assert build_labels(ids, offsets, [(5, 9)]) == [X, X, 12, 13, X]
    assert build_labels(ids, offsets, [(0, 1), (9, 12)]) == [10, X, X, X, 14]
    assert build_labels(ids, offsets, []) == [X] * 5


def test_truncation_policy_by_hand() -> None:
    chat = EncodedChat(
        [1, 2, 3, 4, 5, 6, 7, 8], [X, X, X, 4, 5, X, X, 8]
    )  # prompt, answer, user turn, answer
    assert truncate(chat, 8, "truncate") == (chat, "")
    cut, note = truncate(chat, 4, "truncate")  # inside the first answer
    assert (
        note == "truncated"
        and cut is not None
        and cut.input_ids == [1, 2, 3, 4]
        and cut.labels == [X, X, X, 4]
    )
    cut, note = truncate(
        chat, 7, "truncate"
    )  # the limit falls in the second user turn: back to the first answer's end
    assert cut is not None and cut.input_ids == [1, 2, 3, 4, 5] and cut.labels[-1] == 5
    assert truncate(chat, 3, "truncate") == (None, "prompt longer than max_length 3")
    assert truncate(chat, 7, "skip") == (None, "longer than max_length 7")
    assert truncate(EncodedChat([1, 2], [X, X]), 8, "truncate") == (None, "no assistant tokens")


def test_sft_labels_are_the_assistant_turns_and_ids_match_the_chat_template(base_checkpoint: Path) -> None:
    tokenizer = load_tokenizer(base_checkpoint)
    (chat,), report = encode_sft(tokenizer, [{"messages": MULTI}], 512, "truncate", "test")
    assert report.kept == 1 and not report.skipped
    assert chat.input_ids == tokenizer.apply_chat_template(MULTI, tokenize=True, return_dict=False)
    trained = [t for t, label in zip(chat.input_ids, chat.labels, strict=True) if label != X]
    assert tokenizer.decode(trained) == f"Hello there{EOS_TOKEN}1 + 1 = 2{EOS_TOKEN}"
    assert chat.num_labels == len(trained)


def test_sft_truncation_keeps_the_prompt_and_reports_skips(base_checkpoint: Path) -> None:
    tokenizer = load_tokenizer(base_checkpoint)
    long_prompt = [{"role": "user", "content": "word " * 80}, {"role": "assistant", "content": "ok"}]
    rows = [{"messages": CHAT}, {"messages": long_prompt}]
    (full,), _ = encode_sft(tokenizer, rows[:1], 512, "truncate", "test")
    prompt_len = full.labels.index(next(label for label in full.labels if label != X))
    examples, report = encode_sft(tokenizer, rows, prompt_len + 2, "truncate", "test")
    assert [len(e) for e in examples] == [prompt_len + 2]
    assert examples[0].input_ids[:prompt_len] == full.input_ids[:prompt_len]  # the prompt is intact
    assert report.kept == 1 and report.truncated == 1
    assert report.skipped == [(2, f"prompt longer than max_length {prompt_len + 2}")]
    assert "1 skipped" in report.summary() and "rows 2" in report.summary()


def test_pairs_train_on_the_last_turn_and_skip_pairs_equal_within_the_limit(base_checkpoint: Path) -> None:
    tokenizer = load_tokenizer(base_checkpoint)
    prompt = CHAT[:1]
    rows = [
        {
            "chosen": [*prompt, {"role": "assistant", "content": "5"}],
            "rejected": [*prompt, {"role": "assistant", "content": "6"}],
        },
        {
            "chosen": [*prompt, {"role": "assistant", "content": "same start then A"}],
            "rejected": [*prompt, {"role": "assistant", "content": "same start then B"}],
        },
    ]
    pairs, report = encode_pairs(tokenizer, rows, 512, "truncate", "test")
    assert [p.index for p in pairs] == [0, 1]
    chosen = [
        t for t, label in zip(pairs[0].chosen.input_ids, pairs[0].chosen.labels, strict=True) if label != X
    ]
    assert tokenizer.decode(chosen) == f"5{EOS_TOKEN}"
    prompt_len = pairs[1].chosen.labels.index(next(label for label in pairs[1].chosen.labels if label != X))
    pairs, report = encode_pairs(tokenizer, rows, prompt_len + 2, "truncate", "test")
    assert len(pairs) == 1 and report.skipped == [
        (2, f"chosen and rejected identical within max_length {prompt_len + 2}")
    ]


def test_pack_keeps_whole_examples_in_order() -> None:
    chats = [EncodedChat([i] * n, [X] + [i] * (n - 1)) for i, n in ((1, 3), (2, 4), (3, 2), (4, 5))]
    packed = pack(chats, 7)
    assert [p.input_ids for p in packed] == [[1, 1, 1, 2, 2, 2, 2], [3, 3, 4, 4, 4, 4, 4]]
    assert packed[1].labels == [X, 3, X, 4, 4, 4, 4]


def test_pad_right() -> None:
    ids, labels = pad_right([EncodedChat([5, 6, 7], [X, 6, 7]), EncodedChat([8], [X])], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1]]
    assert labels.tolist() == [[X, 6, 7], [X, X, X]]
    assert ids.dtype == torch.long


def _write(path: Path, rows: list[object]) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_bad_preference_rows_are_an_error_or_a_counted_skip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {
        "chosen": [*CHAT[:1], {"role": "assistant", "content": "5"}],
        "rejected": [*CHAT[:1], {"role": "assistant", "content": "6"}],
    }
    rows = [
        good,
        {"chosen": good["chosen"], "rejected": good["chosen"]},  # identical
        {
            "chosen": [*CHAT[:1], {"role": "assistant", "content": "  "}],
            "rejected": good["rejected"],
        },  # empty turn
        {"chosen": good["chosen"]},  # wrong schema
        "{not json",
        {
            "chosen": [{"role": "user", "content": "other"}, {"role": "assistant", "content": "5"}],
            "rejected": good["rejected"],
        },  # different prompts
    ]
    path = _write(tmp_path / "prefs.jsonl", rows)
    with pytest.raises(DataError) as err:
        load_training_rows(DataConfig(train=[path]), "prefs", check=same_prompt_problems)
    message = str(err.value)
    for line, reason in (
        (2, "identical"),
        (3, "content is empty"),
        (4, "'rejected' must be"),
        (5, "not valid JSON"),
        (6, "different prompts"),
    ):
        assert f"line {line}: " in message and reason in message
    kept, summaries = load_training_rows(
        DataConfig(train=[path], on_bad_row="skip"), "prefs", check=same_prompt_problems
    )
    assert kept == [good]
    assert "5 skipped" in summaries[0]
    assert "5 skipped" in capsys.readouterr().err
