"""reward_model: a tiny random Olmo2ForSequenceClassification saved to tmp, with a local tokenizer."""

import math

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from rlvr.rewards import run_verifier  # noqa: E402
from rlvr.rewards.reward_model import RewardModelScorer, load_scorer  # noqa: E402

WORDS = [
    "<pad>",
    "<eos>",
    "<unk>",
    "the",
    "answer",
    "is",
    "42",
    "41",
    "a",
    "b",
    "c",
    "user",
    "assistant",
    "what",
]
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} {% endfor %}<eos>"


def _save_checkpoint(path, chat_template=None):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {word: i for i, word in enumerate([*WORDS, "<|user|>", "<|assistant|>"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    config = transformers.Olmo2Config(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=64, num_labels=1, pad_token_id=0, eos_token_id=1,
        rope_theta=500_000.0, rms_norm_eps=1e-6,
    )  # fmt: skip
    torch.manual_seed(0)
    model = transformers.Olmo2ForSequenceClassification(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return model, tokenizer


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("rm")
    model, tokenizer = _save_checkpoint(path)
    return path, model.eval(), tokenizer


def _reference_reward(model, tokenizer, text):
    ids = tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state
        return model.score(hidden)[0, -1, 0].item()


def test_reward_is_the_head_at_the_last_token_whatever_the_padding(checkpoint):
    path, model, tokenizer = checkpoint
    scorer = RewardModelScorer(path, batch_size=4)
    prompts = ["what is the answer", None, "a", "b c"]
    responses = ["the answer is 42", "41", "a b c the answer is 41 41", "c"]
    batched = scorer.rewards(prompts, responses)
    one_by_one = [scorer.rewards([p], [r])[0] for p, r in zip(prompts, responses, strict=True)]
    assert batched == pytest.approx(one_by_one, abs=1e-5)
    expected = [
        _reference_reward(model, tokenizer, (p or "") + r) for p, r in zip(prompts, responses, strict=True)
    ]
    assert batched == pytest.approx(expected, abs=1e-5)
    assert len(set(round(x, 6) for x in batched)) > 1  # a random head still tells inputs apart


def test_verifier_scores_sigmoid_of_the_reward(checkpoint):
    path, model, tokenizer = checkpoint
    result = run_verifier(
        "reward_model", "the answer is 42", None, prompt="what", options={"model": str(path)}
    )
    reward = _reference_reward(model, tokenizer, "whatthe answer is 42")
    assert result.details["reward"] == pytest.approx(reward, abs=1e-5)
    assert result.score == pytest.approx(1 / (1 + math.exp(-reward)))
    assert run_verifier("rm", "the answer", str(path)).score == pytest.approx(
        run_verifier("rm", "the answer", {"model": str(path)}).score
    )
    assert load_scorer.cache_info().currsize >= 1


def test_chat_template_is_used_when_present(tmp_path):
    model, tokenizer = _save_checkpoint(tmp_path, TEMPLATE)
    scorer = RewardModelScorer(tmp_path)
    assert scorer.render("what", "42") == "<|user|> what <|assistant|> 42 <eos>"
    expected = _reference_reward(model.eval(), tokenizer, "<|user|> what <|assistant|> 42 <eos>")
    assert scorer.rewards(["what"], ["42"])[0] == pytest.approx(expected, abs=1e-5)


def test_missing_checkpoint_is_a_label_error(tmp_path):
    assert "LabelError" in run_verifier("reward_model", "x", None).details["error"]
    assert "does not exist" in run_verifier("reward_model", "x", str(tmp_path / "none")).details["error"]
