import json

import pytest

from rlvr.data import DataError, load_rows, main_validate, row_problems, write_jsonl

USER = {"role": "user", "content": "What is 2 + 3?"}
ANSWER = {"role": "assistant", "content": "2 + 3 = 5. #### 5"}
WRONG = {"role": "assistant", "content": "2 + 3 = 6. #### 6"}


def test_valid_rows_of_each_kind():
    assert row_problems({"messages": [USER], "ground_truth": "5", "dataset": "gsm8k"}, "rlvr") == []
    assert row_problems({"messages": [USER, ANSWER]}, "sft") == []
    assert row_problems({"chosen": [USER, ANSWER], "rejected": [USER, WRONG]}, "prefs") == []
    assert row_problems({"text": "hello"}, "text") == []
    multi = {
        "messages": [USER],
        "ground_truth": ["5", "{}"],
        "dataset": ["gsm8k", "ifeval"],
        "weights": [1, 0.5],
    }
    assert row_problems(multi, "rlvr") == []


@pytest.mark.parametrize(
    ("row", "kind", "problem"),
    [
        ({"messages": [USER], "ground_truth": "5"}, "rlvr", "missing 'dataset'"),
        ({"messages": [USER], "dataset": "gsm8k"}, "rlvr", "missing 'ground_truth'"),
        (
            {"messages": [USER, ANSWER], "ground_truth": "5", "dataset": "gsm8k"},
            "rlvr",
            "must end with a user",
        ),
        (
            {"messages": [USER], "ground_truth": ["5"], "dataset": ["gsm8k", "math"]},
            "rlvr",
            "list of as many",
        ),
        (
            {"messages": [USER], "ground_truth": ["5", "6"], "dataset": ["gsm8k", "math"], "weights": [1]},
            "rlvr",
            "'weights' must be a list of 2",
        ),
        ({"messages": []}, "sft", "non-empty list"),
        ({"messages": [USER]}, "sft", "must end with a assistant"),
        ({"messages": [{"role": "bot", "content": "x"}, ANSWER]}, "sft", "messages[0].role is 'bot'"),
        ({"messages": [{"role": "user", "content": "  "}, ANSWER]}, "sft", "messages[0].content is empty"),
        ({"messages": [{"role": "user", "content": 3}, ANSWER]}, "sft", "content must be a string"),
        ({"chosen": [USER, ANSWER], "rejected": [USER, ANSWER]}, "prefs", "identical"),
        ({"chosen": [USER, ANSWER]}, "prefs", "'rejected' must be a non-empty list"),
        ({"text": ""}, "text", "non-empty string"),
        ([1, 2], "sft", "must be a JSON object"),
    ],
)
def test_bad_rows(row, kind, problem):
    assert any(problem in p for p in row_problems(row, kind)), row_problems(row, kind)


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_bad_rows_reported_by_line_number(tmp_path):
    good = json.dumps({"messages": [USER, ANSWER]})
    path = write_lines(
        tmp_path / "sft.jsonl", [good, "{not json", good, "", json.dumps({"messages": [USER]}), good]
    )
    with pytest.raises(DataError) as err:
        load_rows(path, "sft")
    text = str(err.value)
    assert "2 bad sft row(s)" in text
    assert "line 2: not valid JSON" in text
    assert "line 5: 'messages' must end with a assistant message" in text


def test_skip_is_counted_and_reported(tmp_path, capsys):
    good = json.dumps({"messages": [USER, ANSWER]})
    path = write_lines(tmp_path / "sft.jsonl", [good, "[]", good])
    rows = load_rows(path, "sft", on_bad_row="skip")
    assert len(rows) == 2
    assert rows.report.kept == 2
    assert rows.report.skipped == [(2, "a row must be a JSON object, got list")]
    assert "1 skipped (line 2: a row must be a JSON object" in capsys.readouterr().err


def test_caller_check_and_limit(tmp_path):
    rows = [{"messages": [USER], "ground_truth": "5", "dataset": name} for name in ("gsm8k", "nope", "gsm8k")]
    path = tmp_path / "p.jsonl"
    write_jsonl(rows, path)

    def known(line, row):
        return [] if row["dataset"] == "gsm8k" else [f"unknown verifier {row['dataset']!r}"]

    with pytest.raises(DataError, match="line 2: unknown verifier 'nope'"):
        load_rows(path, "rlvr", check=known)
    assert len(load_rows(path, "rlvr", limit=1)) == 1


def test_parquet_and_missing_sources(tmp_path):
    import datasets

    rows = [{"messages": [USER, ANSWER]}, {"messages": [USER]}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    with pytest.raises(DataError, match="line 2: 'messages' must end with a assistant"):
        load_rows(tmp_path / "d.parquet", "sft")
    with pytest.raises(DataError, match="no such file"):
        load_rows(tmp_path / "absent.jsonl", "sft")
    with pytest.raises(DataError, match="unsupported file type"):
        load_rows(write_lines(tmp_path / "x.csv", ["a"]), "sft")
    with pytest.raises(DataError, match="no valid sft rows"):
        load_rows(write_lines(tmp_path / "e.jsonl", [""]), "sft")


def test_hub_name_offline_is_a_clear_error(monkeypatch):
    import datasets
    import huggingface_hub

    # Offline mode is read at import time, so set the live flags (no network attempt, no retries).
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="could not load from the Hugging Face hub"):
        load_rows("nobody-here/no-such-dataset-rlvr", "rlvr")


def test_validate_command_exit_codes(tmp_path, capsys):
    good = write_lines(tmp_path / "g.jsonl", [json.dumps({"messages": [USER, ANSWER]})])
    bad = write_lines(tmp_path / "b.jsonl", [json.dumps({"messages": [USER]})])
    assert main_validate([str(good)], "sft") == 0
    assert main_validate([str(good), str(bad)], "sft") == 1
    assert "g.jsonl: 1 rows" in capsys.readouterr().out
