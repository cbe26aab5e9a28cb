"""Rule-based answer matching: is a model's answer the reference answer?

Used by the filter (pass rates), eval (accuracy) and the RL reward, so all three
agree on what "correct" means. Pure functions, no model calls: open answers that
no rule can decide are the judge's job (`codedance_cli.rewards.score`), and a
`False` from here only means "not provably equal". The rules never accept what a
careful judge rejects: a number matches at the reference's precision (`42.3` is
not `42`), and a hedge (`STOP or GO`) is not an answer. Which text is the answer
and which option a text picks come from `codedance_cli.loop.grammar`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from fractions import Fraction

from codedance_cli.loop.grammar import HEDGES, answer_letter, answer_or_text, is_hedge, normalize_text, options_in_question

LEAD_INS = re.compile(
    r"^\s*(?:final\s+answer|the\s+(?:final\s+|correct\s+)?answer(?:\s+is)?|answer|option|choice)(?:\s*(?:\bis\b|[:：]))*\s*",
    re.IGNORECASE,
)
NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
NUMBER_TOKEN = re.compile(
    r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?:[eE][-+]?\d+)?\s*%?"
    r"|(?<![\w.])[-+−]?\.\d+\s*%?"
)
UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
    "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
SCALES = {"hundred": 100, "thousand": 1000}
ZERO_WORDS = {"none": 0, "no": 0, "a single": 1, "single": 1}
NEGATIONS = {"not", "no", "never", "neither", "nor", "isn't", "aren't", "none", "cannot", "can't"}

# Tolerance for references written as fractions or in scientific notation (no decimal places to round at).
DEFAULT_REL_TOL = 0.01
DEFAULT_ABS_TOL = 1e-9


def extract_answer(text: str) -> str:
    """The part of a model message that is the answer: the graded `<answer>` content, else `\\boxed{}`, else all of it."""
    return answer_or_text(text)


def _parse_number_token(token: str) -> tuple[float, bool] | None:
    """'1,234.5' -> (1234.5, False); '45 %' -> (45.0, True); '3/4' -> (0.75, False)."""
    token = token.strip().replace("−", "-").replace(" ", "")
    is_percent = token.endswith("%")
    token = token.rstrip("%").replace(",", "")
    try:
        if "/" in token:
            numerator, denominator = token.split("/", 1)
            value = float(Fraction(numerator) / Fraction(denominator)) if float(denominator) != 0 else math.nan
        else:
            value = float(token)
    except (ValueError, ZeroDivisionError):
        return None
    if math.isnan(value) or math.isinf(value):
        return None
    return value, is_percent


def words_number(text: str) -> float | None:
    """'forty-two' -> 42, 'one hundred and five' -> 105, 'none' -> 0; None when no number word is there."""
    words = normalize_text(text.replace("-", " ")).split()
    total, current, seen = 0, 0, False
    for word in words:
        if word in UNITS:
            current += UNITS[word]
        elif word in TENS:
            current += TENS[word]
        elif word in SCALES and seen:
            current = max(current, 1) * SCALES[word]
            if SCALES[word] >= 1000:
                total, current = total + current, 0
        elif word == "and" and seen:
            continue
        elif seen:
            break
        else:
            continue
        seen = True
    if seen:
        return float(total + current)
    joined = " ".join(words)
    for phrase, value in ZERO_WORDS.items():
        if re.search(rf"\b{re.escape(phrase)}\b", joined):
            return float(value)
    return None


def _number_tokens(text: str) -> list[str]:
    text = re.sub(r"\\(?:frac|dfrac|tfrac)\{([^{}]+)\}\{([^{}]+)\}", r"\1/\2", extract_answer(text))
    return NUMBER_TOKEN.findall(text.replace("\\%", "%").replace("$", ""))


def parse_number(text: str) -> tuple[float, bool] | None:
    """The number an answer states (the last one, so 'from 3 to 5' says 5), with a percent flag; words count."""
    for token in reversed(_number_tokens(text)):
        parsed = _parse_number_token(token)
        if parsed is not None:
            return parsed
    value = words_number(extract_answer(text))
    return None if value is None else (value, False)


def _decimals(reference: str) -> int | None:
    """Decimal places the reference is written with (0 for an integer); None for fractions and exponents."""
    tokens = _number_tokens(reference)
    if not tokens:
        return 0  # a reference in words ('seven') is an integer
    token = tokens[-1].replace(" ", "").rstrip("%")
    if "/" in token or "e" in token.lower():
        return None
    return len(token.split(".", 1)[1]) if "." in token else 0


def numbers_match(prediction: str, ground_truth: str) -> bool:
    """Equal at the reference's precision, ignoring units and separators; 45% matches 0.45 and 45.

    An integer reference needs an integer ('42.3' is not 42); a reference with d decimals accepts what rounds to
    it at d decimals ('12.54' is 12.5); fractions and exponents compare within 1 %. A hedge never matches.
    """
    predicted = parse_number(prediction)
    expected = parse_number(ground_truth)
    if predicted is None or expected is None or is_hedge(extract_answer(prediction)):
        return False
    (p_value, p_percent), (g_value, g_percent) = predicted, expected
    candidates = [p_value]
    if p_percent != g_percent:  # one side wrote a percent: 45% vs 0.45, or 45% vs 45
        candidates += [p_value / 100.0, p_value * 100.0]
    decimals = _decimals(ground_truth)
    if decimals is None:
        return any(math.isclose(value, g_value, rel_tol=DEFAULT_REL_TOL, abs_tol=DEFAULT_ABS_TOL) for value in candidates)
    half_unit = 0.5 * 10.0**-decimals if decimals else DEFAULT_ABS_TOL
    return any(abs(value - g_value) <= half_unit + DEFAULT_ABS_TOL * max(1.0, abs(g_value)) for value in candidates)


def choices_match(prediction: str, ground_truth: str, choices: Sequence[str] | None = None, question: str = "") -> bool:
    """Same option, whether each side gave the letter or the option's text (options may come from the question)."""
    expected = answer_letter(ground_truth, choices, question)
    predicted = answer_letter(prediction, choices, question)
    if expected is not None and predicted is not None:
        return expected == predicted
    return normalize_text(extract_answer(prediction)) == normalize_text(extract_answer(ground_truth)) != ""


def texts_match(prediction: str, ground_truth: str) -> bool:
    """Same short answer after normalisation; a short sentence that contains the reference (and no negation or hedge) counts.

    'Yes, it is.' matches 'yes'; 'The car is red' matches 'red'; 'not red' and 'red or blue' do not.
    """
    predicted = normalize_text(LEAD_INS.sub("", extract_answer(prediction)))
    expected = normalize_text(LEAD_INS.sub("", extract_answer(ground_truth)))
    if not expected or not predicted:
        return False
    if predicted == expected:
        return True
    words = predicted.split()
    if HEDGES & set(words) - set(expected.split()):
        return False
    if expected in ("yes", "no"):
        return words[0] == expected
    if len(words) > len(expected.split()) + 4 or NEGATIONS & set(words):
        return False
    return f" {expected} " in f" {predicted} "


def answers_match(
    prediction: str | None,
    ground_truth: str | None,
    answer_type: str = "text",
    choices: Sequence[str] | None = None,
    question: str = "",
) -> bool:
    """Is `prediction` the reference answer under the rules for `answer_type` (choice, number, text, open)?

    `prediction` may be a whole model message: the graded `<answer>` (or `\\boxed{}`) is used. A reference
    that is a number is compared as a number whatever the type says (counting items labelled "text" are
    common in public data); when the question lists lettered options, an option's text maps to its letter.
    """
    if not prediction or ground_truth is None or not str(ground_truth).strip():
        return False
    prediction, ground_truth = str(prediction), str(ground_truth)
    options = list(choices or []) or options_in_question(question)
    if answer_type == "choice" or (options and answer_letter(ground_truth, options) is not None):
        return choices_match(prediction, ground_truth, options)
    reference = extract_answer(ground_truth).strip()
    if answer_type == "number":
        return numbers_match(prediction, ground_truth)
    if NUMBER.fullmatch(reference.replace(" ", "").replace("−", "-").rstrip("%")) and parse_number(reference) is not None:
        return numbers_match(prediction, ground_truth)
    return texts_match(prediction, ground_truth)
