from pathlib import Path

import pytest
from transformers import AutoTokenizer

from base_model.tokenizer import load_fast_encoder, load_tokenizer, train_tokenizer
from rlvr.chat import EOS_TOKEN, PAD_TOKEN, SPECIAL_TOKENS, render_chat

HARD_STRINGS = [
    "",
    " ",
    "    four leading spaces",
    "trailing spaces   ",
    "tabs\t\tand\tmore\t",
    "\n",
    "\n\n\nthree newlines",
    "windows\r\nline\r\nends\r\n",
    "mixed \t \n \r\n  \t\t  whitespace",
    'def f(x):\n    if x:\n\t\treturn {"a": [1, 2]}  # comment\n    return None\n',
    "x=1;y=2;print(x+y)!==<<>>&&||",
    "unicode: héllo wörld, naïve café, Ελληνικά, русский, 日本語, 한국어, עברית, العربية",
    "emoji 🙂👍🏽 and ZWJ 👨‍👩‍👧 family",
    "combining e\u0301 and A\u030a, zero\u200bwidth",
    "control \x00\x01\x07\x1b bytes",
    "numbers 0 7 42 123456789 3.14159 -17 1,000,000",
    "<|user|> looks special <|endoftext|> <|pad|>",
    "<|not a token|> <| |>",
    "a" * 300,
    " ".join(["word"] * 50),
]


def test_every_string_round_trips(tokenizer_dir: Path) -> None:
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    raw = load_fast_encoder(tokenizer_dir)
    for text in HARD_STRINGS:
        ids = tok(text)["input_ids"]
        assert tok.decode(ids) == text, repr(text)
        assert raw.decode(raw.encode(text).ids, skip_special_tokens=False) == text, repr(text)


def test_all_256_bytes_are_in_the_vocabulary(tokenizer_dir: Path) -> None:
    tok = load_tokenizer(tokenizer_dir)
    text = bytes(range(128)).decode("latin-1") + "".join(chr(c) for c in range(128, 256))
    assert tok.unk_token_id is None
    assert tok.decode(tok(text)["input_ids"]) == text


def test_digits_are_split_one_per_token(tokenizer_dir: Path) -> None:
    tok = load_tokenizer(tokenizer_dir)
    ids = tok("Tom has 1234 apples and 56 pens; 2024-11-22")["input_ids"]
    pieces = [tok.decode([i]) for i in ids]
    for piece in pieces:
        if any(c.isdigit() for c in piece):
            assert len(piece.strip()) == 1, pieces


def test_training_time_and_serving_time_ids_agree(tokenizer_dir: Path, corpus: Path) -> None:
    """The raw Rust tokenizer (batched, what `prepare` uses) and AutoTokenizer give identical ids."""
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    raw = load_fast_encoder(tokenizer_dir)
    texts = HARD_STRINGS + corpus.read_text().splitlines()[:200]
    batched = raw.encode_batch(texts, add_special_tokens=False)
    for text, enc in zip(texts, batched, strict=True):
        assert enc.ids == tok(text)["input_ids"] == tok.encode(text), repr(text)


def test_special_tokens_and_ids(tokenizer_dir: Path) -> None:
    tok = load_tokenizer(tokenizer_dir)
    assert [tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    assert tok.eos_token == EOS_TOKEN and tok.bos_token == EOS_TOKEN and tok.pad_token == PAD_TOKEN
    for token in SPECIAL_TOKENS:  # each special token is one id, never split into bytes
        assert tok(f"x{token}y")["input_ids"][1] == tok.convert_tokens_to_ids(token)
    assert tok("plain text")["input_ids"][0] != tok.eos_token_id  # nothing is prepended


@pytest.mark.parametrize(
    "messages",
    [
        [
            {"role": "user", "content": "What is 2 + 3?"},
            {"role": "assistant", "content": "2 + 3 = 5. #### 5"},
        ],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi\n  there"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again?"},
            {"role": "assistant", "content": "Yes."},
        ],
    ],
)
def test_embedded_chat_template_matches_render_chat(
    tokenizer_dir: Path, messages: list[dict[str, str]]
) -> None:
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    assert tok.apply_chat_template(messages, tokenize=False) == render_chat(messages)
    prompt = messages[:-1]
    rendered = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    assert rendered == render_chat(prompt, add_generation_prompt=True)
    assert tok.decode(tok(rendered)["input_ids"]) == rendered


def test_vocab_size_is_an_upper_bound_and_checked(tmp_path: Path) -> None:
    texts = ["the cat sat on the mat " * 20] * 50
    tok = train_tokenizer(texts, tmp_path / "a", vocab_size=300)
    assert len(tok) <= 300
    with pytest.raises(ValueError, match="too small"):
        train_tokenizer(texts, tmp_path / "b", vocab_size=100)


def test_missing_tokenizer_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="rlvr pretrain tokenizer"):
        load_tokenizer(tmp_path)
