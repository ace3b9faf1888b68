import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from pretrain_helpers import word_problems, write_jsonl

from base_model.data import (
    IGNORE_INDEX,
    ChunkSource,
    MixtureSampler,
    check_tokenizer,
    collate,
    prepare_memmaps,
)
from base_model.tokenizer import load_tokenizer, train_tokenizer
from rlvr.chat import render_chat
from rlvr.data import DataError


def split_documents(tokens: np.ndarray, eos: int) -> list[list[int]]:
    ends = np.flatnonzero(tokens == eos)
    starts = np.concatenate([[0], ends[:-1] + 1])
    return [tokens[s:e].tolist() for s, e in zip(starts, ends, strict=True)]


def test_prepare_writes_flat_uint32_with_eos_after_each_document(tmp_path: Path, tokenizer_dir: Path) -> None:
    docs = [*word_problems(40, seed=3), "  indented\n\ttabbed  ", "naïve 🙂"]
    src = write_jsonl(tmp_path / "docs.jsonl", [{"text": d} for d in docs])
    files = prepare_memmaps([str(src)], tokenizer_dir, tmp_path / "out")
    tok = load_tokenizer(tokenizer_dir)
    raw = (tmp_path / "out" / "docs.tokens.bin").read_bytes()
    tokens = np.frombuffer(raw, dtype=np.uint32)  # headerless: the file is the ids
    assert len(raw) == 4 * files["docs.tokens.bin"]["tokens"] == 4 * len(tokens)
    assert tokens[-1] == tok.eos_token_id
    assert [tok.decode(ids) for ids in split_documents(tokens, tok.eos_token_id)] == docs
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["files"]["docs.tokens.bin"]["documents"] == len(docs)
    assert not (tmp_path / "out" / "docs.mask.bin").exists()  # masks only when asked


def test_held_out_split_is_by_document_deterministic_and_disjoint(
    tmp_path: Path, tokenizer_dir: Path
) -> None:
    docs = word_problems(300, seed=4)
    src = write_jsonl(tmp_path / "docs.jsonl", [{"text": d} for d in docs])
    tok = load_tokenizer(tokenizer_dir)
    splits = []
    for run in ("a", "b"):
        prepare_memmaps([str(src)], tokenizer_dir, tmp_path / run, val_fraction=0.1, seed=7)
        train = np.fromfile(tmp_path / run / "docs.tokens.bin", dtype=np.uint32)
        val = np.fromfile(tmp_path / run / "val" / "docs.tokens.bin", dtype=np.uint32)
        splits.append((train.tobytes(), val.tobytes()))
        train_docs = [tok.decode(d) for d in split_documents(train, tok.eos_token_id)]
        val_docs = [tok.decode(d) for d in split_documents(val, tok.eos_token_id)]
        assert sorted(train_docs + val_docs) == sorted(docs)
        assert 10 <= len(val_docs) <= 50
    assert splits[0] == splits[1]
    assert (tmp_path / "a" / "val" / "meta.json").is_file()


def test_chat_rows_get_assistant_only_label_masks(tmp_path: Path, tokenizer_dir: Path) -> None:
    chats = [
        [
            {"role": "user", "content": "What is 12 + 30?"},
            {"role": "assistant", "content": "12 + 30 = 42. #### 42"},
        ],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "Bye"},
            {"role": "assistant", "content": "Bye 7"},
        ],
    ]
    src = write_jsonl(tmp_path / "chats.jsonl", [{"messages": m} for m in chats] + [{"text": "plain 5"}])
    prepare_memmaps([str(src)], tokenizer_dir, tmp_path / "out", label_mask=True)
    tok = load_tokenizer(tokenizer_dir)
    tokens = np.fromfile(tmp_path / "out" / "chats.tokens.bin", dtype=np.uint32)
    mask = np.fromfile(tmp_path / "out" / "chats.mask.bin", dtype=np.bool_)
    assert len(mask) == len(tokens)
    expected_text = "".join(render_chat(m) for m in chats) + "plain 5" + tok.eos_token
    assert tok.decode(tokens) == expected_text
    labelled = tok.decode(tokens[mask])
    eos = tok.eos_token
    assert labelled == f"12 + 30 = 42. #### 42{eos}Hello{eos}Bye 7{eos}plain 5{eos}"


def test_parquet_input(tmp_path: Path, tokenizer_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": ["one 1", "two 2"]}), tmp_path / "p.parquet")
    files = prepare_memmaps([str(tmp_path / "p.parquet")], tokenizer_dir, tmp_path / "out")
    assert files["p.tokens.bin"]["documents"] == 2


def test_bad_rows_are_reported_by_line_and_leave_no_files(tmp_path: Path, tokenizer_dir: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "ok"}\n{"text": ""}\nnot json\n{"other": 1}\n')
    with pytest.raises(DataError) as err:
        prepare_memmaps([str(src)], tokenizer_dir, tmp_path / "out")
    message = str(err.value)
    assert "line 2" in message and "line 3" in message and "line 4" in message
    assert not list((tmp_path / "out").glob("*.bin*"))
    with pytest.raises(DataError, match="no such file"):
        prepare_memmaps([str(tmp_path / "missing.jsonl")], tokenizer_dir, tmp_path / "out")


def test_token_files_from_another_tokenizer_are_refused(
    tmp_path: Path, tokenizer_dir: Path, token_dir: Path
) -> None:
    other = tmp_path / "other-tok"
    train_tokenizer(["something else entirely " * 30] * 20, other, vocab_size=300)
    check_tokenizer([token_dir / "corpus.tokens.bin"], tokenizer_dir)
    with pytest.raises(DataError, match="another tokenizer"):
        check_tokenizer([token_dir / "corpus.tokens.bin"], other)
    with pytest.raises(DataError, match="another tokenizer"):
        prepare_memmaps([str(token_dir.parent)], other, token_dir)  # mixing tokenizers in one directory


def make_source(tmp_path: Path, name: str, n_tokens: int, seq_len: int, offset: int = 0) -> ChunkSource:
    path = tmp_path / f"{name}.tokens.bin"
    (np.arange(n_tokens, dtype=np.uint32) + offset).tofile(path)
    return ChunkSource([path], seq_len, name=name)


def test_chunks_are_fixed_length_and_cover_files_in_order(tmp_path: Path) -> None:
    a = tmp_path / "a.tokens.bin"
    b = tmp_path / "b.tokens.bin"
    np.arange(10, dtype=np.uint32).tofile(a)
    np.arange(100, 107, dtype=np.uint32).tofile(b)
    source = ChunkSource([a, b], seq_len=3)
    assert source.n_chunks == 3 + 2  # tails dropped per file
    assert [source.chunk(i)[0].tolist() for i in range(5)] == [
        [0, 1, 2], [3, 4, 5], [6, 7, 8], [100, 101, 102], [103, 104, 105],
    ]  # fmt: skip


def test_mixture_order_is_deterministic_weighted_and_resumable(tmp_path: Path) -> None:
    sources = [
        make_source(tmp_path, "big", 64 * 8, 8),
        make_source(tmp_path, "small", 16 * 8, 8, offset=10_000),
    ]

    def sampler(seed: int) -> MixtureSampler:
        return MixtureSampler(sources, [3.0, 1.0], seed=seed)

    first = sampler(0).next_chunks(400)
    assert first == sampler(0).next_chunks(400)
    assert first != sampler(1).next_chunks(400)
    assert Counter(s for s, _ in first) == {0: 300, 1: 100}  # exactly the 3:1 weights
    small = [c for s, c in first if s == 1]
    assert sorted(small[:16]) == list(range(16))  # each epoch visits every chunk once
    assert small[:16] != small[16:32]  # and each epoch is reshuffled

    resumed = sampler(0)
    resumed.next_chunks(123)
    state = json.loads(json.dumps(resumed.state_dict()))  # survives the JSON checkpoint file
    fresh = sampler(0)
    fresh.load_state_dict(state)
    assert fresh.next_chunks(400 - 123) == first[123:]


def test_collate_masks_labels(tmp_path: Path) -> None:
    ids = np.arange(4, dtype=np.uint32)
    mask = np.array([True, False, True, False])
    input_ids, labels = collate([(ids, mask), (ids, None)])
    assert input_ids.dtype == torch.int64 and input_ids.shape == (2, 4)
    assert labels.tolist() == [[0, IGNORE_INDEX, 2, IGNORE_INDEX], [0, 1, 2, 3]]


def test_a_source_too_small_for_one_chunk_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="fewer than 64 tokens"):
        make_source(tmp_path, "tiny", 10, 64)
