"""`rlvr prefs`: pair picking by hand-computed scores, the judge's score, and runs end to end (hf backend)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from rlvr.config import ConfigError
from rlvr.data import read_jsonl, write_jsonl
from rlvr.prefs import JudgeConfig, Response, judged, make_prefs, pick_pairs


def response(score: float, finished: bool = True, text: str | None = None, model: str = "m") -> Response:
    return Response(text or f"answer {score} {finished}", finished, model, score, None, score)


# ----------------------------------------------------------------------------- picking


def test_chosen_is_the_best_finished_response_and_rejected_the_worst() -> None:
    a, b, c, d = response(0.5), response(1.0, finished=False), response(0.75), response(0.0)
    pairs, reason = pick_pairs([a, b, c, d], min_margin=0.5)
    assert reason is None
    assert pairs == [(c, d)]  # b scores higher but never stopped: not taught as good


def test_ties_go_to_the_response_sampled_first() -> None:
    first_right, second_right = response(1.0, text="x = 4"), response(1.0, text="x = 4.0")
    first_wrong, second_wrong = response(0.0, text="x = 5"), response(0.0, text="x = 6")
    pairs, _ = pick_pairs([first_wrong, first_right, second_wrong, second_right], min_margin=0.5)
    assert pairs == [(first_right, first_wrong)]


def test_more_pairs_per_prompt_use_each_response_once_while_the_margin_holds() -> None:
    r = [response(1.0, text="a"), response(0.0, text="b"), response(1.0, text="c"), response(0.6, text="d")]
    pairs, _ = pick_pairs(r, min_margin=0.5, pairs=3)
    # a > b (margin 1.0); then c against the next worst, d: margin 0.4 < 0.5, so pairing stops
    assert pairs == [(r[0], r[1])]
    pairs, _ = pick_pairs(r, min_margin=0.3, pairs=3)
    assert pairs == [(r[0], r[1]), (r[2], r[3])]


@pytest.mark.parametrize(
    ("responses", "reason"),
    [
        ([response(1.0, False), response(0.0, False)], "no_finished_response"),
        ([response(1.0, text="a"), response(1.0, text="b")], "all_equal_scores"),
        ([response(0.0, text="a"), response(0.0, text="b")], "all_equal_scores"),
        ([response(0.6), response(0.3)], "margin_below_min"),
        (
            [response(0.0), response(1.0, finished=False)],
            "margin_below_min",
        ),  # the best finished is the worst
    ],
)
def test_prompts_without_a_pair_say_why(responses: list[Response], reason: str) -> None:
    assert pick_pairs(responses, min_margin=0.5) == ([], reason)


def test_a_right_answer_with_a_false_step_is_never_chosen() -> None:
    record = {
        "responses": [
            "21 - 9 = 10. 10 - 8 = 4. #### 4",
            "21 - 9 = 12. 12 - 8 = 4. #### 4",
            "21 - 9 = 12. #### 12",
        ],
        "finished": [True, True, True],
        "scores": [1.0, 1.0, 0.0],
    }
    lucky, sound, wrong = judged(record, "sft", JudgeConfig())
    assert (lucky.sound, sound.sound, wrong.sound) == (False, True, True)
    assert pick_pairs([lucky, sound, wrong], min_margin=0.5) == ([(sound, wrong)], None)
    # with only the lucky answer right, the best chosen candidate is the wrong answer: no pair
    assert pick_pairs([lucky, wrong], min_margin=0.5) == ([], "margin_below_min")
    assert pick_pairs([lucky, response(0.0, finished=False)], min_margin=0.5) == ([], "false_arithmetic")
    unsound_wrong = replace(response(0.0, text="2 + 2 = 5. #### 5"), sound=False)
    assert pick_pairs([sound, unsound_wrong], min_margin=0.5) == ([(sound, unsound_wrong)], None)
    unchecked = judged(record, "sft", JudgeConfig(check_arithmetic=False))
    assert all(r.sound for r in unchecked)
    assert pick_pairs(unchecked, min_margin=0.5)[0] == [(unchecked[0], unchecked[2])]


def test_the_score_weighs_verifier_and_reward_model() -> None:
    record = {
        "responses": ["a", "b"],
        "finished": [True, False],
        "scores": [1.0, 0.5],
        "rm_scores": [2.0, -1.0],
    }
    judge = JudgeConfig(verifier_weight=1.0, rm_weight=0.25, reward_model="rm")
    first, second = judged(record, "sft", judge)
    assert (first.score, second.score) == (1.0 + 0.25 * 2.0, 0.5 - 0.25)
    assert (first.model, second.finished, second.rm_score) == ("sft", False, -1.0)
    verifier_only = judged({**record, "rm_scores": None}, "sft", JudgeConfig())
    assert [r.score for r in verifier_only] == [1.0, 0.5]


# ----------------------------------------------------------------------------- end to end

TEXTS = [
    "Sam has 3 apples and buys 4 more. How many now? 7 apples.",
    "Write in lower case: hello world.",
] * 20
ROWS = [
    {"messages": [{"role": "user", "content": f"Sam has {n} apples and buys 2. How many?"}],
     "ground_truth": str(n + 2), "dataset": "gsm8k"}
    for n in range(7)
]  # fmt: skip


@pytest.fixture(scope="module")
def models(make_tiny_checkpoint: Callable[[Sequence[str]], Path], tmp_path_factory: pytest.TempPathFactory):
    """A tiny policy that often stops within a few tokens, and a tiny reward model (same tokenizer)
    whose scores make pairs from noise."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    policy = make_tiny_checkpoint(TEXTS)
    tokenizer = AutoTokenizer.from_pretrained(policy)
    model = AutoModelForCausalLM.from_pretrained(policy)
    with torch.no_grad():  # EOS's logit row along the prompts' mean hidden state: EOS becomes likely
        texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False, add_generation_prompt=True)
                 for r in ROWS]  # fmt: skip
        hidden = torch.cat([
            model.model(**tokenizer(t, add_special_tokens=False, return_tensors="pt")).last_hidden_state[0]
            for t in texts
        ])  # fmt: skip
        direction = hidden.mean(0)
        model.lm_head.weight[tokenizer.eos_token_id] = direction / direction.norm()
    model.save_pretrained(policy)
    rm = AutoModelForSequenceClassification.from_pretrained(policy, num_labels=1)
    out = tmp_path_factory.mktemp("rm")
    rm.save_pretrained(out)
    AutoTokenizer.from_pretrained(policy).save_pretrained(out)
    return policy, out


def test_pairs_from_two_models_judged_by_the_reward_model(models: tuple[Path, Path], tmp_path: Path) -> None:
    policy, rm = models
    data = tmp_path / "prompts.jsonl"
    write_jsonl(ROWS, data)
    settings = {
        "judge": {"verifier_weight": 0.0, "rm_weight": 1.0, "reward_model": str(rm), "min_margin": 1e-6},
        "max_tokens": 12, "backend": "hf", "chunk_size": 3, "batch_size": 2,
    }  # fmt: skip
    sources = [{"model": str(policy), "n": 2, "name": "sft"}, {"model": str(policy), "n": 1, "name": "other"}]
    report = make_prefs(data, sources, tmp_path / "out", **settings)
    pairs = [row for _, row in read_jsonl(tmp_path / "out" / "prefs.jsonl")]
    assert report["prompts"] == len(ROWS)
    assert report["pairs"] == len(pairs) == report["prompts_with_pair"] > 0
    assert report["prompts_with_pair"] + sum(report["prompts_without_pair"].values()) == len(ROWS)
    for pair in pairs:
        assert pair["chosen"][:-1] == pair["rejected"][:-1] == ROWS[pair["line"] - 1]["messages"]
        assert pair["chosen"][-1]["role"] == pair["rejected"][-1]["role"] == "assistant"
        assert pair["chosen_score"] - pair["rejected_score"] >= 1e-6
        assert pair["chosen_score"] == pair["chosen_rm_score"]  # verifier weight 0: the RM decides
        assert {pair["chosen_model"], pair["rejected_model"]} <= {"sft", "other"}
        assert pair["dataset"] == "gsm8k" and pair["judge"]["reward_model"] == str(rm)
    for name, n in (("sft", 2), ("other", 1)):
        samples = [row for _, row in read_jsonl(tmp_path / "out" / "samples" / f"{name}.jsonl")]
        assert len(samples) == len(ROWS) and all(len(s["rm_scores"]) == n for s in samples)


def test_a_killed_run_resumes_to_the_same_pairs(models: tuple[Path, Path], tmp_path: Path) -> None:
    policy, rm = models
    data = tmp_path / "prompts.jsonl"
    write_jsonl(ROWS, data)
    settings = {
        "judge": {"verifier_weight": 0.0, "rm_weight": 1.0, "reward_model": str(rm), "min_margin": 1e-6},
        "max_tokens": 12, "backend": "hf", "chunk_size": 3, "seed": 5,
    }  # fmt: skip
    whole = tmp_path / "whole"
    make_prefs(data, [{"model": str(policy), "n": 3}], whole, **settings)
    killed = tmp_path / "killed"
    make_prefs(data, [{"model": str(policy), "n": 3}], killed, **settings)
    samples = killed / "samples" / f"{policy.name}.jsonl"
    lines = samples.read_text().splitlines(keepends=True)
    samples.write_text("".join(lines[:4]))  # one whole chunk of 3 prompts and one row of the next
    (killed / "prefs.jsonl").unlink()
    make_prefs(data, [{"model": str(policy), "n": 3}], killed, **settings)
    assert (killed / "prefs.jsonl").read_text() == (whole / "prefs.jsonl").read_text()
    assert samples.read_text() == (whole / "samples" / samples.name).read_text()
    with pytest.raises(ConfigError, match="max_tokens changed"):
        make_prefs(data, [{"model": str(policy), "n": 3}], killed, **{**settings, "max_tokens": 9})


def test_a_new_judge_repicks_from_the_saved_samples(
    models: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy, rm = models
    data = tmp_path / "prompts.jsonl"
    write_jsonl(ROWS, data)
    settings = {"max_tokens": 12, "backend": "hf", "chunk_size": 3}
    first = make_prefs(data, [{"model": str(policy), "n": 3}], tmp_path / "out", **settings)
    assert first["pairs"] == 0  # the verifiers alone find every random answer wrong
    samples = tmp_path / "out" / "samples" / f"{policy.name}.jsonl"
    before = [row["responses"] for _, row in read_jsonl(samples)]

    def no_sampling(*args: object, **kwargs: object) -> None:
        raise AssertionError("the saved samples should have been judged again, not sampled")

    monkeypatch.setattr("rlvr.prefs.build_engine", no_sampling)
    judge = {"verifier_weight": 1.0, "rm_weight": 1.0, "reward_model": str(rm), "min_margin": 1e-6}
    second = make_prefs(data, [{"model": str(policy), "n": 3}], tmp_path / "out", judge=judge, **settings)
    assert second["pairs"] > 0
    rows = [row for _, row in read_jsonl(samples)]
    assert [row["responses"] for row in rows] == before
    assert all(len(row["rm_scores"]) == 3 and row["rm_model"] == str(rm) for row in rows)


def test_the_command_line_writes_the_report(
    models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from rlvr.cli import main

    policy, _ = models
    data = tmp_path / "prompts.jsonl"
    write_jsonl(ROWS, data)
    out = tmp_path / "out"
    argv = ["prefs", f"--data={data}", f"--out_dir={out}", f"--models=[{{model: {policy}, n: 2}}]"]
    assert main([*argv, "--max_tokens=6", "--backend=hf"]) == 0
    report = json.loads((out / "report.json").read_text())
    printed = capsys.readouterr().out
    assert f"{report['pairs']:,} pairs from" in printed and str(out / "prefs.jsonl") in printed
    # a random model never answers right: every prompt's answers tie at 0, or none stopped
    assert report["pairs"] == 0 and report["prompts_with_pair"] == 0
    reasons = report["prompts_without_pair"]
    assert set(reasons) <= {"all_equal_scores", "no_finished_response"} and sum(reasons.values()) == len(ROWS)
    assert report["all_equal_scores_by_score"] == (
        {"0": reasons["all_equal_scores"]} if "all_equal_scores" in reasons else {}
    )
    assert main(["prefs", f"--data={data}", f"--out_dir={out}", "--models=[]"]) == 2
