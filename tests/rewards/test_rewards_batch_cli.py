"""score_batch across processes (input order, run-time registrations) and `rlvr verify`."""

import json

import pytest

from rlvr.rewards import UnknownVerifierError, register, score_batch, score_row, unregister
from rlvr.rewards.cli import main


def _rows(count):
    rows = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            rows.append(
                {"prediction": f"so {i}", "ground_truth": str(i if i % 2 else i + 1), "dataset": "gsm8k"}
            )
        elif kind == 1:
            rows.append(
                {
                    "prediction": f"$\\boxed{{\\frac{{{i}}}{{2}}}}$",
                    "ground_truth": f"{i / 2}",
                    "dataset": "MATH",
                }
            )
        else:
            label = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
            rows.append(
                {
                    "prediction": "a, b" if i % 4 else "a b",
                    "ground_truth": json.dumps(label),
                    "dataset": "ifeval",
                }
            )
    return rows


def test_parallel_scores_match_sequential_in_input_order():
    rows = _rows(60)
    sequential = [score_row(row).score for row in rows]
    parallel = score_batch(rows, workers=2)
    assert [r.score for r in parallel] == sequential
    assert 0 < sum(sequential) < len(rows)


def test_verifiers_registered_at_run_time_reach_forked_workers():
    @register("length_parity")
    def length_parity(prediction, label, prompt=None):
        return len(prediction) % 2 == int(label)

    try:
        rows = [{"prediction": "x" * i, "ground_truth": "0", "dataset": "length_parity"} for i in range(8)]
        assert [r.score for r in score_batch(rows, workers=2)] == [1.0, 0.0] * 4
    finally:
        unregister("length_parity")


def test_unknown_names_fail_before_scoring():
    with pytest.raises(UnknownVerifierError, match="row\\(s\\) 2"):
        score_batch(
            [{"prediction": "1", "ground_truth": "1", "dataset": "gsm8k"}, {"dataset": "gsm9k"}], workers=2
        )


def _write(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_cli_scores_and_reports(tmp_path, capsys):
    rows = _rows(9)
    rows[0]["extra"] = {"kept": True}
    source, out = tmp_path / "in.jsonl", tmp_path / "out" / "scored.jsonl"
    _write(source, rows)
    assert main(["--input", str(source), "--output", str(out), "--workers", "2"]) == 0
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [row["prediction"] for row in scored] == [row["prediction"] for row in rows]
    assert scored[0]["extra"] == {"kept": True}
    assert [row["score"] for row in scored] == [score_row(row).score for row in rows]
    assert all(isinstance(row["details"], dict) for row in scored)
    table = capsys.readouterr().out
    for name in ("gsm8k", "math", "ifeval", "all rows", "timeouts", "rows/s"):
        assert name in table


def test_cli_ifeval_mode(tmp_path):
    label = {"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}
    row = {"prediction": "Sure, here:\nno commas\nbye, then", "ground_truth": label, "dataset": "ifeval"}
    source = tmp_path / "in.jsonl"
    _write(source, [row])
    for mode, expected in (("strict", 0.0), ("loose", 1.0)):
        out = tmp_path / f"{mode}.jsonl"
        assert main(["--input", str(source), "--output", str(out), "--ifeval-mode", mode]) == 0
        assert json.loads(out.read_text())["score"] == expected


def test_cli_schema_errors_name_the_lines(tmp_path, capsys):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    good = {"prediction": "1", "ground_truth": "1", "dataset": "gsm8k"}
    source.write_text(
        json.dumps(good) + "\n\n"
        + "{not json\n"
        + json.dumps({"prediction": 3, "ground_truth": "1", "dataset": "gsm8k"}) + "\n"
        + json.dumps({"prediction": "1", "ground_truth": "1", "dataset": "nope"}) + "\n"
        + json.dumps({"prediction": "1", "dataset": "gsm8k"}) + "\n"
    )  # fmt: skip
    assert main(["--input", str(source), "--output", str(out)]) == 1
    err = capsys.readouterr().err
    assert "line 3: not valid JSON" in err
    assert "line 4: 'prediction' must be a string" in err
    assert "line 5: unknown verifier 'nope'" in err
    assert "line 6: missing 'ground_truth'" in err
    assert "line 1" not in err
    assert not out.exists()
    assert main(["--input", str(tmp_path / "missing.jsonl"), "--output", str(out)]) == 2


def test_cli_survives_invalid_utf8_and_lone_surrogates(tmp_path):
    source, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    line = json.dumps({"prediction": "x", "ground_truth": "4", "dataset": "gsm8k"}).encode()
    bad_bytes = line.replace(b'"x"', b'"\xff\xfe 4"')
    surrogate = json.dumps({"prediction": "\ud800 4", "ground_truth": "4", "dataset": "gsm8k"}).encode()
    source.write_bytes(bad_bytes + b"\n" + surrogate + b"\n")
    assert main(["--input", str(source), "--output", str(out)]) == 0
    scored = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [row["score"] for row in scored] == [1.0, 1.0]
