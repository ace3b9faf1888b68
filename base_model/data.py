"""Token memmaps: text → flat uint32 files, and the fixed-length chunk reader the trainer uses.

On disk (the OLMo format, which SFT can share):
- `NAME.tokens.bin`: headerless uint32 token ids, documents concatenated, `<|endoftext|>` after each;
- `NAME.mask.bin` (optional): one byte per token, 0 → that token is never a label;
- `val/NAME.tokens.bin` (optional): held-out documents, split off at the document level;
- `meta.json` (in both directories): tokenizer fingerprint, vocab size, EOS id, per-file counts.

So `DIR/*.tokens.bin` is the training data and `DIR/val/*.tokens.bin` the held-out data.

Rows are `{"text": ...}` (all tokens are labels) or chats `{"messages": [...]}`, rendered with the
chat template; their masks mark only assistant output (content and closing EOS) as labels.

Reading: each file is cut into non-overlapping chunks of `seq_len` tokens (the tail is dropped).
A training mixture is several sources with weights. Sample k of the run comes from the source
whose share is furthest behind its weight (deterministic stride scheduling, ties to the first
source); within a source, chunks follow a fresh seeded permutation each epoch. The whole order
is a function of (seed, per-source counters), so resuming only needs the counters.
"""

from __future__ import annotations

import glob
import json
import math
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from base_model.tokenizer import fingerprint, load_fast_encoder
from rlvr.chat import render_chat, render_segments
from rlvr.data import DataError, JsonLineError, LoadReport, read_jsonl, row_problems
from rlvr.logprobs import IGNORE_INDEX

TOKEN_DTYPE = np.uint32
TOKENS_SUFFIX = ".tokens.bin"
MASK_SUFFIX = ".mask.bin"
VAL_DIR = "val"


# ----------------------------------------------------------------------------- reading text


def iter_rows(source: str, split: str = "train") -> Iterator[tuple[int, Any]]:
    """Stream `(row_number, row)` from a local .jsonl/.json/.parquet file or a hub data set name."""
    path = Path(source)
    if path.exists():
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".json"):
            yield from read_jsonl(path)
        elif suffix == ".parquet":
            import pyarrow.parquet as pq

            number = 0
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                for row in batch.to_pylist():
                    number += 1
                    yield number, row
        else:
            raise DataError(f"{source}: unsupported file type '{suffix}'; use .jsonl, .json or .parquet")
        return
    if source.endswith((".jsonl", ".json", ".parquet")) or source.startswith((".", "/")):
        raise DataError(f"{source}: no such file")
    import datasets

    name, _, hub_split = source.partition(":")
    try:
        rows = datasets.load_dataset(name, split=hub_split or split, streaming=True)
    except Exception as err:  # datasets raises many types for "not found / offline"
        raise DataError(
            f"{source}: could not load from the Hugging Face hub ({type(err).__name__}: {err}). "
            "Use a local .jsonl/.parquet path, or check the name and your network."
        ) from err
    yield from enumerate(rows, start=1)


def row_kind(row: Any) -> tuple[str | None, list[str]]:
    """`("text" | "sft", [])` for a usable row, else `(None, problems)`."""
    if isinstance(row, JsonLineError):
        return None, [str(row)]
    if isinstance(row, dict) and "messages" in row and "text" not in row:
        problems = row_problems(row, "sft")
        return (None, problems) if problems else ("sft", [])
    problems = row_problems(row, "text")
    if problems and isinstance(row, dict) and "text" not in row:
        problems = ["expected a 'text' string or a 'messages' chat"]
    return (None, problems) if problems else ("text", [])


def iter_documents(source: str, max_documents: int | None = None) -> Iterator[dict[str, Any]]:
    """Valid rows of one source; bad rows are all collected and raised together at the end."""
    bad: list[tuple[int, str]] = []
    kept = 0
    for number, row in iter_rows(source):
        if max_documents is not None and kept >= max_documents:
            break
        kind, problems = row_kind(row)
        if kind is None:
            bad.append((number, "; ".join(problems)))
            continue
        kept += 1
        yield row
    if bad:
        report = LoadReport(source=source, kept=kept, skipped=bad)
        raise DataError(f"bad rows in {report.summary()}. Fix or remove them and run again.")
    if kept == 0:
        raise DataError(f"{source}: no documents (rows need a 'text' string or a 'messages' chat)")


def iter_texts(sources: Sequence[str], max_documents: int | None = None) -> Iterator[str]:
    """Document texts as the model will see them (chats rendered with the template), for tokenizer training."""
    for source in sources:
        for row in iter_documents(source, max_documents):
            yield row["text"] if "text" in row else render_chat(row["messages"])


# ----------------------------------------------------------------------------- writing memmaps


@dataclass
class _Writer:
    """Appends one split (train or val) of one source to its token (and mask) file."""

    tokens_path: Path
    with_mask: bool
    tokens: int = 0
    documents: int = 0

    def __post_init__(self) -> None:
        self.tokens_path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.tokens_path.with_name(self.tokens_path.name + ".tmp")
        self._tok = self._tmp.open("wb")
        self._mask = self._mask_tmp.open("wb") if self.with_mask else None

    @property
    def mask_path(self) -> Path:
        return self.tokens_path.with_name(self.tokens_path.name.removesuffix(TOKENS_SUFFIX) + MASK_SUFFIX)

    @property
    def _mask_tmp(self) -> Path:
        return self.mask_path.with_name(self.mask_path.name + ".tmp")

    def add(self, ids: list[int], mask: list[bool]) -> None:
        self._tok.write(np.asarray(ids, dtype=TOKEN_DTYPE).tobytes())
        if self._mask is not None:
            self._mask.write(np.asarray(mask, dtype=np.bool_).tobytes())
        self.tokens += len(ids)
        self.documents += 1

    def close(self, keep: bool) -> None:
        """Move the finished files into place (or delete them): a crash never leaves a half file behind."""
        self._tok.close()
        if self._mask is not None:
            self._mask.close()
        pairs = [(self._tmp, self.tokens_path)] + (
            [(self._mask_tmp, self.mask_path)] if self.with_mask else []
        )
        for tmp, final in pairs:
            if keep and self.documents:
                tmp.replace(final)
            else:
                tmp.unlink(missing_ok=True)


def _encode_batch(
    rows: list[dict[str, Any]], encoder: Any, eos_id: int
) -> list[tuple[list[int], list[bool]]]:
    """Token ids and label masks for a batch of rows; texts get a closing EOS, chats already end with one."""
    texts = [row["text"] for row in rows if "text" in row]
    encoded = iter(encoder.encode_batch(texts, add_special_tokens=False))
    out = []
    for row in rows:
        if "text" in row:
            ids = [*next(encoded).ids, eos_id]
            out.append((ids, [True] * len(ids)))
            continue
        ids, mask = [], []
        # Segment by segment, so the mask is exact; the template's segments begin and end at special
        # tokens or newlines, where the pre-tokeniser splits anyway.
        for text, trainable in render_segments(row["messages"]):
            piece = encoder.encode(text, add_special_tokens=False).ids
            ids += piece
            mask += [trainable] * len(piece)
        out.append((ids, mask))
    return out


def output_name(source: str) -> str:
    """`data/pretrain.jsonl` → `pretrain`; `org/name:split` → `org__name__split`."""
    path = Path(source)
    if path.exists():
        return path.stem
    return source.replace("/", "__").replace(":", "__")


def prepare_memmaps(
    inputs: Sequence[str],
    tokenizer_dir: str | Path,
    out_dir: str | Path,
    val_fraction: float = 0.0,
    label_mask: bool = False,
    seed: int = 0,
    max_documents: int | None = None,
    batch_size: int = 512,
) -> dict[str, dict[str, Any]]:
    """Tokenise each input into `out_dir/NAME.tokens.bin` (+ `NAME.mask.bin`, + `val/NAME.tokens.bin`).

    `val_fraction` of the documents (chosen by a seeded coin per document) go to `out_dir/val/`.
    Returns the per-file records also written to `out_dir/meta.json`.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder = load_fast_encoder(tokenizer_dir)
    eos_id = encoder.token_to_id("<|endoftext|>")
    meta = _read_meta(out_dir, tokenizer_dir, encoder)
    for source in inputs:
        name = output_name(source)
        writers = {"train": _Writer(out_dir / f"{name}{TOKENS_SUFFIX}", label_mask)}
        if val_fraction:
            writers["val"] = _Writer(out_dir / VAL_DIR / f"{name}{TOKENS_SUFFIX}", label_mask)
        ok = False
        try:
            _write_source(source, writers, encoder, eos_id, val_fraction, seed, max_documents, batch_size)
            ok = True
        finally:
            for writer in writers.values():
                writer.close(keep=ok)
        if not writers["train"].documents:
            raise DataError(f"{source}: every document went to the held-out split; lower val_fraction")
        for writer in writers.values():
            if writer.documents:
                meta["files"][str(writer.tokens_path.relative_to(out_dir))] = {
                    "source": source,
                    "tokens": writer.tokens,
                    "documents": writer.documents,
                    "mask": label_mask,
                }
    text = json.dumps(meta, indent=2) + "\n"
    (out_dir / "meta.json").write_text(text)
    if (out_dir / VAL_DIR).is_dir():
        (out_dir / VAL_DIR / "meta.json").write_text(text)
    return meta["files"]


def _write_source(
    source: str,
    writers: dict[str, _Writer],
    encoder: Any,
    eos_id: int,
    val_fraction: float,
    seed: int,
    max_documents: int | None,
    batch_size: int,
) -> None:
    """Tokenise one source in batches (the Rust encoder parallelises within a batch) into its writers."""
    rng = np.random.default_rng(seed)  # one coin per document, in file order: the split is reproducible

    def write(rows: list[dict[str, Any]]) -> None:
        for ids, mask in _encode_batch(rows, encoder, eos_id):
            writers["val" if val_fraction and rng.random() < val_fraction else "train"].add(ids, mask)

    batch: list[dict[str, Any]] = []
    for row in iter_documents(source, max_documents):
        batch.append(row)
        if len(batch) == batch_size:
            write(batch)
            batch = []
    write(batch)


def _read_meta(out_dir: Path, tokenizer_dir: str | Path, encoder: Any) -> dict[str, Any]:
    meta = {
        "format": "flat uint32 token ids, EOS after each document; .mask.bin: one byte per token",
        "tokenizer": str(tokenizer_dir),
        "tokenizer_fingerprint": fingerprint(tokenizer_dir),
        "vocab_size": encoder.get_vocab_size(),
        "eos_token_id": encoder.token_to_id("<|endoftext|>"),
        "files": {},
    }
    path = out_dir / "meta.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old.get("tokenizer_fingerprint") != meta["tokenizer_fingerprint"]:
            raise DataError(
                f"{out_dir} already holds token files from another tokenizer ({old.get('tokenizer')}); "
                "use a new --out directory per tokenizer"
            )
        meta["files"] = old.get("files", {})
    return meta


# ----------------------------------------------------------------------------- reading chunks


def expand_paths(patterns: Sequence[str]) -> list[Path]:
    """Token files from paths or globs (sorted, so the order never depends on the file system)."""
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches or not all(Path(m).is_file() for m in matches):
            raise DataError(
                f"token file(s) '{pattern}' not found; make them with "
                "`rlvr pretrain prepare --inputs DATA.jsonl --tokenizer TOK --out DIR`"
            )
        paths += [Path(m) for m in matches]
    return paths


def check_tokenizer(paths: Sequence[Path], tokenizer_dir: str | Path) -> None:
    """Refuse token files written by another tokenizer (when their meta.json says so)."""
    expected = fingerprint(tokenizer_dir)
    for path in paths:
        meta_path = path.parent / "meta.json"
        if not meta_path.is_file():
            print(f"warning: {path} has no meta.json beside it; cannot check its tokenizer", file=sys.stderr)
            continue
        found = json.loads(meta_path.read_text()).get("tokenizer_fingerprint")
        if found != expected:
            raise DataError(
                f"{path} was tokenised with another tokenizer ({found}) than {tokenizer_dir} ({expected}); "
                "re-run `rlvr pretrain prepare` with this tokenizer"
            )


class TokenFile:
    """One memmapped token file (and its mask, if present) cut into `seq_len` chunks."""

    def __init__(self, path: Path, seq_len: int) -> None:
        self.path = path
        self.tokens = np.memmap(path, dtype=TOKEN_DTYPE, mode="r")
        mask_path = path.with_name(path.name.removesuffix(TOKENS_SUFFIX) + MASK_SUFFIX)
        self.mask = np.memmap(mask_path, dtype=np.bool_, mode="r") if mask_path.is_file() else None
        if self.mask is not None and len(self.mask) != len(self.tokens):
            raise DataError(f"{mask_path} has {len(self.mask):,} entries for {len(self.tokens):,} tokens")
        self.seq_len = seq_len
        self.n_chunks = len(self.tokens) // seq_len

    def chunk(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        span = slice(i * self.seq_len, (i + 1) * self.seq_len)
        return self.tokens[span], (self.mask[span] if self.mask is not None else None)


class ChunkSource:
    """The chunks of several token files, numbered consecutively."""

    def __init__(self, paths: Sequence[Path], seq_len: int, name: str = "") -> None:
        self.name = name or ",".join(p.name for p in paths)
        self.files = [TokenFile(p, seq_len) for p in paths]
        self.starts = np.cumsum([0] + [f.n_chunks for f in self.files])
        self.n_chunks = int(self.starts[-1])
        if self.n_chunks == 0:
            raise DataError(
                f"source '{self.name}' holds fewer than {seq_len} tokens: not one chunk to train on"
            )

    def chunk(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        f = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.files[f].chunk(i - int(self.starts[f]))


def collate(chunks: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(input_ids, labels)`, both `[batch, seq_len]` int64; masked-out labels are IGNORE_INDEX.

    Labels are not shifted here: the loss compares position t's logits with label t+1.
    """
    ids = torch.from_numpy(np.stack([c[0] for c in chunks]).astype(np.int64))
    labels = ids.clone()
    for row, (_, mask) in enumerate(chunks):
        if mask is not None:
            labels[row, torch.from_numpy(~np.asarray(mask))] = IGNORE_INDEX
    return ids, labels


class MixtureSampler:
    """Deterministic, resumable order of chunks over weighted sources (see the module docstring)."""

    def __init__(self, sources: Sequence[ChunkSource], weights: Sequence[float], seed: int) -> None:
        if len(sources) != len(weights) or not sources:
            raise ValueError("need one weight per source, and at least one source")
        if any(w <= 0 for w in weights):
            raise ValueError(f"mixture weights must be positive, got {list(weights)}")
        self.sources = list(sources)
        self.weights = np.asarray(weights, dtype=np.float64) / float(sum(weights))
        self.seed = seed
        self.counts = [0] * len(sources)
        self._perms: dict[int, tuple[int, np.ndarray]] = {}

    def _permutation(self, source: int, epoch: int) -> np.ndarray:
        cached = self._perms.get(source)
        if cached is None or cached[0] != epoch:
            rng = np.random.default_rng([self.seed, source, epoch])
            cached = (epoch, rng.permutation(self.sources[source].n_chunks))
            self._perms[source] = cached
        return cached[1]

    def next_chunks(self, n: int) -> list[tuple[int, int]]:
        """The next `n` `(source, chunk)` picks; advances the counters."""
        picks = []
        for _ in range(n):
            # The source that is furthest behind its share: lowest (count + 1) / weight.
            s = int(np.argmin([(c + 1) / w for c, w in zip(self.counts, self.weights, strict=True)]))
            n_chunks = self.sources[s].n_chunks
            epoch, offset = divmod(self.counts[s], n_chunks)
            picks.append((s, int(self._permutation(s, epoch)[offset])))
            self.counts[s] += 1
        return picks

    def batch(self, picks: Sequence[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        return collate([self.sources[s].chunk(c) for s, c in picks])

    def epochs(self) -> list[float]:
        """How many passes over each source so far (for the logs: >1 means repetition)."""
        return [c / src.n_chunks for c, src in zip(self.counts, self.sources, strict=True)]

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "counts": list(self.counts)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["counts"]) != len(self.sources):
            raise DataError(
                f"the checkpoint's data state has {len(state['counts'])} sources, the config {len(self.sources)}"
            )
        self.seed = state["seed"]
        self.counts = list(state["counts"])


class EvalChunks:
    """The first `max_chunks` chunks of the held-out files, in file order: the same set at every eval."""

    def __init__(self, paths: Sequence[Path], seq_len: int, max_chunks: int) -> None:
        self.source = ChunkSource(paths, seq_len, name="eval")
        self.n_chunks = min(max_chunks, self.source.n_chunks)

    def batches(
        self, batch_size: int, rank: int = 0, world: int = 1
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """This process's share of the chunks in batches. Every process yields the same number of
        batches (a sharded model's forward is a collective): one with fewer chunks ends with a batch
        of chunk 0 whose labels are all masked, which adds nothing to the sums."""
        mine = list(range(rank, self.n_chunks, world))
        per_rank = math.ceil(math.ceil(self.n_chunks / world) / batch_size)
        for k in range(per_rank):
            picked = mine[k * batch_size : (k + 1) * batch_size]
            if picked:
                yield collate([self.source.chunk(i) for i in picked])
            else:
                input_ids, labels = collate([self.source.chunk(0)])
                yield input_ids, torch.full_like(labels, IGNORE_INDEX)
