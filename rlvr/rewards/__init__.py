"""Verifiers: score a model's response against a label (see docs/verifiers.md).

    from rlvr.rewards import register, VerifierResult, score_row, score_batch

Importing this package registers the built-ins: gsm8k, math, strict_math, ifeval, tulu_if,
exact_match, f1 and reward_model (torch and transformers are imported only when it is used).
"""

from rlvr.rewards import gsm8k, ifeval, math_verifiers, reward_model, string_match, tulu_if  # noqa: F401
from rlvr.rewards.batch import BatchScorer, score_batch
from rlvr.rewards.contract import (
    LabelError,
    UnknownVerifierError,
    Verifier,
    VerifierResult,
    aliases,
    available,
    call_verifier,
    get_verifier,
    on_warm_up,
    register,
    register_alias,
    resolve,
    run_verifier,
    unregister,
    warm_up,
)
from rlvr.rewards.harness import Case, HarnessReport, check_verifier
from rlvr.rewards.routing import check_verifier_names, row_problems, score_row, verifier_name_problems

__all__ = [
    "BatchScorer",
    "Case",
    "HarnessReport",
    "LabelError",
    "UnknownVerifierError",
    "Verifier",
    "VerifierResult",
    "aliases",
    "available",
    "call_verifier",
    "check_verifier",
    "check_verifier_names",
    "get_verifier",
    "on_warm_up",
    "register",
    "register_alias",
    "resolve",
    "row_problems",
    "run_verifier",
    "score_batch",
    "score_row",
    "unregister",
    "verifier_name_problems",
    "warm_up",
]
