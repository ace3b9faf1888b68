"""PPO's reward-model term: reward = verification_reward × verifier + rm_multiplier × raw RM score (the
no-EOS penalty replaces it), the `reward_model` verifier scored on the sampler's one loaded model, and
nothing loaded when neither needs it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from test_ppo_trainer import ppo_cfg

from rlvr.algos.common import load_chat_tokenizer
from rlvr.algos.ppo import sampler as sampler_module
from rlvr.algos.ppo.batch import Rollout
from rlvr.algos.ppo.sampler import Sampler
from rlvr.algos.ppo.trainer import PPOTrainer
from rlvr.rewards import reward_model as reward_model_module
from rlvr.rewards.reward_model import RewardModelScorer
from rlvr.rollout import Sample


@pytest.fixture(scope="module")
def reward_model_dir(base_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny sequence-classification reward model (the base model's body, a random head) with its tokenizer."""
    from transformers import AutoModelForSequenceClassification

    from rlvr.algos.reward_model import init_score_head

    out = tmp_path_factory.mktemp("rm")
    model = AutoModelForSequenceClassification.from_pretrained(str(base_checkpoint), num_labels=1)
    init_score_head(model, seed=1)
    with torch.no_grad():
        model.score.weight.mul_(20)  # rewards of a few units, so the RM term is visible against 10
    model.save_pretrained(str(out))
    # the tokenizer with the chat template, as `rlvr rm` saves it
    load_chat_tokenizer(str(base_checkpoint)).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def stopping_policy(suite: Path, base_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base model with EOS made likely (its logit ≈ 5 where the prompts' hidden states point), so
    a 12-token rollout holds finished and unfinished responses."""
    from transformers import AutoModelForCausalLM

    from rlvr.data import load_rows
    from rlvr.generation import chat_prompt

    out = tmp_path_factory.mktemp("stopping_policy")
    tokenizer = load_chat_tokenizer(str(base_checkpoint))
    model = AutoModelForCausalLM.from_pretrained(str(base_checkpoint))
    rows = load_rows(str(suite / "rlvr_test.jsonl"), "rlvr")
    with torch.no_grad():
        hidden = torch.cat([
            model.model(**tokenizer(chat_prompt(row["messages"]), add_special_tokens=False, return_tensors="pt"))
            .last_hidden_state[0] for row in rows
        ])  # fmt: skip
        direction = hidden.mean(0)
        model.lm_head.weight[tokenizer.eos_token_id] = direction / direction.norm()
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


class StubRewardModel:
    """Stands in for `RewardModelScorer`: fixed raw rewards, in order, and a record of what it read."""

    def __init__(self, rewards: list[float]) -> None:
        self.values = rewards
        self.calls: list[tuple[list[Any], list[str]]] = []

    def rewards(self, prompts: Any, responses: Any) -> list[float]:
        self.calls.append((list(prompts), list(responses)))
        return self.values[: len(responses)]


def _row(dataset: Any, ground_truth: Any, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": "What is 6 × 7?"}], "dataset": dataset,
            "ground_truth": ground_truth, **extra}  # fmt: skip


def test_reward_composition_by_hand(
    tmp_path: Path, suite: Path, base_checkpoint: Path, reward_model_dir: Path, monkeypatch
) -> None:
    """verification_reward 10, rm_multiplier 0.5, no-EOS penalty −10, on hand-picked verifier and RM scores."""
    loaded: list[tuple[str, str]] = []
    stub = StubRewardModel([2.0, -1.0, 3.0, 0.0, math.log(3.0)])

    def fake_scorer(path: str, device: str, **_: Any) -> Any:
        loaded.append((path, device))
        stub.model = torch.nn.Linear(1, 1)  # type: ignore[attr-defined]
        return stub

    def no_worker_load(*_: Any, **__: Any) -> Any:
        raise AssertionError("a verifier loaded a reward model")

    monkeypatch.setattr(sampler_module, "RewardModelScorer", fake_scorer)
    monkeypatch.setattr(reward_model_module, "load_scorer", no_worker_load)
    cfg = ppo_cfg(tmp_path, suite, base_checkpoint,
                  {"reward_model": str(reward_model_dir), "reward": {"rm_multiplier": 0.5, "workers": 2}})  # fmt: skip
    trainer = PPOTrainer(cfg)
    sampler = trainer.sampler
    assert sampler is not None and sampler.reward_model is stub
    assert loaded == [(str(reward_model_dir), "cpu")]  # once per run, on the main process's device
    tokenizer, eos = trainer.tokenizer, trainer.tokenizer.eos_token_id

    def sample(text: str, finished: bool) -> Sample:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + ([eos] if finished else [])
        return Sample(ids, finished, [0.0] * len(ids))

    rows = [
        _row("exact_match", "42"),  # right, finished, RM 2: 10·1 + 0.5·2 = 11
        _row("exact_match", "42"),  # wrong, finished, RM −1: 10·0 + 0.5·(−1) = −0.5
        _row("exact_match", "42"),  # right but unfinished, RM 3: the penalty, −10
        _row("rm", None),  # the reward_model verifier, RM 0: 10·sigmoid(0) + 0 = 5
        # weighted mean of exact_match 1 and reward_model sigmoid(ln 3) = 0.75: (1 + 3·0.75) / 4 = 0.8125
        _row(["exact_match", "reward_model"], ["42", "ignored/checkpoint"], weights=[1, 3]),
    ]
    texts, stopped = ["42", "41", "42", "hi", "42"], [True, True, False, True, True]
    samples = [sample(text, finished) for text, finished in zip(texts, stopped, strict=True)]
    scores, metrics = sampler.score(rows, samples)
    want = [11.0, -0.5, -10.0, 5.0, 8.125 + 0.5 * math.log(3.0)]
    assert scores.tolist() == pytest.approx(want, abs=1e-6)
    assert metrics["rm_score"] == pytest.approx((2.0 - 1.0 + 3.0 + 0.0 + math.log(3.0)) / 5)
    assert metrics["verifier_score"] == pytest.approx((1 + 0 + 1 + 0.5 + 0.8125) / 5)
    assert metrics["reward"] == pytest.approx(sum(want) / 5)
    # one batched call, reading each row's chat and the decoded response (EOS dropped: the template adds it)
    assert stub.calls == [([r["messages"] for r in rows], texts)]
    sampler.close()


def test_reward_model_verifier_takes_a_computed_reward_without_loading() -> None:
    result = reward_model_module.reward_model("anything", {"reward": math.log(3.0), "model": "rm"})
    assert result.score == pytest.approx(0.75) and result.details == {"reward": math.log(3.0), "model": "rm"}


def test_scorer_reads_the_whole_chat(reward_model_dir: Path) -> None:
    scorer = RewardModelScorer(reward_model_dir)
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    want = "<|endoftext|><|system|>\nBe brief.\n<|user|>\nHi\n<|assistant|>\nHello<|endoftext|>"
    assert scorer.render(chat, "Hello") == want
    # a user turn is a one-message chat
    assert scorer.render("Hi", "Hello") == scorer.render(chat[1:], "Hello")
    assert scorer.rewards([chat[1:]], ["Hello"]) == pytest.approx(scorer.rewards(["Hi"], ["Hello"]))


def _one_step(cfg: Any, monkeypatch) -> tuple[PPOTrainer, Rollout, dict[str, float]]:
    drawn: list[Rollout] = []
    real_draw = Sampler.draw

    def recording(self: Sampler, *args: Any) -> Rollout:
        drawn.append(real_draw(self, *args))
        return drawn[-1]

    monkeypatch.setattr(Sampler, "draw", recording)
    trainer = PPOTrainer(cfg)
    metrics = trainer.train_step()
    trainer.close()
    return trainer, drawn[0], metrics


def test_rm_multiplier_adds_the_raw_rm_score_and_changes_the_update(
    tmp_path: Path, suite: Path, stopping_policy: Path, reward_model_dir: Path, monkeypatch
) -> None:
    runs = {}
    for multiplier in (0.0, 1.0):
        cfg = ppo_cfg(tmp_path, suite, stopping_policy, {
            "name": f"rm{multiplier}", "reward_model": str(reward_model_dir), "value_init": "reward_model",
            "reward": {"rm_multiplier": multiplier}, "data": {"test": []}, "loss": {"epochs": 1, "minibatches": 1},
        })  # fmt: skip
        runs[multiplier] = _one_step(cfg, monkeypatch)
    (off, off_rollout, off_metrics), (on, on_rollout, on_metrics) = runs[0.0], runs[1.0]
    assert off.sampler is not None and off.sampler.reward_model is None  # not loaded: zero cost
    assert "rm_score" not in off_metrics
    samples = on_rollout.samples
    same_seed = [s.token_ids for s in off_rollout.samples]
    assert [s.token_ids for s in samples] == same_seed  # the same policy and seed sampled both
    finished = torch.tensor([s.finished for s in samples])
    assert finished.any() and not finished.all(), "the test policy should both stop and run on"

    prompts = on.next_prompts(0)
    per_sample_rows = [p.row for p in prompts for _ in range(cfg.rollout.samples_per_prompt)]
    texts = [on.tokenizer.decode(s.token_ids, skip_special_tokens=True) for s in samples]
    rm = RewardModelScorer(reward_model_dir).rewards([r["messages"] for r in per_sample_rows], texts)
    rm = torch.tensor(rm)
    assert on_metrics["rm_score"] == pytest.approx(float(rm.mean()), rel=1e-5)
    difference = on_rollout.scores - off_rollout.scores
    torch.testing.assert_close(difference[finished], 1.0 * rm[finished], rtol=1e-5, atol=1e-5)
    assert (on_rollout.scores[~finished] == cfg.reward.no_eos_penalty).all()
    assert (difference[~finished] == 0).all()

    # the scoring model is a frozen copy: the value model it also seeded has trained away from it
    assert on.sampler is not None and on.value is not None
    scoring, value = on.sampler.reward_model.model, on.value
    assert scoring is not value and not any(p.requires_grad for p in scoring.parameters())
    assert not torch.equal(scoring.score.weight, value.score.weight.detach().cpu())

    changed = [
        name for name, tensor in on.policy.state_dict().items()
        if not torch.equal(tensor, off.policy.state_dict()[name])
    ]  # fmt: skip
    assert changed, "the RM term should change the policy update"


def test_reward_model_rows_need_the_checkpoint_and_one_model(
    tmp_path: Path, suite: Path, base_checkpoint: Path, reward_model_dir: Path
) -> None:
    rows = tmp_path / "rm_rows.jsonl"
    rows.write_text(
        '{"messages": [{"role": "user", "content": "hi"}], "ground_truth": null, "dataset": "rm"}\n'
    )
    with pytest.raises(ValueError, match="set reward_model"):
        PPOTrainer(ppo_cfg(tmp_path, suite, base_checkpoint, {"data": {"train": [str(rows)], "test": []}}))
    with pytest.raises(ValueError, match=r"verifier_options\.reward_model\.model"):
        ppo_cfg(tmp_path, suite, base_checkpoint, {"reward_model": str(reward_model_dir),
                                                   "reward": {"verifier_options": {"reward_model": {"model": "x"}}}})  # fmt: skip
