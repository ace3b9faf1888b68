"""`rlvr pretrain ...`: train the tokenizer, prepare token files, pretrain, soup.

    rlvr pretrain tokenizer --inputs corpus.jsonl --out runs/tokenizer --vocab_size 1024
    rlvr pretrain prepare   --inputs corpus.jsonl --tokenizer runs/tokenizer --out runs/tokens --val_fraction 0.02
    rlvr pretrain --config configs/pretrain/tiny.yaml [--train.max_steps=100 ...]
    rlvr pretrain soup      --inputs A B C --out D
    rlvr pretrain presets

Several processes: `torchrun --nproc_per_node N -m base_model.cli --config F` (same arguments).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rlvr.config import ConfigError, load_config

SUBCOMMANDS = ("tokenizer", "prepare", "soup", "presets")


def main(argv: Sequence[str]) -> int:
    argv = list(argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return {
                "tokenizer": tokenizer_main,
                "prepare": prepare_main,
                "soup": soup_main,
                "presets": presets_main,
            }[argv[0]](argv[1:])
        return train_main(argv)
    except ConfigError as err:
        print(f"rlvr pretrain: config error: {err}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as err:  # DataError and CheckpointError are ValueErrors
        print(f"rlvr pretrain: error: {err}", file=sys.stderr)
        return 1


def train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rlvr pretrain",
        description="Pretrain an OLMo 2 base model. Other actions: "
        + ", ".join(SUBCOMMANDS)
        + " (each has --help).",
        epilog="Any config key can be overridden: --train.max_steps=200 --optim.lr=1e-3 --name=my-run",
    )
    parser.add_argument("--config", required=True, help="YAML config, e.g. configs/pretrain/tiny.yaml")
    args, overrides = parser.parse_known_args(argv)
    from base_model.config import PretrainConfig
    from base_model.trainer import pretrain

    cfg = load_config(PretrainConfig, args.config, overrides)
    final = pretrain(cfg)
    print(f"final checkpoint: {final}")
    return 0


def tokenizer_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rlvr pretrain tokenizer", description="Train a byte-level BPE tokenizer."
    )
    parser.add_argument("--inputs", nargs="+", required=True, help=".jsonl/.parquet files or hub names")
    parser.add_argument("--out", required=True, help="directory to save the tokenizer in")
    parser.add_argument("--vocab_size", type=int, default=1024)
    parser.add_argument("--min_frequency", type=int, default=2)
    parser.add_argument(
        "--max_documents", type=int, default=None, help="per input; large corpora need only a sample"
    )
    args = parser.parse_args(argv)
    from base_model.data import iter_texts
    from base_model.tokenizer import train_tokenizer

    tok = train_tokenizer(
        iter_texts(args.inputs, args.max_documents), args.out, args.vocab_size, args.min_frequency
    )
    print(f"{args.out}: {len(tok):,} tokens")
    return 0


def prepare_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rlvr pretrain prepare", description="Tokenise text into uint32 memmaps."
    )
    parser.add_argument(
        "--inputs", nargs="+", required=True, help=".jsonl/.parquet files or hub names (org/name[:split])"
    )
    parser.add_argument(
        "--tokenizer", required=True, help="tokenizer directory (from `rlvr pretrain tokenizer`)"
    )
    parser.add_argument(
        "--out", required=True, help="output directory for NAME.tokens.bin files and meta.json"
    )
    parser.add_argument(
        "--val_fraction", type=float, default=0.0, help="share of documents held out to NAME.val.tokens.bin"
    )
    parser.add_argument(
        "--label_mask", action="store_true", help="also write NAME.mask.bin (chats: assistant tokens only)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the held-out split")
    parser.add_argument("--max_documents", type=int, default=None, help="per input")
    args = parser.parse_args(argv)
    from base_model.data import prepare_memmaps

    files = prepare_memmaps(
        args.inputs,
        args.tokenizer,
        args.out,
        args.val_fraction,
        args.label_mask,
        args.seed,
        args.max_documents,
    )
    for name, info in files.items():
        print(f"{args.out}/{name}: {info['tokens']:,} tokens, {info['documents']:,} documents")
    return 0


def soup_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="rlvr pretrain soup", description="Average the weights of checkpoints."
    )
    parser.add_argument("--inputs", nargs="+", required=True, help="two or more checkpoint directories")
    parser.add_argument("--out", required=True, help="directory for the averaged checkpoint")
    args = parser.parse_args(argv)
    from base_model.soup import soup

    print(f"soup of {len(args.inputs)} checkpoints: {soup(args.inputs, args.out)}")
    return 0


def presets_main(argv: list[str]) -> int:
    argparse.ArgumentParser(prog="rlvr pretrain presets", description="List model presets.").parse_args(argv)
    from base_model.model import PRESETS, describe

    for name, preset in PRESETS.items():
        print(f"{name:10s} {describe(preset())}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
