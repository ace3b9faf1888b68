"""`ifeval` prompts: a short writing task under IFEval constraints, and responses that obey or break them."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any, Literal

from rlvr.synth.common import (
    ADJECTIVES,
    END_PHRASES,
    KEYWORD_SENTENCES,
    KEYWORDS,
    NAMES,
    PLACEHOLDER_SENTENCES,
    POSTSCRIPTS,
    Problem,
    Unbuildable,
    prose_sentence,
    random_topic,
)
from rlvr.synth.config import IfevalConfig
from rlvr.synth.instructions import (
    BULLETS,
    CAPITAL,
    CONFLICTS,
    END_CHECKER,
    FORBIDDEN_WORDS,
    HIGHLIGHTS,
    JSON_FORMAT,
    KEYWORDS_EXIST,
    LOWERCASE,
    NO_COMMA,
    NUMBER_WORDS,
    PLACEHOLDERS,
    POSTSCRIPT,
    QUOTATION,
    SUPPORTED_INSTRUCTIONS,
    TITLE,
)

IFEVAL_TASKS = (
    "Write a short story about the {noun}.",
    "Describe the {noun}.",
    "Write a few sentences about the {noun}.",
    "Write a short note about the {noun}.",
)


def _one_or_two(rng: random.Random, pool: tuple[str, ...]) -> list[str]:
    return rng.sample(pool, rng.randint(1, 2))


def _and(words: list[str], conjunction: str) -> str:
    return f" {conjunction} ".join(words)


def instruction_kwargs(rng: random.Random, instruction: str) -> dict[str, Any]:
    """IFEval kwargs for `instruction`, with exactly the kwarg names of Google's IFEval."""
    if instruction == NUMBER_WORDS:
        return {"relation": rng.choice(("at least", "less than")), "num_words": rng.choice(range(15, 45, 5))}
    if instruction == END_CHECKER:
        return {"end_phrase": rng.choice(END_PHRASES)}
    if instruction == KEYWORDS_EXIST:
        return {"keywords": _one_or_two(rng, KEYWORDS)}
    if instruction == FORBIDDEN_WORDS:
        return {"forbidden_words": _one_or_two(rng, ADJECTIVES)}
    if instruction == BULLETS:
        return {"num_bullets": rng.randint(2, 5)}
    if instruction == HIGHLIGHTS:
        return {"num_highlights": rng.randint(1, 3)}
    if instruction == POSTSCRIPT:
        return {"postscript_marker": rng.choice(("P.S.", "P.P.S"))}
    if instruction == PLACEHOLDERS:
        return {"num_placeholders": rng.randint(1, 3)}
    return {}


def instruction_text(instruction: str, kw: dict[str, Any]) -> str:
    """How the prompt asks for `instruction` (IFEval's wording, shortened)."""
    plural = "s" if len(kw.get("keywords", kw.get("forbidden_words", ()))) > 1 else ""
    return {
        LOWERCASE: "Your entire response should be in English, and in all lowercase letters.",
        CAPITAL: "Your entire response should be in English, and in all capital letters.",
        NO_COMMA: "Do not use any commas in your response.",
        NUMBER_WORDS: f"Answer with {kw.get('relation')} {kw.get('num_words')} words.",
        END_CHECKER: f"Finish your response with this exact phrase: {kw.get('end_phrase')}",
        KEYWORDS_EXIST: f"Include the keyword{plural} {_and(kw.get('keywords', []), 'and')} in the response.",
        FORBIDDEN_WORDS: f"Do not include the word{plural} {_and(kw.get('forbidden_words', []), 'or')} "
        "in the response.",
        QUOTATION: "Wrap your entire response with double quotation marks.",
        TITLE: "Your answer must contain a title, wrapped in double angular brackets, "
        "such as <<poem of joy>>.",
        BULLETS: f"Your answer must contain exactly {kw.get('num_bullets')} bullet points. "
        "Use markdown bullet points such as: * This is a point.",
        HIGHLIGHTS: f"Highlight at least {kw.get('num_highlights')} sections in your answer with markdown, "
        "i.e. *highlighted section*.",
        POSTSCRIPT: "At the end of your response, please add a postscript starting with "
        f"{kw.get('postscript_marker')}",
        PLACEHOLDERS: f"The response must contain at least {kw.get('num_placeholders')} placeholders "
        "represented by square brackets, such as [address].",
        JSON_FORMAT: "Entire output should be wrapped in JSON format.",
    }[instruction]


def conflicts(a: str, b: str) -> bool:
    return a == b or b in CONFLICTS.get(a, ()) or a in CONFLICTS.get(b, ())


@dataclass
class ResponsePlan:
    """What a response must look like; built from instructions, each obeyed or deliberately broken."""

    case: Literal["lower", "upper", "as written"] = "as written"
    commas: Literal["none", "some", "any"] = "any"
    min_words: int = 0
    max_words: int | None = None
    """Exclusive upper bound on the word count."""
    end_phrase: str = ""
    keywords: tuple[str, ...] = ()
    avoid: frozenset[str] = frozenset()
    """Adjectives the prose must not use."""
    use_word: str = ""
    """A forbidden word to use anyway (the near miss)."""
    quotation: bool = False
    title: bool = False
    bullets: int = 0
    highlights: int = 0
    placeholders: int = 0
    postscript: str = ""
    json: Literal["", "valid", "broken"] = ""


def plan_response(
    rng: random.Random, instructions: list[tuple[str, dict[str, Any]]], broken: int | None = None
) -> ResponsePlan:
    """The plan obeying every instruction except the one at index `broken` (which it violates)."""
    plan = ResponsePlan()
    for i, (instruction, kw) in enumerate(instructions):
        obey = i != broken
        if instruction in (LOWERCASE, CAPITAL):
            plan.case = ("lower" if instruction == LOWERCASE else "upper") if obey else "as written"
        elif instruction == NO_COMMA:
            plan.commas = "none" if obey else "some"
        elif instruction == NUMBER_WORDS:
            if (kw["relation"] == "at least") == obey:
                plan.min_words = kw["num_words"]
            else:
                plan.max_words = kw["num_words"]
        elif instruction == END_CHECKER:
            plan.end_phrase = kw["end_phrase"] if obey else ""
        elif instruction == KEYWORDS_EXIST:
            plan.keywords = tuple(kw["keywords"] if obey else kw["keywords"][:-1])
        elif instruction == FORBIDDEN_WORDS:
            plan.avoid = frozenset(kw["forbidden_words"])
            plan.use_word = "" if obey else rng.choice(kw["forbidden_words"])
        elif instruction == BULLETS:
            n = kw["num_bullets"]
            plan.bullets = n if obey else rng.choice([m for m in (n - 1, n + 1) if m > 0])
        elif instruction == HIGHLIGHTS:
            plan.highlights = kw["num_highlights"] - (not obey)
        elif instruction == PLACEHOLDERS:
            plan.placeholders = kw["num_placeholders"] - (not obey)
        elif instruction == POSTSCRIPT:
            plan.postscript = kw["postscript_marker"] if obey else ""
        elif instruction == JSON_FORMAT:
            plan.json = "valid" if obey else "broken"
        else:  # QUOTATION, TITLE
            setattr(plan, {QUOTATION: "quotation", TITLE: "title"}[instruction], obey)
    return plan


def word_count(text: str) -> int:
    """Words as IFEval counts them (NLTK's `\\w+` tokenizer)."""
    return len(re.findall(r"\w+", text))


def write_response(rng: random.Random, category: str, noun: str, plan: ResponsePlan) -> str:
    """Prose about the topic laid out as `plan` says, redrawn until its word limits hold."""
    name = rng.choice(NAMES)[0]
    extras = [rng.choice(KEYWORD_SENTENCES).format(T=f"The {noun}", kw=kw, Name=name) for kw in plan.keywords]
    extras += rng.sample(PLACEHOLDER_SENTENCES, plan.placeholders)
    extras += [f"The {noun} is {plan.use_word}."] if plan.use_word else []
    fewest = max(len(extras) + (plan.commas == "some"), plan.highlights, 1)
    if plan.bullets and plan.bullets < fewest:
        raise Unbuildable("more required sentences than bullets")
    count = plan.bullets or max(fewest, rng.randint(2, 4))
    for _ in range(40):
        text = _lay_out(rng, category, noun, plan, extras, count)
        words = word_count(text)
        if words < plan.min_words:
            count = plan.bullets or count + 1
        elif plan.max_words is not None and words >= plan.max_words:
            count = plan.bullets or max(fewest, count - 1)
        else:
            return text
    raise Unbuildable("the word limits cannot be met")


def _lay_out(
    rng: random.Random, category: str, noun: str, plan: ResponsePlan, extras: list[str], count: int
) -> str:
    commas = [
        (plan.commas == "some" and i == 0) or (plan.commas == "any" and rng.random() < 0.25)
        for i in range(count)
    ]
    sentences = [prose_sentence(rng, category, noun, c, plan.avoid) for c in commas[: count - len(extras)]]
    sentences += extras
    rng.shuffle(sentences)
    sentences = [f"*{s}*" if i < plan.highlights else s for i, s in enumerate(sentences)]
    text = "\n".join(f"* {s}" for s in sentences) if plan.bullets else " ".join(sentences)
    if plan.title:
        adjective = rng.choice([a for a in ADJECTIVES if a not in plan.avoid])
        text = f"<<The {adjective.capitalize()} {noun.capitalize()}>>\n\n{text}"
    if plan.postscript:
        text += f"\n\n{plan.postscript} " + rng.choice(POSTSCRIPTS).format(Name=rng.choice(NAMES)[0])
    if plan.end_phrase:
        text += ("\n\n" if plan.bullets else " ") + plan.end_phrase
    text = {"lower": text.lower(), "upper": text.upper(), "as written": text}[plan.case]
    if plan.quotation:
        text = f'"{text}"'
    if plan.json:
        text = json.dumps({"answer": text}, ensure_ascii=False)[: -1 if plan.json == "broken" else None]
    return text


def ifeval_problem(rng: random.Random, cfg: IfevalConfig) -> Problem:
    """A request for a few sentences on a topic under 1..max_instructions IFEval constraints."""
    assert cfg.max_instructions is not None
    pool = list(cfg.instructions or SUPPORTED_INSTRUCTIONS)
    chosen: list[str] = []
    for _ in range(rng.randint(1, cfg.max_instructions)):
        options = [i for i in pool if not any(conflicts(i, c) for c in chosen)]
        if options:
            chosen.append(rng.choice(options))
    instructions = [(i, instruction_kwargs(rng, i)) for i in chosen]
    category, noun = random_topic(rng)
    prompt = " ".join(
        [rng.choice(IFEVAL_TASKS).format(noun=noun)] + [instruction_text(i, kw) for i, kw in instructions]
    )
    truth = {"instruction_id_list": chosen, "kwargs": [kw for _, kw in instructions]}
    broken = rng.randrange(len(instructions))
    return Problem(
        verifier="ifeval",
        key=f"ifeval:{noun}:{chosen[0]}",
        prompt=prompt,
        ground_truth=json.dumps(truth, ensure_ascii=False),
        answer=write_response(rng, category, noun, plan_response(rng, instructions)),
        near_miss=write_response(rng, category, noun, plan_response(rng, instructions, broken)),
    )
