"""`rlvr eval`: pass@k / maj@k by hand, the data adapters, aggregation, and end-to-end runs."""

import json
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch

from rlvr.config import ConfigError, load_config
from rlvr.data import DataError, write_jsonl
from rlvr.eval import (
    ANSWER_EXTRACTORS,
    EvalConfig,
    Item,
    build_messages,
    detect_format,
    evaluate,
    evaluate_checkpoints,
    load_items,
    main,
    maj_at_k,
    majority_vote,
    pass_at_k,
    read_fewshot,
    summarize,
)
from rlvr.rewards import score_row
from rlvr.train.checkpoint import save_model

TEXTS = [
    "Sam has 12 cards. He buys 3 more. How many cards does Sam have? Sam has 15 cards. #### 15",
    "Compute $1 + 1$. The answer is $\\boxed{2}$.",
    "Write a short note about the hat. Do not use any commas in your response.",
] * 20

GSM8K_ROWS = [
    {"question": "Sam has 12 cards. He buys 3 more. How many cards?", "answer": "12 + 3 = 15\n#### 15"},
    {"question": "Ann has 1,200 apples and sells 200. How many are left?", "answer": "#### 1,000"},
]
MATH_ROWS = [
    {
        "problem": "Compute $1 + 1$.",
        "answer": "2",
        "solution": "$\\boxed{2}$",
        "subject": "Algebra",
        "level": 1,
    },
    {"problem": "Compute $\\frac{1}{2} + \\frac{1}{4}$.", "solution": "It is $\\boxed{\\frac{3}{4}}$."},
]
IFEVAL_ROWS = [
    {
        "key": 1,
        "prompt": "Write a note about the hat. Do not use any commas.",
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{"num_words": None, "relation": None}],  # the hub copy pads every kwarg with null
    },
    {
        "key": 2,
        "prompt": "Write at least 5 words about the hat, in lowercase.",
        "instruction_id_list": ["length_constraints:number_words", "change_case:english_lowercase"],
        "kwargs": [{"num_words": 5, "relation": "at least"}, {}],
    },
]
RLVR_ROWS = [
    {
        "messages": [{"role": "user", "content": "Sam has 2 cards and buys 3. How many?"}],
        "ground_truth": "5",
        "dataset": "gsm8k",
    },
    {
        "messages": [{"role": "user", "content": "Write about the frog. Do not use any commas."}],
        "ground_truth": json.dumps({"instruction_id_list": ["punctuation:no_comma"], "kwargs": [{}]}),
        "dataset": "ifeval",
    },
    {"messages": [{"role": "user", "content": "Compute $1 + 2$."}], "ground_truth": "3", "dataset": "MATH"},
]


# ----------------------------------------------------------------------------- pass@k / maj@k


def test_pass_at_k_matches_hand_computed_values() -> None:
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - C(3,2)/C(4,2) = 1 - 3/6
    assert pass_at_k(4, 0, 2) == 0.0
    assert pass_at_k(4, 4, 2) == 1.0
    assert pass_at_k(5, 2, 3) == pytest.approx(0.9)  # 1 - C(3,3)/C(5,3) = 1 - 1/10
    assert pass_at_k(4, 3, 2) == 1.0  # fewer than k wrong samples: any k contain a right one
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)  # k = 1 is the share correct
    for bad in [(4, 5, 1), (4, 1, 5), (4, 1, 0)]:
        with pytest.raises(ValueError):
            pass_at_k(*bad)


def test_majority_vote_and_maj_at_k_by_hand() -> None:
    assert majority_vote(["3", "4", "3", None], [1.0, 0.0, 1.0, 0.0]) == 1.0
    assert majority_vote(["4", None, None, "4", "3"], [0.0, 0.0, 0.0, 0.0, 1.0]) == 0.0  # None never votes
    # a tie goes to the answer that appears first
    assert majority_vote(["4", "3", "3", "4"], [0.0, 1.0, 1.0, 0.0]) == 0.0
    assert majority_vote(["3", "4", "4", "3"], [1.0, 0.0, 0.0, 1.0]) == 1.0
    assert majority_vote([None, None], [0.0, 0.0]) == 0.0
    answers, scores = ["5", "5", "7", "6", "6", "6"], [1.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    assert maj_at_k(answers, scores, 1) == pytest.approx(2 / 6)  # each sample alone
    assert maj_at_k(answers, scores, 2) == pytest.approx(1 / 3)  # blocks [5,5]→1, [7,6]→0 (tie: 7), [6,6]→0
    assert maj_at_k(answers, scores, 3) == pytest.approx(1 / 2)  # [5,5,7]→1, [6,6,6]→0
    assert maj_at_k(answers, scores, 6) == 0.0  # 6 ×3 beats 5 ×2
    with pytest.raises(ValueError):
        maj_at_k(answers, scores, 7)


def test_answer_extractors_vote_equal_answers_together() -> None:
    gsm8k, math = ANSWER_EXTRACTORS["gsm8k"], ANSWER_EXTRACTORS["math"]
    assert gsm8k("so she has 18.00 dollars") == gsm8k("#### 18") == "18"
    assert gsm8k("It costs 1,234 dollars.") == "1234"
    assert gsm8k("-0") == gsm8k("0.0") == "0" and gsm8k("1000") == "1000"
    assert gsm8k("1" * 40) != gsm8k("1" * 39 + "2")  # long numbers are not rounded together
    assert gsm8k("no number here") is None
    assert (
        math("The answer is $\\boxed{\\frac{1}{2}}$.") == math("So $x = 0.5$") == math("\\boxed{\\dfrac12}")
    )
    assert math("\\boxed{x^2 + 1}") == math(
        "Final Answer: The final answer is $x^2+1$. I hope it is correct."
    )
    assert math("I have no idea") is None
    assert ANSWER_EXTRACTORS["strict_math"]("\\boxed{2}") is None  # strict_math judges the Minerva form only
    assert "ifeval" not in ANSWER_EXTRACTORS


# ----------------------------------------------------------------------------- adapters


def test_format_is_detected_from_the_keys() -> None:
    assert detect_format(RLVR_ROWS[0]) == "rlvr"
    assert detect_format(GSM8K_ROWS[0]) == "gsm8k"
    assert detect_format(MATH_ROWS[0]) == detect_format(MATH_ROWS[1]) == "math"
    assert detect_format(IFEVAL_ROWS[0]) == "ifeval"
    assert detect_format({"text": "x"}) is None


def test_gsm8k_adapter(tmp_path: Path) -> None:
    path = tmp_path / "gsm8k.jsonl"
    write_jsonl(GSM8K_ROWS, path)
    items, skipped = load_items(str(path))
    assert skipped == []
    assert [(i.question, i.ground_truth, i.dataset, i.line) for i in items] == [
        (GSM8K_ROWS[0]["question"], "15", "gsm8k", 1),
        (GSM8K_ROWS[1]["question"], "1000", "gsm8k", 2),
    ]
    assert (
        score_row(
            {"prediction": "She has 1,000 left.", "ground_truth": items[1].ground_truth, "dataset": "gsm8k"}
        ).score
        == 1.0
    )


def test_math_adapter_reads_math500_rows_and_boxed_solutions_from_parquet(tmp_path: Path) -> None:
    import datasets

    path = tmp_path / "math500.parquet"
    datasets.Dataset.from_list([MATH_ROWS[0], {**MATH_ROWS[1], "answer": None}]).to_parquet(str(path))
    items, skipped = load_items(str(path))
    assert skipped == []
    assert [(i.question, i.ground_truth, i.dataset) for i in items] == [
        (MATH_ROWS[0]["problem"], "2", "math"),
        (MATH_ROWS[1]["problem"], "\\frac{3}{4}", "math"),  # no answer: the solution's last \boxed{}
    ]


def test_ifeval_adapter_writes_the_label_the_ifeval_verifier_reads(tmp_path: Path) -> None:
    path = tmp_path / "ifeval.jsonl"
    write_jsonl(IFEVAL_ROWS, path)
    items, _ = load_items(str(path))
    assert [i.dataset for i in items] == ["ifeval", "ifeval"]
    assert json.loads(items[0].ground_truth) == {
        "instruction_id_list": ["punctuation:no_comma"],
        "kwargs": [{}],
    }
    row = {"ground_truth": items[1].ground_truth, "dataset": "ifeval"}
    assert score_row({**row, "prediction": "the hat is warm and soft."}).score == 1.0
    assert score_row({**row, "prediction": "The Hat."}).score == 0.0


def test_rlvr_rows_keep_their_verifier_and_earlier_turns(tmp_path: Path) -> None:
    path = tmp_path / "rlvr.jsonl"
    chat = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Compute $2 + 2$."},
    ]
    write_jsonl([*RLVR_ROWS, {"messages": chat, "ground_truth": "4", "dataset": "math"}], path)
    items, _ = load_items(str(path), limit=10)
    assert [i.dataset for i in items] == ["gsm8k", "ifeval", "MATH", "math"]
    assert items[3].question == "Compute $2 + 2$." and items[3].context == chat[:1]
    assert len(load_items(str(path), limit=2)[0]) == 2


def test_unreadable_rows_stop_the_run_naming_file_and_line_or_are_counted(tmp_path: Path) -> None:
    path = tmp_path / "gsm8k.jsonl"
    path.write_text(
        json.dumps(GSM8K_ROWS[0])
        + "\n{not json\n"
        + json.dumps({"question": "Q?", "answer": "twelve"})
        + "\n"
    )
    with pytest.raises(DataError, match=r"gsm8k\.jsonl: line 2: .*not valid JSON"):
        load_items(str(path))
    items, skipped = load_items(str(path), on_bad_row="skip")
    assert len(items) == 1
    assert [line for line, _ in skipped] == [2, 3] and "not a number" in skipped[1][1]
    unknown = tmp_path / "rlvr.jsonl"
    write_jsonl([{**RLVR_ROWS[0], "dataset": "gsm8kk"}], unknown)
    with pytest.raises(DataError, match=r"line 1: .*unknown verifier 'gsm8kk'"):
        load_items(str(unknown))
    other = tmp_path / "other.jsonl"
    write_jsonl([{"text": "hello"}], other)
    with pytest.raises(DataError, match=r"cannot tell the format.*--format"):
        load_items(str(other))
    # an explicit format reads every row with that adapter
    with pytest.raises(DataError, match="cannot read this math row: 'problem' must be"):
        load_items(str(path), fmt="math", on_bad_row="error")
    with pytest.raises(DataError, match="no such file"):
        load_items(str(tmp_path / "missing.jsonl"))


def test_prompt_template_system_and_fewshot_turns(tmp_path: Path) -> None:
    fewshot = tmp_path / "fewshot.jsonl"
    write_jsonl(
        [
            {"question": "1 + 1?", "answer": "1 + 1 = 2. #### 2"},
            {"problem": "Compute $3$.", "solution": "$\\boxed{3}$"},
            {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
        ],
        fewshot,
    )
    examples = read_fewshot(str(fewshot))
    assert examples == [("1 + 1?", "1 + 1 = 2. #### 2"), ("Compute $3$.", "$\\boxed{3}$"), ("Hi?", "Hello.")]
    item = Item(question="2 + 2?", ground_truth="4", dataset="gsm8k", source="x", line=1)
    messages = build_messages(item, "Q: {question}\nA:", system="Solve it.", fewshot=examples[:1])
    assert messages == [
        {"role": "system", "content": "Solve it."},
        {"role": "user", "content": "Q: 1 + 1?\nA:"},
        {"role": "assistant", "content": "1 + 1 = 2. #### 2"},
        {"role": "user", "content": "Q: 2 + 2?\nA:"},
    ]
    assert build_messages(item, "{question}") == [{"role": "user", "content": "2 + 2?"}]
    write_jsonl([{"text": "x"}], fewshot)
    with pytest.raises(DataError, match="line 1: a few-shot example needs"):
        read_fewshot(str(fewshot))


def test_config_from_the_spec_flags() -> None:
    cfg = load_config(
        EvalConfig, None, ["--model", "m", "--data", "a.jsonl", "--n", "8", "--max-tokens", "64"]
    )
    assert (cfg.data, cfg.n, cfg.max_tokens, cfg.ks) == (["a.jsonl"], 8, 64, [1, 2, 4, 8])
    assert load_config(EvalConfig, None, ["--model=m", "--data=[a.jsonl, b.jsonl]", "--n=6"]).ks == [1, 2, 4]
    for bad in (["--ks=[1, 8]"], ["--temperature=0"], ["--template=Q: {problem}"], ["--max_tokns=3"]):
        with pytest.raises(ConfigError):
            load_config(EvalConfig, None, ["--model=m", "--data=a.jsonl", "--n=4", *bad])


# ----------------------------------------------------------------------------- aggregation


def _record(dataset: str, scores: list[float], **extra: object) -> dict:
    return {
        "dataset": dataset,
        "scores": scores,
        "finished": [True] * (len(scores) - 1) + [False],
        "response_tokens": [10] * len(scores),
        "timed_out": 0,
        "verifier_errors": [],
        **extra,
    }


def test_summarize_per_dataset_and_per_ifeval_instruction() -> None:
    comma = {"id": "punctuation:no_comma", "followed": True}
    generations = [
        _record("gsm8k", [1.0, 0.0, 0.0, 0.0], answers=["5", "4", "4", None]),
        _record("gsm8k", [1.0, 1.0, 1.0, 1.0], answers=["7", "7", "7", "7"]),
        _record(
            "ifeval",
            [1.0, 0.5, 0.5, 0.0],
            ifeval=[
                [comma, {"id": "change_case:english_lowercase", "followed": True}],
                [comma, {"id": "change_case:english_lowercase", "followed": False}],
                [{**comma, "followed": False}, {"id": "change_case:english_lowercase", "followed": True}],
                [{**comma, "followed": False}, {"id": "change_case:english_lowercase", "followed": False}],
            ],
        ),
    ]
    metrics = summarize(generations, [1, 2, 4])
    gsm8k = metrics["by_dataset"]["gsm8k"]
    assert gsm8k["prompts"] == 2
    assert gsm8k["pass@1"] == pytest.approx((0.25 + 1.0) / 2)
    assert gsm8k["pass@2"] == pytest.approx((0.5 + 1.0) / 2)
    assert gsm8k["maj@4"] == pytest.approx((0.0 + 1.0) / 2)  # "4" wins the first prompt's vote
    assert gsm8k["maj@2"] == pytest.approx((0.5 + 1.0) / 2)  # blocks [5,4]→5 right, [4,None]→4 wrong
    ifeval = metrics["by_dataset"]["ifeval"]
    assert ifeval["pass@1"] == pytest.approx(0.25)  # pass@k counts fully followed samples ...
    assert ifeval["pass@2"] == pytest.approx(0.5)
    assert ifeval["mean_score"] == pytest.approx(0.5)  # ... the mean score gives partial credit
    assert "maj@1" not in ifeval  # no answer to vote on
    assert metrics["ifeval"]["prompt_level"] == pytest.approx(0.25)
    assert metrics["ifeval"]["instruction_level"] == pytest.approx(0.5)
    assert metrics["ifeval"]["by_instruction"] == {
        "change_case:english_lowercase": {"followed": 0.5, "count": 4},
        "punctuation:no_comma": {"followed": 0.5, "count": 4},
    }
    overall = metrics["overall"]
    assert overall["prompts"] == 3 and overall["pass@1"] == pytest.approx((0.25 + 1.0 + 0.25) / 3)
    assert "maj@4" not in overall  # ifeval has no answers to vote on
    assert summarize(generations[:2], [4])["overall"]["maj@4"] == gsm8k["maj@4"]
    assert overall["stop_rate"] == pytest.approx(0.75) and overall["response_tokens"] == 10
    assert metrics["accuracy"] == overall["pass@1"]
    assert metrics["accuracy_by_verifier"] == {"gsm8k": pytest.approx(0.625), "ifeval": pytest.approx(0.25)}
    assert summarize(generations, [2])["overall"]["pass@1"] == overall["pass@1"]  # pass@1 is always there


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def checkpoint(make_tiny_checkpoint: Callable[[Sequence[str]], Path]) -> Path:
    return make_tiny_checkpoint(TEXTS)


@pytest.fixture
def data_files(tmp_path: Path) -> list[Path]:
    files = [tmp_path / "gsm8k_test.jsonl", tmp_path / "math500.jsonl", tmp_path / "ifeval.jsonl"]
    for path, rows in zip(files, [GSM8K_ROWS, MATH_ROWS, IFEVAL_ROWS], strict=True):
        write_jsonl(rows, path)
    long_question = {"question": "Sam has 12 cards. " * 40, "answer": "#### 12"}  # over the 128-token context
    with files[0].open("a") as f:
        f.write(json.dumps(long_question) + "\n" + json.dumps({"question": "Q?"}) + "\n")
    return files


def test_main_end_to_end_with_the_hf_backend(
    checkpoint: Path, data_files: list[Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = ["--model", str(checkpoint), "--data", f"[{', '.join(map(str, data_files))}]", "--n", "4"]
    argv += ["--max-tokens", "24", "--backend", "hf", "--on_bad_row", "skip", "--out_dir", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "pass@4" in printed and "maj@4" in printed and "punctuation:no_comma" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["skipped"] == {"unreadable": 1, "too_long": 1}
    assert {row["line"] for row in metrics["skipped_rows"]} == {3, 4}
    assert metrics["overall"]["prompts"] == 6 and metrics["context"] == 128
    assert set(metrics["by_dataset"]) == {"gsm8k", "math", "ifeval"}
    overall = {"pass@1", "pass@2", "pass@4", "mean_score", "stop_rate", "response_tokens"}
    assert set(metrics["overall"]) >= overall and "maj@4" not in metrics["overall"]
    assert set(metrics["by_dataset"]["gsm8k"]) >= {*overall, "maj@1", "maj@2", "maj@4"}
    assert set(metrics["ifeval"]["by_instruction"]) == {
        "punctuation:no_comma", "length_constraints:number_words", "change_case:english_lowercase"
    }  # fmt: skip
    generations = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert len(generations) == 6
    for g in generations:
        assert len(g["responses"]) == len(g["scores"]) == len(g["finished"]) == 4
        assert all(t <= 24 for t in g["response_tokens"])
        assert g["prompt"].startswith("<|endoftext|><|user|>\n") and g["prompt"].endswith("<|assistant|>\n")
        assert ("answers" in g) == (g["dataset"] != "ifeval") and ("ifeval" in g) == (
            g["dataset"] == "ifeval"
        )
    assert generations[0]["ground_truth"] == "15" and generations[2]["ground_truth"] == "2"
    assert (out / "config.yaml").is_file()


def test_evaluate_in_process_with_template_and_fewshot(
    checkpoint: Path, data_files: list[Path], tmp_path: Path
) -> None:
    fewshot = tmp_path / "fewshot.jsonl"
    write_jsonl([{"question": "1 + 1?", "answer": "#### 2"}], fewshot)
    metrics = evaluate(
        checkpoint, data_files[1], out_dir=tmp_path / "out", n=2, max_tokens=8, backend="hf",
        template="Q: {question}", system="Answer.", fewshot=str(fewshot), ks=[2],
    )  # fmt: skip
    assert set(metrics["accuracy_by_verifier"]) == {"math"}
    assert metrics["accuracy"] == metrics["overall"]["pass@1"]
    assert set(metrics["overall"]) >= {"pass@1", "pass@2", "maj@2"} and "maj@1" not in metrics["overall"]
    prompt = json.loads((tmp_path / "out" / "generations.jsonl").read_text().splitlines()[0])["prompt"]
    assert prompt.startswith("<|endoftext|><|system|>\nAnswer.\n<|user|>\nQ: 1 + 1?\n<|assistant|>\n#### 2")
    with pytest.raises(ConfigError, match="unknown key 'temprature'"):
        evaluate(checkpoint, data_files[1], temprature=1.0)


def test_checkpoints_share_one_engine_with_the_figures_of_separate_runs(
    checkpoint: Path, data_files: list[Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    other = tmp_path / "other"  # another checkpoint of the same model: its weights moved
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    save_model(model, AutoTokenizer.from_pretrained(checkpoint), other)
    settings = {"n": 2, "max_tokens": 8, "backend": "hf", "on_bad_row": "skip"}
    jobs = [(checkpoint, data_files[0], tmp_path / "a"), (other, data_files[0], tmp_path / "b"),
            (other, data_files[1], tmp_path / "c")]  # fmt: skip
    shared = evaluate_checkpoints(jobs, **settings)
    apart = [
        evaluate(model, data, tmp_path / f"apart-{i}", **settings) for i, (model, data, _) in enumerate(jobs)
    ]
    for together, alone in zip(shared, apart, strict=True):
        assert together["overall"] == alone["overall"]
    generations = [(tmp_path / d / "generations.jsonl").read_text() for d in ("a", "b")]
    assert generations[0] != generations[1]  # the second job really sampled from the other weights


@pytest.mark.slow
def test_vllm_backend_end_to_end(checkpoint: Path, data_files: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("vllm")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_LOGGING_LEVEL": "WARNING",
        "OMP_NUM_THREADS": "1",
    }
    run = subprocess.run(
        [sys.executable, "-m", "rlvr.cli", "eval", "--model", str(checkpoint), "--data", str(data_files[0]),
         "--n", "4", "--max-tokens", "24", "--on_bad_row", "skip", "--out_dir", str(out),
         "--vllm.gpu_memory_utilization", "0.1"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "vllm" and metrics["overall"]["prompts"] == 2
    assert metrics["skipped"] == {"unreadable": 1, "too_long": 1}
    generations = [json.loads(line) for line in (out / "generations.jsonl").read_text().splitlines()]
    assert all(len(g["responses"]) == 4 and max(g["response_tokens"]) <= 24 for g in generations)


def test_the_real_benchmark_files_read_through_the_adapters(benchmark_data: Path) -> None:
    from rlvr.rewards import score_batch

    expected = {"gsm8k_test.jsonl": 40, "math500_test.jsonl": 53, "ifeval_input_data.jsonl": 58}
    items = {}
    for name, count in expected.items():
        items[name], skipped = load_items(str(benchmark_data / name))
        assert len(items[name]) == count and skipped == []
    assert {i.dataset for i in items["gsm8k_test.jsonl"]} == {"gsm8k"}
    assert {i.dataset for i in items["math500_test.jsonl"]} == {"math"}
    assert {i.dataset for i in items["ifeval_input_data.jsonl"]} == {"ifeval"}
    # the reference solutions score 1 against the labels the adapters wrote
    raw = [json.loads(line) for line in (benchmark_data / "gsm8k_test.jsonl").read_text().splitlines()]
    rows = [
        {"prediction": r["answer"], "ground_truth": i.ground_truth, "dataset": "gsm8k"}
        for r, i in zip(raw, items["gsm8k_test.jsonl"], strict=True)
    ]
    assert len(rows) == len(raw) > 0 and all(result.score == 1.0 for result in score_batch(rows))
    raw = [json.loads(line) for line in (benchmark_data / "math500_test.jsonl").read_text().splitlines()]
    rows = [
        {"prediction": r["solution"], "ground_truth": i.ground_truth, "dataset": "math"}
        for r, i in zip(raw, items["math500_test.jsonl"], strict=True)
    ]
    assert sum(result.score for result in score_batch(rows)) >= 0.99 * len(rows)
