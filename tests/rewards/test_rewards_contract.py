"""The contract: registration (decorator, aliases, entry points), safe calls, routing, name checks."""

import math
import sys
import textwrap

import pytest

from rlvr.rewards import (
    LabelError,
    UnknownVerifierError,
    VerifierResult,
    available,
    check_verifier_names,
    contract,
    register,
    register_alias,
    resolve,
    row_problems,
    run_verifier,
    score_row,
    unregister,
    verifier_name_problems,
)


@pytest.fixture
def temp_verifier():
    names = []

    def make(name, fn, **kwargs):
        register(name, **kwargs)(fn)
        names.append(name)
        return fn

    yield make
    for name in names:
        unregister(name)


def test_builtins_and_aliases_resolve():
    assert {"gsm8k", "math", "strict_math", "ifeval", "tulu_if", "exact_match", "f1", "reward_model"} <= set(
        available()
    )
    assert resolve("MATH") == "math"
    assert resolve("IFEval") == "ifeval"
    assert resolve(" gsm8k ") == "gsm8k"
    assert resolve("ifeval_old") == "tulu_if"
    assert resolve("string_f1") == "f1"


def test_unknown_name_suggests_the_closest():
    with pytest.raises(UnknownVerifierError, match="did you mean 'gsm8k'"):
        resolve("gsm8kk")
    with pytest.raises(UnknownVerifierError):
        run_verifier("nope", "x", "y")


def test_decorator_registers_a_plain_function(temp_verifier):
    def shout(prediction, label, prompt=None):
        return prediction.isupper()

    temp_verifier("shout", shout, aliases=("LOUD",))
    assert run_verifier("loud", "HEY", None).score == 1.0
    assert run_verifier("shout", "hey", None).score == 0.0


def test_registering_a_taken_name_needs_replace(temp_verifier):
    temp_verifier("taken", lambda p, label, prompt=None: 1.0)
    with pytest.raises(ValueError, match="already registered"):
        register("taken")(lambda p, label, prompt=None: 0.0)
    with pytest.raises(ValueError, match="already"):
        register_alias("taken", "gsm8k")
    register("taken", replace=True)(lambda p, label, prompt=None: 0.5)
    assert run_verifier("taken", "", None).score == 0.5


def test_entry_point_group_adds_verifiers(tmp_path, monkeypatch):
    package = tmp_path / "rlvr_plugin_demo"
    package.mkdir()
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            def always_half(prediction, label, prompt=None):
                return 0.5
            """
        )
    )
    dist = tmp_path / "rlvr_plugin_demo-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rlvr-plugin-demo\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[rlvr.verifiers]\nhalf = rlvr_plugin_demo:always_half\nbroken = rlvr_plugin_demo:missing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(contract, "_entry_points_loaded", False)
    try:
        assert run_verifier("half", "x", "y").score == 0.5
        with pytest.raises(UnknownVerifierError, match="failed to load"):
            resolve("broken")
    finally:
        unregister("half")
        contract._ENTRY_POINT_ERRORS.pop("broken", None)
        sys.modules.pop("rlvr_plugin_demo", None)


def test_run_verifier_never_raises(temp_verifier):
    def explode(prediction, label, prompt=None):
        raise RuntimeError("boom")

    temp_verifier("explode", explode)
    result = run_verifier("explode", "x", "y")
    assert result.score == 0.0 and "RuntimeError: boom" in result.details["error"]
    assert run_verifier("gsm8k", None, "3").details["error"].startswith("prediction must be a string")
    assert run_verifier("gsm8k", "3", "3", prompt=5).score == 0.0


def test_scores_are_clipped_and_nan_is_an_error(temp_verifier):
    temp_verifier("big", lambda p, label, prompt=None: 3.0)
    temp_verifier("nan", lambda p, label, prompt=None: math.nan)
    temp_verifier("weird", lambda p, label, prompt=None: "yes")
    big = run_verifier("big", "", None)
    assert big.score == 1.0 and big.details["clipped_from"] == 3.0
    assert run_verifier("nan", "", None).score == 0.0
    assert "TypeError" in run_verifier("weird", "", None).details["error"]


def test_label_errors_are_reported():
    result = run_verifier("gsm8k", "42", {"not": "a number"})
    assert result.score == 0.0 and "LabelError" in result.details["error"]
    assert issubclass(LabelError, ValueError)


def test_score_row_single_and_weighted():
    row = {"prediction": "so 42", "ground_truth": "42", "dataset": "GSM8K"}
    result = score_row(row)
    assert result.score == 1.0 and result.verifier == "gsm8k" and result.details["verifier"] == "gsm8k"
    multi = {
        "prediction": "The answer is 42, all lowercase",
        "ground_truth": ["42", '{"func_name": "validate_lowercase"}'],
        "dataset": ["gsm8k", "ifeval"],
        "weights": [3, 1],
    }
    result = score_row(multi)
    assert result.score == pytest.approx(0.75)
    assert [part.verifier for part in result.parts] == ["gsm8k", "ifeval"]
    assert [v["score"] for v in result.details["verifiers"]] == [1.0, 0.0]


def test_score_row_takes_the_prompt_from_messages():
    row = {
        "messages": [{"role": "user", "content": "Repeat: hi"}],
        "prediction": "Repeat: hi there",
        "ground_truth": '{"func_name": "validate_repeat_prompt", "original_prompt": "Repeat: hi"}',
        "dataset": "tulu_if",
    }
    assert score_row(row).score == 1.0


def test_malformed_rows_score_zero_with_the_reason():
    row = {"prediction": "1", "ground_truth": "1", "dataset": ["gsm8k", "math"]}
    assert "ground_truth" in score_row(row).details["error"]
    assert row_problems(row)
    assert row_problems({"prediction": 1, "dataset": "gsm8k"}) == [
        "'prediction' must be a string",
        "missing 'ground_truth'",
    ]
    assert row_problems({"prediction": "1", "ground_truth": "1", "dataset": ["gsm8k"], "weights": [-1]})
    assert row_problems({"prediction": "1", "ground_truth": "1", "dataset": "gsm8k"}) == []


def test_check_verifier_names_names_the_rows():
    rows = [
        {"dataset": "gsm8k"},
        {"dataset": "gsm8kk"},
        {"dataset": ["math", "nope"]},
        {"dataset": "nope"},
    ]
    with pytest.raises(UnknownVerifierError) as err:
        check_verifier_names(rows)
    message = str(err.value)
    assert "'gsm8kk'" in message and "row(s) 2" in message
    assert "'nope'" in message and "row(s) 3, 4" in message
    check_verifier_names([{"dataset": "MATH"}, {"dataset": ["ifeval", "gsm8k"]}])
    assert verifier_name_problems({"dataset": "nope"})
    assert verifier_name_problems({"dataset": "math"}) == []


def test_result_to_dict():
    assert VerifierResult(1.0, {"a": 1}).to_dict() == {"score": 1.0, "details": {"a": 1}, "timed_out": False}
