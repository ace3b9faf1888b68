"""Answer extraction and normalisation for competition math (pure functions, no sympy).

Extraction follows the Minerva / lm-evaluation-harness conventions used by open-instruct: the last
``\\boxed{}`` (or ``\\fbox{}``), the Minerva "Final Answer: The final answer is X. I hope it is
correct." form, else the text between the last two ``$``. Normalisation applies the Minerva rules
(Lewkowycz et al. 2022, appendix D) and then the Hendrycks MATH ``strip_string`` rules, re-written
here so that no input can make them raise or run in more than linear-ish time: every function is
total, and candidates longer than `MAX_ANSWER_CHARS` are rejected before any regex runs.
"""

from __future__ import annotations

import re
from fractions import Fraction

MAX_ANSWER_CHARS = 1000
"""An extracted answer longer than this is not an answer (and would make the regexes slow)."""

MINERVA_PREFIX = "Final Answer: The final answer is"
MINERVA_SUFFIX = " I hope it is correct"


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces balanced), or of ``\\boxed 5``."""
    idx = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if idx < 0:
        return None
    start = idx + (len("\\boxed") if text.startswith("\\boxed", idx) else len("\\fbox"))
    if text.startswith(" ", start):  # "\boxed 5$" form: up to the next $ or line end
        return re.split(r"[$\n]", text[start:], maxsplit=1)[0].strip() or None
    if not text.startswith("{", start):
        return None
    depth = 0
    for i in range(start, len(text)):
        char = text[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return None  # unbalanced: no answer rather than a guess


def minerva_answer(text: str) -> str | None:
    """X in "Final Answer: The final answer is X. I hope it is correct." — linear time.

    Equivalent to ``re.search(r"Final Answer: The final answer is(.*?). I hope it is correct.",
    text + "I hope it is correct.")`` (the Minerva harness), whose ``.`` stops at line ends; written
    as a scan because that regex is quadratic on a long line repeating the prefix.
    """
    text += "I hope it is correct."
    line_start = 0
    while True:
        pos = text.find(MINERVA_PREFIX, line_start)
        if pos < 0:
            return None
        line_end = text.find("\n", pos)
        line_end = len(text) if line_end < 0 else line_end
        body = pos + len(MINERVA_PREFIX)
        end = text.find(MINERVA_SUFFIX, body + 1, line_end)
        # the regex needs one character for its `.` before the suffix and one after it
        if end >= 0 and end + len(MINERVA_SUFFIX) < line_end:
            return text[body : end - 1].strip()
        line_start = line_end + 1


def last_dollar(text: str) -> str | None:
    """The text between the last two ``$`` signs, or None."""
    last = text.rfind("$")
    if last <= 0:
        return None
    before = text.rfind("$", 0, last)
    return text[before + 1 : last] if before >= 0 else None


# Minerva appendix D, in order.
_SUBSTITUTIONS = (
    ("an ", ""), ("a ", ""), (".$", "$"), ("\\$", ""), ("\\ ", ""), (" ", ""), ("mbox", "text"),
    (",\\text{and}", ","), ("\\text{and}", ","), ("\\text{m}", "\\text{}"),
)  # fmt: skip
_REMOVED = (
    "square", "ways", "integers", "dollars", "mph", "inches", "ft", "hours", "km", "units", "\\ldots",
    "sue", "points", "feet", "minutes", "digits", "cents", "degrees", "cm", "gm", "pounds", "meters",
    "meals", "edges", "students", "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}",
    "\\text{}^2", "\\text{}^3", "\\text{\n}", "\\text{}", r"\mathrm{th}", r"^\circ", r"^{\circ}", r"\;",
    r",\!", "{,}", '"', "\\dots",
)  # fmt: skip


def _unwrap(command: str, text: str, greedy: bool = False) -> str:
    """``\\command{X}`` → ``X`` for every occurrence (non-nested, as the Minerva regexes do)."""
    inner = "(.*)" if greedy else "(.*?)"
    return re.sub("\\\\" + command + r"\{" + inner + r"\}", r"\1", text)


_THOUSANDS = re.compile(r"\d{1,3}(?:,\d{3})+")


def minerva_normalize(answer: str) -> str:
    """Minerva's `normalize_final_answer`: units and words dropped, LaTeX wrappers unwrapped."""
    answer = answer.split("=")[-1]
    for before, after in _SUBSTITUTIONS:
        answer = answer.replace(before, after)
    for expr in _REMOVED:
        answer = answer.replace(expr, "")
    if answer.count("$") >= 2:  # keep only the first $...$ span
        first = answer.index("$")
        answer = "$" + answer[first + 1 : answer.index("$", first + 1)] + "$"
    for command in ("text", "textbf", "overline"):
        answer = _unwrap(command, answer)
    answer = _unwrap("boxed", answer, greedy=True)
    answer = re.sub(r"(frac)([^{])(.)", r"frac{\2}{\3}", answer)
    answer = re.sub(r"(sqrt)([^{])", r"sqrt{\2}", answer)
    answer = answer.replace("$", "")
    if _THOUSANDS.fullmatch(answer):  # Minerva drops every comma of an all-digit answer, turning the
        answer = answer.replace(",", "")  # list "1,2" into 12; only real thousands separators go here
    return answer


def _fix_fracs(text: str) -> str:
    r"""``\frac12`` → ``\frac{1}{2}``, ``\frac1{72}`` → ``\frac{1}{72}`` (Hendrycks)."""
    head, *parts = text.split("\\frac")
    out = [head]
    for part in parts:
        out.append("\\frac")
        if part.startswith("{") or len(part) < 2:
            out.append(part)
        elif part[1] != "{":
            out.append("{" + part[0] + "}{" + part[1] + "}" + part[2:])
        else:
            out.append("{" + part[0] + "}" + part[1:])
    return "".join(out)


def _fix_sqrt(text: str) -> str:
    r"""``\sqrt3`` → ``\sqrt{3}``."""
    head, *parts = text.split("\\sqrt")
    return head + "".join(
        "\\sqrt" + (p if not p or p[0] in "{[" else "{" + p[0] + "}" + p[1:]) for p in parts
    )


def _fix_slash(text: str) -> str:
    """``3/4`` → ``\\frac{3}{4}`` when the answer is exactly two integers."""
    match = re.fullmatch(r"(-?\d+)/(-?\d+)", text)
    return f"\\frac{{{match.group(1)}}}{{{match.group(2)}}}" if match else text


def hendrycks_strip(text: str) -> str:
    """The MATH `strip_string` rules (Hendrycks et al. 2021), made total."""
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "")
    if text.count("\\text{ ") == 1:  # "\text{ " introduces units on the right
        text = text.split("\\text{ ")[0]
    text = text.replace("\\%", "").replace("%", "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if text.startswith("."):
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 3" -> "3"
        text = sides[1]
    text = _fix_sqrt(text).replace(" ", "")
    text = _fix_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_slash(text)


_SIZING = re.compile(r"\\(?:left|right|big|Big|bigg|Bigg)(?![a-zA-Z])")
_SPACING = re.compile(r"\\[,;:! ]|\\q?quad|~|\\displaystyle|\\mathrm|\\mathbf|\\operatorname")


def canonical(answer: str) -> str:
    """The form two answers are compared in: Minerva, then Hendrycks, then spacing commands removed."""
    # \left/\right first: Minerva's unit list deletes "ft", which would leave "\le("
    text = hendrycks_strip(minerva_normalize(_SIZING.sub("", answer.strip())))
    text = _SPACING.sub("", text)
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return text.rstrip(".").strip()


_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)")
_PLAIN_FRACTION = re.compile(r"([-+]?)\\frac\{([-+]?\d+)\}\{([-+]?\d+)\}")


def as_number(text: str) -> Fraction | None:
    """The exact value of a canonical answer that is a plain number or integer fraction, else None.

    Lets ``0.5`` = ``\\frac{1}{2}`` = ``\\frac{2}{4}`` be decided without sympy.
    """
    if len(text) > 100:
        return None
    if _PLAIN_NUMBER.fullmatch(text):
        return Fraction(text)
    match = _PLAIN_FRACTION.fullmatch(text)
    if match and int(match.group(3)) != 0:
        value = Fraction(int(match.group(2)), int(match.group(3)))
        return -value if match.group(1) == "-" else value
    return None


def candidates(prediction: str, strict: bool = False) -> list[tuple[str, str]]:
    """``(source, answer)`` pairs to try, best first: boxed and Minerva, else the last ``$...$``.

    `strict` keeps the Minerva form only (the `strict_math` verifier). Answers longer than
    `MAX_ANSWER_CHARS` are dropped.
    """
    found: list[tuple[str, str]] = []
    if not strict:
        boxed = last_boxed(prediction)
        if boxed is not None:
            found.append(("boxed", boxed))
    minerva = minerva_answer(prediction)
    if minerva is not None:
        found.append(("minerva", minerva))
    if not found and not strict:
        dollar = last_dollar(prediction)
        if dollar is not None:
            found.append(("dollars", dollar))
    if not found:
        found.append(("whole response", prediction))
    return [(source, answer) for source, answer in found if len(answer) <= MAX_ANSWER_CHARS]
