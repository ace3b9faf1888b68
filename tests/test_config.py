from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from rlvr.config import ConfigError, dump_yaml, load_config, parse_overrides, read_yaml
from rlvr.tracking import RunConfig


@dataclass
class OptimConfig:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    schedule: Literal["linear", "cosine"] = "cosine"


@dataclass
class ToyConfig(RunConfig):
    steps: int = 10
    tag: str = "x"
    data: list[str] = field(default_factory=list)
    optim: OptimConfig = field(default_factory=OptimConfig)
    init_from: str | None = None
    use_lora: bool = False


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "steps: 5\noptim:\n  lr: 2.0e-4\n  schedule: linear\ndata: [a.jsonl]\n")
    cfg = load_config(ToyConfig, path, ["--optim.lr=1e-5", "--steps", "7", "--tag=123", "--log.every=3"])
    assert cfg.steps == 7
    assert cfg.optim.lr == pytest.approx(1e-5)  # YAML 1.1 reads "1e-5" as text; it must still be a float
    assert cfg.optim.schedule == "linear"
    assert cfg.tag == "123"  # a str field keeps command-line text as text
    assert cfg.data == ["a.jsonl"]
    assert cfg.log.every == 3


def test_override_types(tmp_path):
    cfg = load_config(
        ToyConfig, None, ["--data=[x, y]", "--optim.betas=[0.8, 0.99]", "--use_lora=true", "--init_from=null"]
    )
    assert cfg.data == ["x", "y"]
    assert cfg.optim.betas == (0.8, 0.99)
    assert cfg.use_lora is True
    assert cfg.init_from is None
    assert load_config(ToyConfig, None, ["--init_from=runs/a"]).init_from == "runs/a"


def test_unknown_key_names_key_and_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'optim\.lrr'.*did you mean 'optim\.lr'"):
        load_config(ToyConfig, None, ["--optim.lrr=1"])
    path = write(tmp_path, "stepz: 3\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: unknown key 'stepz'; did you mean 'steps'"):
        load_config(ToyConfig, path)
    with pytest.raises(ConfigError, match=r"unknown key 'zzzzz'; valid keys here"):
        load_config(ToyConfig, None, ["--zzzzz=1"])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("--steps=abc", r"key 'steps' expects int, got abc"),
        ("--steps=1.5", r"key 'steps' expects int"),
        ("--optim.lr=fast", r"key 'optim\.lr' expects float"),
        ("--use_lora=maybe", r"key 'use_lora' expects bool"),
        ("--optim.schedule=step", r"key 'optim\.schedule' expects one of 'linear', 'cosine'"),
        ("--optim.betas=[1]", r"key 'optim\.betas' expects 2 items"),
        ("--data=a.jsonl", r"key 'data' expects a list"),
        ("--optim=3", r"'optim' must be a mapping"),
    ],
)
def test_wrong_types(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(ToyConfig, None, [override])


def test_wrong_type_in_yaml_names_file(tmp_path):
    path = write(tmp_path, "optim:\n  lr: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: key 'optim\.lr' expects float"):
        load_config(ToyConfig, path)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(ToyConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(ToyConfig, write(tmp_path, "a: [1, 2\n"))
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(ToyConfig, write(tmp_path, "- 1\n- 2\n"))


def test_malformed_overrides():
    with pytest.raises(ConfigError, match="has no value"):
        parse_overrides(["--steps"])
    with pytest.raises(ConfigError, match="overrides look like"):
        parse_overrides(["steps=3"])
    with pytest.raises(ConfigError, match="empty key"):
        parse_overrides(["--a..b=1"])


def test_round_trip_through_yaml(tmp_path):
    cfg = load_config(ToyConfig, None, ["--optim.lr=3e-4", "--data=[a, b]"])
    path = write(tmp_path, dump_yaml(cfg))
    assert read_yaml(path)["optim"]["betas"] == [0.9, 0.95]
    assert load_config(ToyConfig, path) == cfg


@dataclass
class PresetConfig(RunConfig):
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=4e-7, schedule="linear"))


def test_a_partial_section_keeps_the_fields_own_defaults(tmp_path):
    cfg = load_config(PresetConfig, write(tmp_path, "optim:\n  betas: [0.9, 0.99]\n"), ["--optim.lr=1e-5"])
    assert cfg.optim == OptimConfig(lr=1e-5, betas=(0.9, 0.99), schedule="linear")


def test_with_overrides_applies_on_top_of_a_composed_config() -> None:
    from rlvr.config import with_overrides

    @dataclass
    class Inner:
        lr: float = 1e-3
        files: list[str] = field(default_factory=list)

    @dataclass
    class Outer:
        name: str = "a"
        inner: Inner = field(default_factory=Inner)

    cfg = Outer()
    cfg.inner.files = ["x.jsonl"]  # set by code, as the pipeline does
    out = with_overrides(cfg, ["--inner.lr=5e-6", "--name=b"])
    assert out == Outer(name="b", inner=Inner(lr=5e-6, files=["x.jsonl"]))
    with pytest.raises(ConfigError, match=r"inner\.lrr"):
        with_overrides(cfg, ["--inner.lrr=1"])
