"""LaTeX answers → sympy, and the symbolic equivalence test. Runs inside the sandbox process only.

A small recursive-descent parser for the LaTeX that final answers use (numbers, letters, ``+ - * /
^ !``, ``\\frac``, ``\\sqrt[n]{}``, ``\\pi``, ``\\infty``, trig/log functions, ``|x|``, implicit
multiplication) plus the structure around them (tuples, intervals and their unions, sets, bare
lists). It builds sympy objects directly — nothing is ``eval``-ed — and refuses numbers too large to
evaluate (``9^{9^{9^9}}``) instead of hanging; the sandbox deadline is the backstop for the rest.
Anything it does not understand is a `ParseError`: the answer then only counts if it matches as text.
"""

from __future__ import annotations

import math
import random
import re
from typing import Any

import sympy

MAX_DIGITS = 10_000
"""Refuse integer powers and factorials whose value would have more digits than this."""
MAX_DEPTH = 60


class ParseError(ValueError):
    pass


_FUNCTIONS: dict[str, Any] = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "sec": sympy.sec, "csc": sympy.csc,
    "cot": sympy.cot, "arcsin": sympy.asin, "arccos": sympy.acos, "arctan": sympy.atan,
    "sinh": sympy.sinh, "cosh": sympy.cosh, "tanh": sympy.tanh, "ln": sympy.log, "log": sympy.log,
    "exp": sympy.exp,
}  # fmt: skip
# "iny": Minerva normalisation deletes "ft" (feet) everywhere, so "\\infty" reaches the parser as "\\iny"
_CONSTANTS = {"pi": sympy.pi, "infty": sympy.oo, "infinity": sympy.oo, "iny": sympy.oo}
_TIMES = {"cdot", "times", "ast"}
_WRAPPERS = {"text", "textbf", "mathbf", "mathrm", "mbox", "operatorname", "boxed", "mathit"}
_FRACS = {"frac", "dfrac", "tfrac", "cfrac"}
_KNOWN = sorted(
    set(_FUNCTIONS) | set(_CONSTANTS) | _TIMES | _WRAPPERS | _FRACS | {"sqrt", "div", "left", "right"},
    key=len,
    reverse=True,
)
_TOKEN = re.compile(r"\s*(\d+(?:\.\d+)?|\.\d+|\\[a-zA-Z]+|\\[{}|]|[a-zA-Z]|[-+*/^_()\[\]{}|!,'])")


def tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ParseError(f"unexpected character {text[pos]!r}")
        token, pos = match.group(1), match.end()
        if token.startswith("\\") and token[1:].isalpha() and token[1:] not in _KNOWN:
            # spaces were normalised away, so "\pir" is "\pi r": split off the longest known command
            name = next((k for k in _KNOWN if token[1:].startswith(k)), None)
            if name is None:
                raise ParseError(f"unsupported command {token}")
            tokens.append("\\" + name)
            tokens.extend(token[1 + len(name) :])
            continue
        if token not in ("\\left", "\\right"):
            tokens.append(token)
    return tokens


def _check_size(base: sympy.Expr, exp: sympy.Expr) -> None:
    if base.is_Number and exp.is_Number and exp.is_real and abs(float(exp)) > 1:
        size = abs(float(base)) if base.is_real else 2.0
        if size > 1 and abs(float(exp)) * math.log10(size) > MAX_DIGITS:
            raise ParseError("number too large to evaluate")


class _Parser:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens, self.pos, self.depth = tokens, 0, 0

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise ParseError(f"expected {expected or 'more input'}, got {token!r}")
        self.pos += 1
        return token

    def parse(self) -> sympy.Expr:
        expr = self.expr()
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek()!r}")
        return expr

    def expr(self, stop: str | None = None) -> sympy.Expr:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError("expression nested too deeply")
        value = self.term(stop)
        while self.peek() in ("+", "-"):
            op = self.take()
            right = self.term(stop)
            value = value + right if op == "+" else value - right
        self.depth -= 1
        return value

    def term(self, stop: str | None) -> sympy.Expr:
        value = self.signed(stop)
        while True:
            token = self.peek()
            if token in ("*", "/") or token in ("\\cdot", "\\times", "\\ast", "\\div"):
                self.take()
                right = self.signed(stop)
                value = value / right if token in ("/", "\\div") else value * right
            elif token is not None and token != stop and self._starts_atom(token):
                value = value * self.power(stop)  # implicit multiplication: 2x, 3\sqrt{2}, (a)(b)
            else:
                return value

    @staticmethod
    def _starts_atom(token: str) -> bool:
        return (
            token[0].isdigit() or token[0] == "." or token.isalpha() or token in ("(", "{")
            or (token.startswith("\\") and token[1:] in _KNOWN and token[1:] not in _TIMES | {"div"})
        )  # fmt: skip

    def signed(self, stop: str | None) -> sympy.Expr:
        if self.peek() in ("-", "+"):
            sign = self.take()
            value = self.signed(stop)
            return -value if sign == "-" else value
        return self.power(stop)

    def power(self, stop: str | None) -> sympy.Expr:
        base = self.postfix(stop)
        if self.peek() == "^":
            self.take()
            exponent = self.signed_atom(stop)
            _check_size(base, exponent)
            base = sympy.Pow(base, exponent)
        return base

    def signed_atom(self, stop: str | None) -> sympy.Expr:
        if self.peek() == "-":
            self.take()
            return -self.signed_atom(stop)
        return self.power(stop)  # a^b^c is a^(b^c)

    def postfix(self, stop: str | None) -> sympy.Expr:
        value = self.atom(stop)
        while self.peek() in ("!", "'"):
            if self.take() == "'":
                raise ParseError("primes are not supported")
            if not (value.is_Integer and 0 <= value <= 3000):
                raise ParseError("factorial of a large or non-integer value")
            value = sympy.factorial(value)
        return value

    def group(self) -> sympy.Expr:
        """A ``{...}`` argument, or a single token (``\\frac12``)."""
        if self.peek() == "{":
            self.take("{")
            value = self.expr("}")
            self.take("}")
            return value
        return self.atom(None)

    def atom(self, stop: str | None) -> sympy.Expr:
        token = self.take()
        if token[0].isdigit() or token[0] == ".":
            return sympy.Rational(token) if "." in token else sympy.Integer(token)
        if token.isalpha():
            name = token
            if self.peek() == "_":  # x_1, a_{n}
                self.take()
                sub = self.take()
                if sub == "{":
                    parts = []
                    while self.peek() not in ("}", None):
                        parts.append(self.take())
                    self.take("}")
                    sub = "".join(parts)
                name = f"{token}_{sub}"
            return sympy.I if name == "i" else sympy.E if name == "e" else sympy.Symbol(name)
        if token in ("(", "[", "{"):
            close = {"(": ")", "[": "]", "{": "}"}[token]
            value = self.expr(close)
            self.take(close)
            return value
        if token == "|":
            value = self.expr("|")
            self.take("|")
            return sympy.Abs(value)
        if token.startswith("\\"):
            return self.command(token[1:])
        raise ParseError(f"unexpected {token!r}")

    def command(self, name: str) -> sympy.Expr:
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in _FRACS:
            numerator = self.group()
            return numerator / self.group()
        if name == "sqrt":
            index: sympy.Expr = sympy.Integer(2)
            if self.peek() == "[":
                self.take("[")
                index = self.expr("]")
                self.take("]")
            return sympy.root(self.group(), index)
        if name in _WRAPPERS:
            self.take("{")
            start = self.pos
            while self.peek() not in ("}", None):
                self.pos += 1
            words = self.tokens[start : self.pos]
            self.take("}")
            if all(t.isalpha() for t in words) and words:
                return sympy.Symbol("".join(words))  # \text{cm}, \mathrm{AB}: a name
            return _Parser(words).parse()
        if name in _FUNCTIONS:
            exponent = None
            base = None
            if name == "log" and self.peek() == "_":
                self.take()
                base = self.group()
            if self.peek() == "^":  # \sin^2 x
                self.take()
                exponent = self.group()
            argument = self.power(None)
            value = sympy.log(argument, base) if base is not None else _FUNCTIONS[name](argument)
            return value**exponent if exponent is not None else value
        raise ParseError(f"\\{name} cannot start a term")


def parse_expr(text: str) -> sympy.Expr:
    """One LaTeX expression (no top-level commas) as a sympy expression; raises ParseError."""
    if not text:
        raise ParseError("empty expression")
    return _Parser(tokenize(text)).parse()


def split_top_level(text: str, separator: str) -> list[str]:
    """Split at `separator` outside any brackets."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        if text.startswith(("\\{", "\\left(", "\\left["), i):
            depth += 1
        elif text.startswith("\\}", i):
            depth -= 1
        elif text[i] in "([{":
            depth += 1
        elif text[i] in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            start = i + len(separator)
            i = start
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _closes_at_end(text: str) -> bool:
    """True if the bracket opening `text` is the one closing it: ``(1,2)`` but not ``(1)(2)``."""
    depth = 0
    for i, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0:
            return i == len(text) - 1
    return False


def parse_answer(text: str) -> tuple[str, list[Any]]:
    """An answer's structure: ``(kind, items)``.

    kind is ``"expr"`` (one item), an ordered bracket pair such as ``"()"``/``"[)"`` (tuples and
    intervals), ``"union"`` (of intervals) or ``"set"`` (``\\{...\\}`` or a bare comma list, unordered).
    """
    text = text.strip()
    union = split_top_level(text, "\\cup")
    if len(union) > 1:
        return "union", [parse_answer(part) for part in union]
    if text.startswith("\\{") and text.endswith("\\}"):
        return "set", [parse_expr(part) for part in split_top_level(text[2:-2], ",")]
    if len(text) >= 2 and text[0] in "([" and text[-1] in ")]" and _closes_at_end(text):
        items = split_top_level(text[1:-1], ",")
        if len(items) > 1:
            return text[0] + text[-1], [parse_expr(part) for part in items]
    items = split_top_level(text, ",")
    if len(items) > 1:
        return "set", [parse_expr(part) for part in items]
    return "expr", [parse_expr(text)]


def _close(a: complex, b: complex) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _value(expr: sympy.Expr) -> complex | None:
    try:
        value = complex(sympy.N(expr, 30))
    except (TypeError, ValueError, OverflowError, ZeroDivisionError):
        return None
    return value if all(map(math.isfinite, (value.real, value.imag))) else None


def expressions_equal(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Equal as values: structurally, numerically (constants), or at random points (with variables)."""
    if a == b:
        return True
    if a.has(sympy.oo, -sympy.oo, sympy.zoo) or b.has(sympy.oo, -sympy.oo, sympy.zoo):
        return bool(sympy.simplify(a - b) == 0) if not (a.is_infinite or b.is_infinite) else a == b
    symbols = sorted(a.free_symbols | b.free_symbols, key=str)
    if not symbols:
        va, vb = _value(a), _value(b)
        if va is not None and vb is not None:
            return _close(va, vb)
        return bool(sympy.simplify(a - b) == 0)
    rng = random.Random(0)  # fixed points: the same answer always gets the same verdict
    agreed = 0
    for _ in range(6):
        point = {s: sympy.Rational(rng.randint(1, 97), rng.randint(1, 13)) for s in symbols}
        va, vb = _value(a.subs(point)), _value(b.subs(point))
        if va is None or vb is None:
            continue
        if not _close(va, vb):
            return False
        agreed += 1
        if agreed == 3:
            return True
    return bool(sympy.simplify(a - b) == 0)


def structures_equal(a: tuple[str, list[Any]], b: tuple[str, list[Any]]) -> bool:
    kind_a, items_a = a
    kind_b, items_b = b
    if kind_a != kind_b or len(items_a) != len(items_b):
        return False
    same = structures_equal if kind_a == "union" else expressions_equal
    if kind_a in ("set", "union"):  # unordered: match each item to a distinct partner
        left = list(items_b)
        for item in items_a:
            match = next((i for i, other in enumerate(left) if same(item, other)), None)
            if match is None:
                return False
            left.pop(match)
        return True
    return all(same(x, y) for x, y in zip(items_a, items_b, strict=True))


def symbolic_equal(a: str, b: str) -> tuple[bool, str]:
    """Are two canonical answers equal? ``(verdict, how)``; unparseable answers are not equal."""
    try:
        parsed_a, parsed_b = parse_answer(a), parse_answer(b)
    except (ParseError, RecursionError, sympy.SympifyError, TypeError, ValueError) as err:
        return False, f"unparsed: {err}"[:200]
    return structures_equal(parsed_a, parsed_b), "symbolic"
