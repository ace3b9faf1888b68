"""`rlvr eval`: evaluate any checkpoint by sampling k answers per prompt and verifying them.

Training-time evaluation (`rlvr.algos.evaluation`) scores one greedy answer per prompt; that says
little about a policy RL is about to train, whose learning signal comes from *sampled* answers. So
this command samples `n` answers per prompt (vLLM, or transformers `generate` with `backend: hf`),
scores every one with the same verifiers training uses, and reports per data set:

- `pass@1` (the share of samples that are correct) and `pass@k`: the unbiased estimator of
  Chen et al. (2021), `1 - C(n-c, k) / C(n, k)`, where `c` counts a prompt's samples scoring 1
  (for `ifeval`: every instruction followed, IFEval's prompt-level accuracy);
- `mean_score`: the mean verifier score, partial credit counting (what training rewards);
- `maj@k` (verifiers with an answer extractor, `ANSWER_EXTRACTORS`): majority vote over the
  extracted final answers of k samples, scored by the voted answer's score; averaged over the
  `n // k` disjoint blocks of k consecutive samples;
- `stop_rate` (share of samples ending with EOS) and `response_tokens` (mean length);
- for `ifeval`, the IFEval figures: prompt-level and instruction-level accuracy and the followed
  rate of every instruction id.

Data is the RLVR schema or, through adapters picked from a file's keys, raw GSM8K, MATH / MATH-500
and IFEval files (`FORMATS`), local or on the hub. A row that cannot be read stops the run naming
its file and line, or is left out, counted and listed (`on_bad_row: skip`); a prompt that leaves
no room to answer within the context is left out and counted. `evaluate(...)` is the in-process
entry point; `main` the command line.
"""

from rlvr.eval.data import (
    ADAPTERS,
    FORMATS,
    AdapterError,
    Item,
    build_messages,
    detect_format,
    load_items,
    read_fewshot,
)
from rlvr.eval.metrics import (
    ANSWER_EXTRACTORS,
    format_table,
    group_metrics,
    ifeval_metrics,
    maj_at_k,
    majority_vote,
    pass_at_k,
    summarize,
)
from rlvr.eval.runner import EvalConfig, evaluate, evaluate_checkpoints, main, run

__all__ = [
    "ADAPTERS",
    "ANSWER_EXTRACTORS",
    "FORMATS",
    "AdapterError",
    "EvalConfig",
    "Item",
    "build_messages",
    "detect_format",
    "evaluate",
    "evaluate_checkpoints",
    "format_table",
    "group_metrics",
    "ifeval_metrics",
    "load_items",
    "main",
    "maj_at_k",
    "majority_vote",
    "pass_at_k",
    "read_fewshot",
    "run",
    "summarize",
]
