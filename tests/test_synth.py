"""The synthetic suite: deterministic, valid, correct demonstrations, wrong near misses, disjoint splits.

Correctness is checked independently of the generator: gsm8k answers are recomputed from the
prompt's sentences, math answers are solved from the prompt's LaTeX with sympy, and IFEval
constraints are read from the prompt's wording and checked with the semantics of Google's IFEval.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import sympy
from sympy.parsing.sympy_parser import (
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

from rlvr.config import ConfigError, load_config
from rlvr.data import load_rows
from rlvr.synth import (
    PRESETS,
    SUPPORTED_INSTRUCTIONS,
    Gsm8kConfig,
    IfevalConfig,
    MathConfig,
    PretrainConfig,
    SynthConfig,
    is_held_out,
    resolve,
    write_suite,
)

FILES = {
    "pretrain.jsonl": "text",
    "rlvr_train.jsonl": "rlvr",
    "rlvr_test.jsonl": "rlvr",
    "sft_train.jsonl": "sft",
    "prefs_train.jsonl": "prefs",
    "prefs_test.jsonl": "prefs",
}
REQUIRED_INSTRUCTIONS = {
    "change_case:english_lowercase",
    "punctuation:no_comma",
    "length_constraints:number_words",
    "startend:end_checker",
    "keywords:existence",
    "startend:quotation",
    "detectable_format:title",
    "detectable_format:number_bullet_lists",
    "detectable_content:postscript",
    "detectable_format:json_format",
}
SIZES = {  # different per verifier, so a mix-up between them shows
    "gsm8k": {"rlvr_train": 40, "rlvr_test": 25, "sft_train": 120, "prefs_train": 60, "prefs_test": 20},
    "math": {"rlvr_train": 30, "rlvr_test": 20, "sft_train": 150, "prefs_train": 70, "prefs_test": 15},
    "ifeval": {"rlvr_train": 50, "rlvr_test": 30, "sft_train": 250, "prefs_train": 120, "prefs_test": 25},
}


def small_config(seed: int = 0, difficulty: str = "medium") -> SynthConfig:
    return SynthConfig(
        seed=seed,
        difficulty=difficulty,
        pretrain=PretrainConfig(docs=300),
        gsm8k=Gsm8kConfig(**SIZES["gsm8k"]),
        math=MathConfig(**SIZES["math"]),
        ifeval=IfevalConfig(**SIZES["ifeval"]),
    )


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module", params=["easy", "medium", "hard"])
def suite(request, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp(f"synth_{request.param}")
    write_suite(small_config(difficulty=request.param), out)
    return out


@pytest.fixture(scope="module")
def default_suite(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_default")
    write_suite(SynthConfig(), out)
    return out


# ----------------------------------------------------------------------------- independent checkers


def gsm8k_solution(prompt: str) -> int:
    """The answer to a word problem, worked out from its sentences."""
    sentences = re.split(r"(?<=[.?]) ", prompt)
    value = int(re.search(r"\d+", sentences[0])[0])
    for sentence in sentences[1:-1]:
        n = int(re.search(r"\d+", sentence)[0])
        if "more" in sentence:
            value += n
        elif "times" in sentence:
            value *= n
        elif "groups" in sentence or "one of every" in sentence:
            assert value % n == 0, prompt
            value //= n
        else:
            assert re.search(r"gives away|loses|sells", sentence), sentence
            value -= n
    assert sentences[-1].startswith("How many"), prompt
    return value


def last_number(text: str) -> str:
    return re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)[-1].replace(",", "")


def check_gsm8k_working(prompt: str, response: str) -> bool:
    """Every equation is right, they chain, and the final number is the answer to the prompt."""
    equations = re.findall(r"(\d+) ([-+*/]) (\d+) = (\d+)\.", response)
    value = int(re.search(r"\d+", prompt)[0])
    for a, op, b, c in equations:
        a, b, c = int(a), int(b), int(c)
        expected = {"+": a + b, "-": a - b, "*": a * b, "/": a // b if a % b == 0 else None}[op]
        if a != value or c != expected:
            return False
        value = c
    return bool(equations) and response.endswith(f"#### {value}") and value == gsm8k_solution(prompt)


def to_sympy(tex: str) -> sympy.Expr:
    text = tex.replace("\\dfrac", "\\frac").replace("\\cdot", "*")
    text = re.sub(r"\\frac\{([^{}]*)\}\{([^{}]*)\}", r"((\1)/(\2))", text)
    assert "\\" not in text, tex
    return parse_expr(text, transformations=(*standard_transformations, implicit_multiplication_application))


def math_solution(prompt: str) -> sympy.Expr:
    """The answer to an exercise, solved by sympy from the LaTeX in the prompt."""
    parts = re.findall(r"\$([^$]+)\$", prompt)
    if len(parts) == 2:  # "Solve for $x$: $3x + 4 = 19$."
        lhs, rhs = parts[1].split("=")
        (solution,) = sympy.solve(sympy.Eq(to_sympy(lhs), to_sympy(rhs)), sympy.Symbol(parts[0]))
        return solution
    return sympy.simplify(to_sympy(parts[0]))


def last_boxed(text: str) -> str:
    start = text.rindex("\\boxed{") + len("\\boxed{")
    depth, end = 1, start
    while depth:
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        end += 1
    return text[start : end - 1]


def equivalent(a: sympy.Expr, b: sympy.Expr) -> bool:
    return sympy.simplify(sympy.nsimplify(a, rational=True) - sympy.nsimplify(b, rational=True)) == 0


IFEVAL_WORDING = {  # how each instruction reads in a prompt -> its kwargs
    "change_case:english_lowercase": (r"in all lowercase letters\.", lambda m: {}),
    "change_case:english_capital": (r"in all capital letters\.", lambda m: {}),
    "punctuation:no_comma": (r"Do not use any commas in your response\.", lambda m: {}),
    "length_constraints:number_words": (
        r"Answer with (at least|less than) (\d+) words\.",
        lambda m: {"relation": m[1], "num_words": int(m[2])},
    ),
    "startend:end_checker": (r"exact phrase: ([^.?!]+[.?!])", lambda m: {"end_phrase": m[1]}),
    "keywords:existence": (
        r"Include the keywords? (\w+)(?: and (\w+))? in the response\.",
        lambda m: {"keywords": [w for w in m.groups() if w]},
    ),
    "keywords:forbidden_words": (
        r"Do not include the words? (\w+)(?: or (\w+))? in the response\.",
        lambda m: {"forbidden_words": [w for w in m.groups() if w]},
    ),
    "startend:quotation": (r"Wrap your entire response with double quotation marks\.", lambda m: {}),
    "detectable_format:title": (r"must contain a title, wrapped in double angular brackets", lambda m: {}),
    "detectable_format:number_bullet_lists": (
        r"exactly (\d+) bullet points\.",
        lambda m: {"num_bullets": int(m[1])},
    ),
    "detectable_format:number_highlighted_sections": (
        r"Highlight at least (\d+) sections",
        lambda m: {"num_highlights": int(m[1])},
    ),
    "detectable_content:postscript": (
        r"postscript starting with (P\.S\.|P\.P\.S)",
        lambda m: {"postscript_marker": m[1]},
    ),
    "detectable_content:number_placeholders": (
        r"at least (\d+) placeholders",
        lambda m: {"num_placeholders": int(m[1])},
    ),
    "detectable_format:json_format": (r"wrapped in JSON format\.", lambda m: {}),
}


def ifeval_instructions(prompt: str) -> list[tuple[str, dict]]:
    """The instructions a prompt states, in the order it states them."""
    found = []
    for instruction, (pattern, kwargs) in IFEVAL_WORDING.items():
        match = re.search(pattern, prompt)
        if match:
            found.append((match.start(), instruction, kwargs(match)))
    return [(instruction, kw) for _, instruction, kw in sorted(found)]


def follows(instruction: str, kw: dict, response: str) -> bool:
    """Google IFEval's check for one instruction (minus the language detection)."""
    r = response
    if instruction == "change_case:english_lowercase":
        return r.islower()
    if instruction == "change_case:english_capital":
        return r.isupper()
    if instruction == "punctuation:no_comma":
        return "," not in r
    if instruction == "length_constraints:number_words":
        words = len(re.findall(r"\w+", r))
        return words >= kw["num_words"] if kw["relation"] == "at least" else words < kw["num_words"]
    if instruction == "startend:end_checker":
        return r.strip().lower().endswith(kw["end_phrase"].strip().lower())
    if instruction == "keywords:existence":
        return all(re.search(k, r, flags=re.IGNORECASE) for k in kw["keywords"])
    if instruction == "keywords:forbidden_words":
        return not any(re.search(rf"\b{w}\b", r, flags=re.IGNORECASE) for w in kw["forbidden_words"])
    if instruction == "startend:quotation":
        r = r.strip()
        return len(r) > 1 and r[0] == '"' and r[-1] == '"'
    if instruction == "detectable_format:title":
        return any(t.lstrip("<").rstrip(">").strip() for t in re.findall(r"<<[^\n]+>>", r))
    if instruction == "detectable_format:number_bullet_lists":
        bullets = re.findall(r"^\s*\*[^\*].*$", r, flags=re.MULTILINE) + re.findall(
            r"^\s*-.*$", r, flags=re.MULTILINE
        )
        return len(bullets) == kw["num_bullets"]
    if instruction == "detectable_format:number_highlighted_sections":
        single = [h for h in re.findall(r"\*[^\n\*]*\*", r) if h.strip("*").strip()]
        double = [
            h for h in re.findall(r"\*\*[^\n\*]*\*\*", r) if h.removeprefix("**").removesuffix("**").strip()
        ]
        return len(single) + len(double) >= kw["num_highlights"]
    if instruction == "detectable_content:postscript":
        marker = kw["postscript_marker"]
        pattern = {"P.S.": r"\s*p\.\s?s\..*$", "P.P.S": r"\s*p\.\s?p\.\s?s.*$"}.get(
            marker, rf"\s*{marker.lower()}.*$"
        )
        return bool(re.findall(pattern, r.lower(), flags=re.MULTILINE))
    if instruction == "detectable_content:number_placeholders":
        return len(re.findall(r"\[.*?\]", r)) >= kw["num_placeholders"]
    if instruction == "detectable_format:json_format":
        body = r.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
        try:
            json.loads(body)
        except ValueError:
            return False
        return True
    raise AssertionError(f"no check for {instruction}")


def verifier_of(answer: str) -> str:
    return "gsm8k" if "#### " in answer else "math" if "\\boxed{" in answer else "ifeval"


def is_correct(prompt: str, answer: str) -> bool:
    """Whether a response solves the prompt (or obeys all its instructions)."""
    verifier = verifier_of(answer)
    if verifier == "gsm8k":
        return check_gsm8k_working(prompt, answer)
    if verifier == "math":
        return equivalent(to_sympy(last_boxed(answer)), math_solution(prompt))
    instructions = ifeval_instructions(prompt)
    assert instructions, prompt
    return all(follows(i, kw, answer) for i, kw in instructions)


def is_wrong(prompt: str, answer: str) -> bool:
    """Whether a response would score 0 with the verifier (all-or-nothing for IFEval)."""
    verifier = verifier_of(answer)
    if verifier == "gsm8k":
        return last_number(answer) != str(gsm8k_solution(prompt))
    if verifier == "math":
        return not equivalent(to_sympy(last_boxed(answer)), math_solution(prompt))
    return not all(follows(i, kw, answer) for i, kw in ifeval_instructions(prompt))


# ----------------------------------------------------------------------------- tests


def test_every_file_passes_schema_validation(suite):
    for name, kind in FILES.items():
        assert len(load_rows(suite / name, kind)) == len(read(suite / name))


def test_sizes_follow_the_config(suite):
    counted = {name: {v: 0 for v in SIZES} for name in FILES if name != "pretrain.jsonl"}
    for name in counted:
        for row in read(suite / name):
            if "dataset" in row:
                verifier = row["dataset"]
            else:
                verifier = verifier_of((row.get("messages") or row["chosen"])[-1]["content"])
            counted[name][verifier] += 1
    for name, per_verifier in counted.items():
        assert per_verifier == {v: SIZES[v][name.removesuffix(".jsonl")] for v in SIZES}, name
    assert len(read(suite / "pretrain.jsonl")) == 300


def test_write_suite_reports_rows_per_file(tmp_path):
    counts = write_suite(small_config(), tmp_path)
    assert set(counts) == set(FILES)
    assert all(counts[name] == len(read(tmp_path / name)) for name in FILES)


def test_rlvr_labels_match_the_prompts(suite):
    seen_ids = set()
    for name in ("rlvr_train.jsonl", "rlvr_test.jsonl"):
        for row in read(suite / name):
            prompt, truth = row["messages"][0]["content"], row["ground_truth"]
            assert isinstance(truth, str)
            if row["dataset"] == "gsm8k":
                assert truth == str(gsm8k_solution(prompt))
            elif row["dataset"] == "math":
                assert equivalent(to_sympy(truth), math_solution(prompt)), (prompt, truth)
            else:
                assert row["dataset"] == "ifeval"
                instructions = ifeval_instructions(prompt)
                assert json.loads(truth) == {
                    "instruction_id_list": [i for i, _ in instructions],
                    "kwargs": [kw for _, kw in instructions],
                }, prompt
                seen_ids.update(i for i, _ in instructions)
    assert seen_ids <= set(SUPPORTED_INSTRUCTIONS)


def test_demonstrations_and_chosen_are_correct(suite):
    pairs = [
        (row["messages"][0]["content"], row["messages"][1]["content"])
        for row in read(suite / "sft_train.jsonl")
    ]
    for name in ("prefs_train.jsonl", "prefs_test.jsonl"):
        pairs += [(row["chosen"][0]["content"], row["chosen"][1]["content"]) for row in read(suite / name)]
    wrong = [(p, a) for p, a in pairs if not is_correct(p, a)]
    assert not wrong, wrong[:3]


def test_rejected_are_wrong_near_misses(suite):
    for name in ("prefs_train.jsonl", "prefs_test.jsonl"):
        for row in read(suite / name):
            (user, chosen), (user2, rejected) = row["chosen"], row["rejected"]
            assert user == user2 and chosen != rejected
            assert verifier_of(rejected["content"]) == verifier_of(chosen["content"])
            assert is_wrong(user["content"], rejected["content"]), (user, rejected)


def test_math_demonstrations_box_equivalent_forms(suite):
    answers = [row["messages"][1]["content"] for row in read(suite / "sft_train.jsonl")]
    boxed = [last_boxed(a) for a in answers if verifier_of(a) == "math"]
    forms = [b for b in boxed if b.startswith("\\dfrac") or re.fullmatch(r"\d+/\d+|\d+\.\d+", b)]
    assert forms, "no demonstration writes an equivalent form of its label"


def test_ifeval_covers_the_required_instructions(default_suite):
    ids = set()
    two = 0
    for row in read(default_suite / "rlvr_train.jsonl"):
        if row["dataset"] == "ifeval":
            listed = json.loads(row["ground_truth"])["instruction_id_list"]
            ids.update(listed)
            two += len(listed) == 2
    assert ids == set(SUPPORTED_INSTRUCTIONS) >= REQUIRED_INSTRUCTIONS
    assert two > 0


def test_ifeval_kwarg_names_are_googles(suite, benchmark_data):
    real: dict[str, set[frozenset]] = {}
    for line in (benchmark_data / "ifeval_input_data.jsonl").read_text().splitlines():
        row = json.loads(line)
        for instruction, kw in zip(row["instruction_id_list"], row["kwargs"], strict=True):
            real.setdefault(instruction, set()).add(frozenset(k for k, v in kw.items() if v is not None))
    for row in read(suite / "rlvr_test.jsonl"):
        if row["dataset"] == "ifeval":
            truth = json.loads(row["ground_truth"])
            for instruction, kw in zip(truth["instruction_id_list"], truth["kwargs"], strict=True):
                assert frozenset(kw) in real[instruction], (instruction, kw)


def test_no_test_prompt_appears_in_any_train_file(default_suite):
    train = [row["text"] for row in read(default_suite / "pretrain.jsonl")]
    for name in ("rlvr_train.jsonl", "sft_train.jsonl", "prefs_train.jsonl"):
        for row in read(default_suite / name):
            for messages in (row.get("messages"), row.get("chosen"), row.get("rejected")):
                train += [m["content"] for m in messages or []]
    blob = "\x00".join(train)
    tests = {row["messages"][0]["content"] for row in read(default_suite / "rlvr_test.jsonl")}
    tests |= {row["chosen"][0]["content"] for row in read(default_suite / "prefs_test.jsonl")}
    leaked = [prompt for prompt in tests if prompt in blob]
    assert not leaked, leaked[:3]


def test_test_prompts_are_unique_per_file(default_suite):
    prompts = [row["messages"][0]["content"] for row in read(default_suite / "rlvr_test.jsonl")]
    assert len(set(prompts)) == len(prompts)


def test_pretrain_mixes_prose_problems_and_chats(default_suite):
    texts = [row["text"] for row in read(default_suite / "pretrain.jsonl")]
    chats = [t for t in texts if t.startswith("<|user|>\n")]
    assert chats and all("\n<|assistant|>\n" in t and "<|endoftext|>" not in t for t in chats)
    assert any(t.startswith("Question: ") and "#### " in t for t in texts)
    assert any(t.startswith("Problem: ") and "\\boxed{" in t for t in texts)
    assert any(re.fullmatch(r"(\d+ [-+*/] \d+ = \d+\.\n?)+", t) for t in texts)
    assert any(re.fullmatch(r"[A-Z][A-Za-z ,.]+\.", t) for t in texts)  # plain prose


def test_same_seed_gives_identical_bytes_across_processes(tmp_path):
    write_suite(small_config(seed=3), tmp_path / "a")
    script = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[2]); "
        "from tests.test_synth import small_config; from rlvr.synth import write_suite; "
        "write_suite(small_config(seed=3), Path(sys.argv[1]))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    root = str(Path(__file__).resolve().parents[1])
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "b"), root], check=True, env=env)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seed_gives_different_data(tmp_path):
    write_suite(small_config(seed=0), tmp_path / "a")
    write_suite(small_config(seed=1), tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes(), name


def test_one_file_size_does_not_change_other_files(tmp_path):
    write_suite(small_config(), tmp_path / "a")
    cfg = small_config()
    cfg.gsm8k.sft_train = 7
    write_suite(cfg, tmp_path / "b")
    for name in ("pretrain.jsonl", "rlvr_train.jsonl", "rlvr_test.jsonl", "prefs_train.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_held_out_share_of_keys():
    keys = [f"gsm8k:{a}+{b}" for a in range(100) for b in range(100)]
    share = sum(is_held_out(0, k, 0.2) for k in keys) / len(keys)
    assert 0.18 < share < 0.22
    assert [is_held_out(0, k, 0.2) for k in keys[:50]] != [is_held_out(1, k, 0.2) for k in keys[:50]]


def test_config_from_overrides_and_presets():
    cfg = load_config(
        SynthConfig, None, ["--seed=4", "--difficulty=easy", "--gsm8k.rlvr_test=5", "--gsm8k.max_steps=3"]
    )
    assert (cfg.seed, cfg.gsm8k.rlvr_test) == (4, 5)
    resolved = resolve(cfg)
    assert resolved.gsm8k.max_steps == 3  # an explicit knob beats the preset
    assert resolved.gsm8k.max_operand == PRESETS["easy"]["gsm8k"]["max_operand"]
    assert resolved.math.kinds == PRESETS["easy"]["math"]["kinds"]
    for preset in PRESETS.values():
        assert set(preset) == {"gsm8k", "math", "ifeval"}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("--gsm8k.operations=[+, %]", "operations"),
        ("--ifeval.instructions=[punctuation:no_commas]", "instructions"),
        ("--difficulty=extreme", "difficulty"),
        ("--test_share=0", "test_share"),
        ("--math.rlvr_train=-1", "rlvr_train"),
        ("--gsm8k.rlvr_trian=10", "did you mean 'gsm8k.rlvr_train'"),
    ],
)
def test_bad_config_is_refused(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(SynthConfig, None, [override])


def test_impossible_sizes_fail_clearly(tmp_path):
    cfg = small_config()
    cfg.gsm8k = Gsm8kConfig(max_operand=2, max_steps=1, operations=["+"], rlvr_train=1, rlvr_test=1)
    with pytest.raises(ValueError, match="too few distinct prompts"):
        write_suite(cfg, tmp_path)
