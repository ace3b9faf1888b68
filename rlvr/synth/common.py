"""What every task generator shares: the Problem record, the held-out split, seeding, and English."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

# ----------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Problem:
    """One verifiable prompt with a correct demonstration and a plausible wrong one."""

    verifier: str
    key: str
    """What decides the train/test split; problems with equal keys share a partition."""
    prompt: str
    ground_truth: str
    answer: str
    near_miss: str


class Unbuildable(Exception):
    """A drawn combination that cannot be written (e.g. word limits too tight); draw again."""


def is_held_out(seed: int, key: str, test_share: float) -> bool:
    """Whether `key` is in the test partition: a seeded, process-independent hash of the key."""
    digest = hashlib.blake2b(f"{seed}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < test_share


def _rng(seed: int, *purpose: str) -> random.Random:
    return random.Random("/".join([str(seed), *purpose]))


# ----------------------------------------------------------------------------- English

NAMES = (
    ("Tom", "he"), ("Ann", "she"), ("Ben", "he"), ("Mia", "she"), ("Sam", "he"), ("Lily", "she"),
    ("Max", "he"), ("Emma", "she"), ("Jack", "he"), ("Zoe", "she"), ("Leo", "he"), ("Ella", "she"),
    ("Omar", "he"), ("Nina", "she"), ("Hugo", "he"), ("Rosa", "she"),
)  # fmt: skip
TOPICS = {
    "animal": ("cat", "dog", "bird", "horse", "fox", "duck", "rabbit", "cow", "owl", "frog", "goat", "bear"),
    "place": ("park", "river", "sea", "town", "garden", "forest", "farm", "beach", "lake", "village", "hill"),
    "thing": ("kite", "boat", "train", "bike", "cake", "book", "lamp", "hat", "ball", "drum", "clock"),
}
ACTIONS = {
    "animal": ("runs {place}", "sleeps {place}", "plays {place}", "looks for food {place}", "rests {place}"),
    "place": ("is full of people", "looks lovely", "gets cold at night", "feels peaceful", "has many trees"),
    "thing": ("sits {place}", "belongs to {name}", "was a gift from {name}", "stays {place}"),
}
ADJECTIVES = (
    "small", "big", "happy", "quiet", "old", "young", "warm", "bright", "soft", "brave", "kind", "slow",
    "fast", "green", "red", "blue", "tall", "calm", "busy", "pretty",
)  # fmt: skip
PLACES = ("in the garden", "near the river", "at home", "by the lake", "under the tree", "on the hill")
TIMES = ("in the morning", "in the evening", "every day", "after lunch", "in the summer", "on Sunday")
PLAIN_SENTENCES = (
    "{T} is {adj}.",
    "{T} is {adj} and {adj2}.",
    "{T} {action}.",
    "{T} {action} {time}.",
    "I like {t} because it is {adj}.",
    "{Name} thinks {t} is {adj}.",
    "{Name} saw {t} {time}.",
    "Everyone knows {t} is {adj}.",
)
COMMA_SENTENCES = (
    "{Time}, {t} {action}.",
    "{T} is {adj}, {adj2} and {adj3}.",
    "{Name} smiled, because {t} is {adj}.",
)
KEYWORDS = (
    "lantern", "ladder", "mirror", "blanket", "pencil", "candle", "basket", "ribbon", "pillow", "wagon",
)  # fmt: skip
KEYWORD_SENTENCES = (
    "{T} has a {kw}.", "I saw a {kw} there.", "We found a {kw} nearby.", "{Name} brought a {kw}.",
)  # fmt: skip
PLACEHOLDER_SENTENCES = (
    "My name is [name].", "Write to me at [address].", "Meet me at [place].", "Call me on [phone].",
    "See you on [day].",
)  # fmt: skip
POSTSCRIPTS = ("I hope you like it.", "Say hello to {Name} for me.", "Write back soon.", "Thank you.")
END_PHRASES = (
    "Is there anything else I can help with?",
    "Let me know if you have more questions.",
    "That is all for now.",
    "Thank you for reading.",
    "See you next time.",
)


def random_topic(rng: random.Random) -> tuple[str, str]:
    """`(category, noun)` of a random topic."""
    category = rng.choice(sorted(TOPICS))
    return category, rng.choice(TOPICS[category])


def prose_sentence(
    rng: random.Random, category: str, noun: str, comma: bool = False, avoid: frozenset[str] = frozenset()
) -> str:
    """One simple sentence about `the noun`, with a comma iff `comma`, using no adjective in `avoid`."""
    adj, adj2, adj3 = rng.sample([a for a in ADJECTIVES if a not in avoid], 3)
    name = rng.choice(NAMES)[0]
    time = rng.choice(TIMES)
    action = rng.choice(ACTIONS[category]).format(place=rng.choice(PLACES), name=name)
    return rng.choice(COMMA_SENTENCES if comma else PLAIN_SENTENCES).format(
        T=f"The {noun}", t=f"the {noun}", adj=adj, adj2=adj2, adj3=adj3, action=action, Name=name,
        time=time, Time=time[0].upper() + time[1:],
    )  # fmt: skip


def prose(rng: random.Random, category: str, noun: str, sentences: int, comma_share: float = 0.25) -> str:
    """A paragraph of simple sentences about one topic."""
    return " ".join(prose_sentence(rng, category, noun, rng.random() < comma_share) for _ in range(sentences))
