"""`rlvr.checkpoints.resolve_model`: local folders, run directories, hub names from an offline cache,
and the one-line errors every command that takes a model prints (exit 2, no traceback)."""

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from rlvr.checkpoints import ModelPathError, resolve_model
from rlvr.cli import main
from rlvr.config import ConfigError
from rlvr.data import write_jsonl

TEXTS = ["Sam has 2 cards and buys 3. How many? Sam has 5 cards. #### 5", "Compute $1 + 2$. It is 3."] * 20
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def lm(make_tiny_checkpoint: Callable[[Sequence[str]], Path]) -> Path:
    """A tiny Olmo2ForCausalLM with its tokenizer."""
    return make_tiny_checkpoint(TEXTS)


@pytest.fixture(scope="module")
def rm(lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same body as an Olmo2ForSequenceClassification reward model (as `rlvr rm` saves one)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path_factory.mktemp("rm")
    AutoModelForSequenceClassification.from_pretrained(str(lm), num_labels=1).save_pretrained(str(out))
    AutoTokenizer.from_pretrained(str(lm)).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def backbone(lm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint whose architecture is neither a causal LM nor a sequence classifier."""
    out = tmp_path_factory.mktemp("backbone")
    config = json.loads((lm / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "architectures": ["Olmo2Model"]}))
    (out / "model.safetensors").write_bytes(b"")
    return out


@pytest.fixture
def hub_cache(lm: Path, rm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An offline Hugging Face cache holding org/tiny-lm and org/tiny-rm, laid out as the hub client
    writes it: blobs/, snapshots/<commit>/ of links to them, refs/main."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    for name, source in (("tiny-lm", lm), ("tiny-rm", rm)):
        repo = cache / f"models--org--{name}"
        snapshot = repo / "snapshots" / COMMIT
        (repo / "blobs").mkdir(parents=True)
        snapshot.mkdir(parents=True)
        for i, file in enumerate(sorted(p for p in source.iterdir() if p.is_file())):
            blob = repo / "blobs" / f"blob{i}"
            shutil.copy(file, blob)
            (snapshot / file.name).symlink_to(Path("..", "..", "blobs", blob.name))
        (repo / "refs").mkdir()
        (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # read once, at import
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def run_dir(tmp_path: Path, lm: Path) -> Path:
    """An `rlvr sft`-style run: two complete checkpoints and a newer one still being written."""
    run = tmp_path / "runs" / "sft"
    for name, complete in (("step1-tokens0B", True), ("step12-tokens0B", True), ("step20-tokens0B", False)):
        shutil.copytree(lm, run / "checkpoints" / name)
        if complete:
            (run / "checkpoints" / name / "trainer_state.json").write_text("{}")
    return run


# ----------------------------------------------------------------------------- resolve_model


def test_local_folders_and_run_directories(lm: Path, rm: Path, tmp_path: Path) -> None:
    assert resolve_model(lm, "causal_lm") == lm
    assert resolve_model(str(rm), "sequence_classification") == rm
    assert resolve_model(rm) == rm and resolve_model(lm) == lm  # any: either head
    run = run_dir(tmp_path, lm)
    assert resolve_model(run, "causal_lm") == run / "checkpoints" / "step12-tokens0B"
    assert resolve_model(run / "checkpoints") == run / "checkpoints" / "step12-tokens0B"
    ppo = tmp_path / "runs" / "ppo" / "checkpoints"
    for step in (5, 10):
        shutil.copytree(lm, ppo / f"step{step}-tokens0B" / "policy")
        shutil.copytree(rm, ppo / f"step{step}-tokens0B" / "value")
        (ppo / f"step{step}-tokens0B" / "trainer_state.json").write_text("{}")
    assert resolve_model(ppo.parent, "causal_lm") == ppo / "step10-tokens0B" / "policy"
    assert resolve_model(ppo / "step5-tokens0B") == ppo / "step5-tokens0B" / "policy"


def test_hub_names_come_from_the_offline_cache(hub_cache: Path) -> None:
    snapshot = hub_cache / "models--org--tiny-lm" / "snapshots" / COMMIT
    assert resolve_model("org/tiny-lm", "causal_lm") == snapshot
    assert resolve_model(f"org/tiny-lm@{COMMIT}", "causal_lm") == snapshot
    assert resolve_model("org/tiny-lm@main") == snapshot
    assert resolve_model("org/tiny-rm", "sequence_classification").name == COMMIT
    with pytest.raises(
        ModelPathError, match=r"^policy: org/absent .*not in the local Hugging Face cache .*HF_HUB_OFFLINE"
    ):
        resolve_model("org/absent", "causal_lm", "policy")
    with pytest.raises(ModelPathError, match="org/tiny-lm@v9"):
        resolve_model("org/tiny-lm@v9")
    with pytest.raises(ModelPathError, match=r"org/tiny-lm.*is a causal LM"):
        resolve_model("org/tiny-lm", "sequence_classification")


def test_errors_are_one_line_naming_the_path_what_was_found_and_expected(
    lm: Path, rm: Path, backbone: Path, tmp_path: Path
) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "no-weights").mkdir()
    shutil.copy(lm / "config.json", tmp_path / "no-weights")
    (tmp_path / "unfinished" / "checkpoints" / "step1-tokens0B").mkdir(parents=True)
    cases = [
        (tmp_path / "absent", "causal_lm", "does not exist; expected a Hugging Face checkpoint folder"),
        ("not-a-hub-name", "causal_lm", "does not exist"),
        (tmp_path / "empty", "causal_lm", "holds no checkpoint"),
        (lm / "config.json", "causal_lm", "is a file"),
        (tmp_path / "no-weights", "causal_lm", "has config.json but no weights"),
        (tmp_path / "unfinished", "causal_lm", "run directory without a complete checkpoint"),
        (
            rm,
            "causal_lm",
            r"is a sequence-classification model \(Olmo2ForSequenceClassification\); expected a causal",
        ),
        (
            lm,
            "sequence_classification",
            r"is a causal LM \(Olmo2ForCausalLM\); expected a sequence-classification",
        ),
        (
            backbone,
            "any",
            r"\(Olmo2Model\); expected a causal language model .* or a sequence-classification",
        ),
        ("", "any", "is empty"),
    ]
    for name, expect, message in cases:
        with pytest.raises(ModelPathError, match=message) as caught:
            resolve_model(name, expect, "init_from")  # type: ignore[arg-type]
        text = str(caught.value)
        assert text.startswith("init_from") and "\n" not in text and str(name) in text
        assert isinstance(caught.value, ConfigError)


# ----------------------------------------------------------------------------- the commands


def test_eval_runs_a_hub_name_from_the_offline_cache(hub_cache: Path, tmp_path: Path) -> None:
    data = tmp_path / "rlvr.jsonl"
    row = {
        "messages": [{"role": "user", "content": "Compute 1 + 2."}],
        "ground_truth": "3",
        "dataset": "gsm8k",
    }
    write_jsonl([row], data)
    out = tmp_path / "out"
    argv = ["eval", "--backend", "hf", "--model", "org/tiny-lm", "--data", str(data), "--n", "1"]
    assert main([*argv, "--temperature", "0", "--max-tokens", "4", "--out_dir", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["overall"]["prompts"] == 1


def model_commands(
    missing: Path, empty: Path, lm: Path, rm: Path, backbone: Path
) -> list[tuple[list[str], Path]]:
    """(argv, the path the error must name) for each command that takes a model and each bad path."""
    cases = []
    for bad in (missing, empty):
        cases += [
            (["sft", "--config", "configs/sft/tiny.yaml", f"--init_from={bad}"], bad),
            (["dpo", "--config", "configs/dpo/tiny.yaml", f"--init_from={bad}"], bad),
            (["rm", "--config", "configs/rm/tiny.yaml", f"--init_from={bad}"], bad),
            (["ppo", "--config", "configs/ppo/tiny.yaml", f"--policy={bad}"], bad),
            (["ppo", "--config", "configs/ppo/tiny.yaml", f"--policy={lm}", f"--reward_model={bad}"], bad),
            (["eval", "--model", str(bad), "--data", "x.jsonl"], bad),
            (["pipeline", "--config", "configs/pipeline/tiny.yaml", f"--base={bad}", "--stages=[sft]"], bad),
        ]
    return [
        *cases,  # and the wrong architecture:
        (["sft", "--config", "configs/sft/tiny.yaml", f"--init_from={rm}"], rm),
        (["dpo", "--config", "configs/dpo/tiny.yaml", f"--init_from={rm}"], rm),
        (["rm", "--config", "configs/rm/tiny.yaml", f"--init_from={backbone}"], backbone),
        (["ppo", "--config", "configs/ppo/tiny.yaml", f"--policy={rm}"], rm),
        (["ppo", "--config", "configs/ppo/tiny.yaml", f"--policy={lm}", f"--reward_model={lm}"], lm),
        (["eval", "--model", str(rm), "--data", "x.jsonl"], rm),
        (["pipeline", "--config", "configs/pipeline/tiny.yaml", f"--base={rm}", "--stages=[sft]"], rm),
    ]


def test_every_command_that_takes_a_model_fails_in_one_line_with_exit_2(
    lm: Path, rm: Path, backbone: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    for argv, path in model_commands(tmp_path / "absent", tmp_path / "empty", lm, rm, backbone):
        assert main([*argv, f"--runs_root={tmp_path / 'runs'}"] if argv[0] != "eval" else argv) == 2, argv
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, (argv, err)
        assert err.startswith(f"rlvr {argv[0]}: ") and str(path) in err and "Traceback" not in err, err
        assert "config error" not in err
    assert not (tmp_path / "runs").exists()  # nothing was started
