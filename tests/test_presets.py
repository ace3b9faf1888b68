"""Every shipped YAML preset loads into its stage's config class (a typo'd or stale key fails here,
not hours into a cluster run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from base_model.config import PretrainConfig
from rlvr.algos.dpo import DPOConfig
from rlvr.algos.ppo.config import PPOConfig
from rlvr.algos.reward_model import RewardModelConfig
from rlvr.algos.sft import SFTConfig
from rlvr.config import load_config
from rlvr.pipeline import PipelineConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CLASSES = {
    "pretrain": PretrainConfig,
    "sft": SFTConfig,
    "dpo": DPOConfig,
    "rm": RewardModelConfig,
    "ppo": PPOConfig,
    "pipeline": PipelineConfig,
}
PRESETS = sorted(path for stage in CLASSES for path in (CONFIGS / stage).glob("*.yaml"))


def test_every_stage_folder_has_presets() -> None:
    assert {path.parent.name for path in PRESETS} == set(CLASSES)


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_preset_loads(path: Path) -> None:
    cfg = load_config(CLASSES[path.parent.name], path, [])
    assert cfg.name
