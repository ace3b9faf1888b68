"""Byte-level BPE trained on the corpus, saved as a Hugging Face tokenizer with the chat template.

Choices, and why:
- Byte-level: every byte sequence round-trips, so whitespace runs, tabs, newlines and code survive
  (the OpenLLaMA lesson). The 256 byte symbols are always in the vocabulary, even when unseen.
- Pre-tokenisation is cl100k's (the pattern OLMo 2's tokenizer uses) with one change: digits
  are split one per token, so every number is spelled digit by digit — arithmetic needs it.
- Special tokens `<|endoftext|>`, `<|pad|>` and the chat roles get the first ids; the chat
  template from `rlvr.chat` is embedded so `apply_chat_template` and vLLM render the same text.
- No post-processor: nothing is added to `encode(text)`, so training-time tokenisation (the raw
  `tokenizers` object, batched), `AutoTokenizer` and vLLM all produce the same ids (tested).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from rlvr.chat import CHAT_TEMPLATE, EOS_TOKEN, PAD_TOKEN, SPECIAL_TOKENS

# cl100k_base's split pattern with `\p{N}{1,3}` replaced by `\p{N}`: one digit per pre-token.
SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def new_bpe() -> Tokenizer:
    """An untrained byte-level BPE with rlvr's pre-tokenisation."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(SPLIT_PATTERN), behavior="isolated"),
            # The split above already did the regex work; ByteLevel only maps bytes to symbols.
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def train_tokenizer(
    texts: Iterable[str], out_dir: str | Path, vocab_size: int = 1024, min_frequency: int = 2
) -> PreTrainedTokenizerFast:
    """Train on `texts`, save to `out_dir` (loadable by `AutoTokenizer` and vLLM) and return it.

    `vocab_size` includes the special tokens and the 256 byte symbols; a small corpus may stop
    short of it (no merge reaches `min_frequency`), which is fine — the model's embedding only
    has to be at least as large.
    """
    if vocab_size < 256 + len(SPECIAL_TOKENS):
        raise ValueError(
            f"vocab_size {vocab_size} is too small: byte-level BPE needs at least 256 + {len(SPECIAL_TOKENS)}"
        )
    tokenizer = new_bpe()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    return save_tokenizer(tokenizer, out_dir)


def save_tokenizer(tokenizer: Tokenizer, out_dir: str | Path) -> PreTrainedTokenizerFast:
    """Wrap a trained `tokenizers.Tokenizer` with rlvr's special tokens and chat template and save it."""
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS_TOKEN,  # the chat template opens with <|endoftext|>
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        additional_special_tokens=[t for t in SPECIAL_TOKENS if t not in (EOS_TOKEN, PAD_TOKEN)],
        clean_up_tokenization_spaces=False,  # the default would eat spaces before punctuation on decode
        model_max_length=1 << 30,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(str(out_dir))
    return fast


def tokenizer_file(path: str | Path) -> Path:
    """`path/tokenizer.json`, or an error that says how to make one."""
    file = Path(path) / "tokenizer.json"
    if not file.is_file():
        raise FileNotFoundError(
            f"no tokenizer at {path} (tokenizer.json missing); train one with "
            f"`rlvr pretrain tokenizer --inputs DATA.jsonl --out {path}`"
        )
    return file


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(str(tokenizer_file(path).parent))


def load_fast_encoder(path: str | Path) -> Tokenizer:
    """The raw Rust tokenizer, for batched, multi-threaded encoding of large corpora."""
    return Tokenizer.from_file(str(tokenizer_file(path)))


def fingerprint(path: str | Path) -> str:
    """A short hash of `tokenizer.json`: token files record it, so the trainer can refuse a mismatch."""
    return hashlib.sha256(tokenizer_file(path).read_bytes()).hexdigest()[:16]
