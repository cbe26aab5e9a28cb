"""Rule-based answer matching: is a model's answer the reference answer?

Used by the filter (pass rates), eval (accuracy) and the RL reward, so all three
agree on what "correct" means. Pure functions, no model calls: open answers that
no rule can decide are the judge's job (`codedance_cli.rewards.score`), and a
`False` from here on an open item only means "not provably equal".
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Sequence
from fractions import Fraction

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
LEAD_INS = re.compile(
    r"^\s*(?:final\s+answer|the\s+(?:final\s+|correct\s+)?answer(?:\s+is)?|answer|option|choice)(?:\s*(?:\bis\b|[:：]))*\s*",
    re.IGNORECASE,
)
NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")
NUMBER_TOKEN = re.compile(
    r"(?<![\w.])[-+−]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?:\s*/\s*\d+(?:\.\d+)?)?(?:[eE][-+]?\d+)?\s*%?"
    r"|(?<![\w.])[-+−]?\.\d+\s*%?"
)
NUMBER_WORDS = {
    "zero": 0, "none": 0, "no": 0, "one": 1, "a single": 1, "single": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
}  # fmt: skip
NEGATIONS = {"not", "no", "never", "neither", "nor", "isn't", "aren't", "none", "cannot", "can't"}
ARTICLES = {"a", "an", "the"}
LETTERS = string.ascii_uppercase

# Relative tolerance for numbers: readings off a chart are rarely exact.
DEFAULT_REL_TOL = 0.01
DEFAULT_ABS_TOL = 1e-6


def extract_answer(text: str) -> str:
    """The part of a model message that is the answer: last `<answer>` content, else `\\boxed{}`, else all of it."""
    tagged = ANSWER_TAG.findall(text)
    if tagged:
        text = tagged[-1]
    boxed = BOXED.findall(text)
    if boxed:
        text = boxed[-1]
    return text.strip()


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation, articles and extra spaces: 'The Red car.' -> 'red car'."""
    text = text.lower().replace("\u2019", "'")
    text = "".join(" " if ch in string.punctuation and ch != "'" else ch for ch in text)
    words = [word.strip("'") for word in text.split()]
    return " ".join(word for word in words if word and word not in ARTICLES)


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


def parse_number(text: str) -> tuple[float, bool] | None:
    """The number an answer states (the last one, so 'from 3 to 5' says 5), with a percent flag; words count."""
    text = extract_answer(text)
    text = re.sub(r"\\(?:frac|dfrac|tfrac)\{([^{}]+)\}\{([^{}]+)\}", r"\1/\2", text)
    text = text.replace("\\%", "%").replace("$", "")
    tokens = NUMBER_TOKEN.findall(text)
    for token in reversed(tokens):
        parsed = _parse_number_token(token)
        if parsed is not None:
            return parsed
    words = normalize_text(text)
    for phrase, value in sorted(NUMBER_WORDS.items(), key=lambda item: -len(item[0])):
        if re.search(rf"\b{re.escape(phrase)}\b", words):
            return float(value), False
    return None


def numbers_match(prediction: str, ground_truth: str, *, rel_tol: float = DEFAULT_REL_TOL, abs_tol: float = DEFAULT_ABS_TOL) -> bool:
    """Equal within tolerance, ignoring units and thousands separators; 45% matches 0.45 and 45."""
    predicted = parse_number(prediction)
    expected = parse_number(ground_truth)
    if predicted is None or expected is None:
        return False
    (p_value, p_percent), (g_value, g_percent) = predicted, expected
    candidates = [p_value]
    if p_percent != g_percent:  # one side wrote a percent: 45% vs 0.45, or 45% vs 45
        candidates += [p_value / 100.0, p_value * 100.0]
    return any(math.isclose(value, g_value, rel_tol=rel_tol, abs_tol=abs_tol) for value in candidates)


def _letter_for(text: str, choices: Sequence[str] | None) -> str | None:
    """A choice letter from 'B', '(b)', 'B.', 'Option B: cat', 'the answer is B', or an option's own text."""
    answer = extract_answer(text).strip()
    if choices:
        wanted = normalize_text(answer)
        for index, choice in enumerate(choices):
            option_text = re.sub(r"^\s*\(?[A-Za-z]\s*[).:]\s+", "", choice)  # choices may carry their own "A. " prefix
            if wanted and wanted in (normalize_text(choice), normalize_text(option_text)):
                return LETTERS[index]
    stripped = LEAD_INS.sub("", answer)
    valid = LETTERS[: len(choices)] if choices else LETTERS
    patterns = (
        r"^\(?([A-Za-z])\)?\s*(?:[.:)\]]|$)",  # B | (B) | B. | B) | B: ...
        r"^\(?([A-Z])\)?(?=\s)",  # "B because ..." (capital only, so "a cat" is not A)
        r"\(([A-Z])\)",  # "... is (B)"
        r"\b(?:answer|option|choice)\s*(?:is\s*)?[:：]?\s*\(?([A-Z])\b",
    )
    for pattern in patterns:
        match = re.search(pattern, stripped)
        if match and match.group(1).upper() in valid:
            return match.group(1).upper()
    return None


def choices_match(prediction: str, ground_truth: str, choices: Sequence[str] | None = None) -> bool:
    """Same option, whether each side gave the letter or the option's text."""
    expected = _letter_for(ground_truth, choices)
    predicted = _letter_for(prediction, choices)
    if expected is not None and predicted is not None:
        return expected == predicted
    return normalize_text(extract_answer(prediction)) == normalize_text(extract_answer(ground_truth)) != ""


def texts_match(prediction: str, ground_truth: str) -> bool:
    """Same short answer after normalisation; a short sentence that contains the reference (and no negation) counts.

    'Yes, it is.' matches 'yes'; 'The car is red' matches 'red'; 'not red' does not.
    """
    predicted = normalize_text(LEAD_INS.sub("", extract_answer(prediction)))
    expected = normalize_text(LEAD_INS.sub("", extract_answer(ground_truth)))
    if not expected or not predicted:
        return False
    if predicted == expected:
        return True
    if expected in ("yes", "no"):
        return predicted.split()[0] == expected
    words = predicted.split()
    expected_words = expected.split()
    if len(words) > len(expected_words) + 4 or NEGATIONS & set(words):
        return False
    padded = f" {predicted} "
    return f" {expected} " in padded


def answers_match(
    prediction: str | None, ground_truth: str | None, answer_type: str = "text", choices: Sequence[str] | None = None
) -> bool:
    """Is `prediction` the reference answer under the rules for `answer_type` (choice, number, text, open)?

    `prediction` may be a whole model message: the last `<answer>` (or `\\boxed{}`) is used.
    A reference that is a number is compared as a number whatever the type says, because
    counting items labelled "text" are common in public data.
    """
    if not prediction or ground_truth is None or not str(ground_truth).strip():
        return False
    prediction, ground_truth = str(prediction), str(ground_truth)
    if answer_type == "choice":
        return choices_match(prediction, ground_truth, choices)
    if answer_type == "number":
        return numbers_match(prediction, ground_truth)
    reference = extract_answer(ground_truth).strip()
    if NUMBER.fullmatch(reference.replace(" ", "").replace("−", "-").rstrip("%")) and parse_number(reference) is not None:
        return numbers_match(prediction, ground_truth)
    return texts_match(prediction, ground_truth)
