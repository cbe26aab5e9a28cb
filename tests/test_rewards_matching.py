"""Rule matching against hand-decided cases: each row is what a human grader would say."""

from __future__ import annotations

import pytest

from codedance_cli.rewards.matching import answers_match, extract_answer, parse_number

CHOICES = ["cat", "dog", "bird", "fish"]


@pytest.mark.parametrize(
    ("prediction", "ground_truth", "expected"),
    [
        ("B", "B", True),
        ("(b)", "B", True),
        ("B. dog", "B", True),
        ("The answer is (C).", "C", True),
        ("Answer: D", "D", True),
        ("dog", "B", True),  # option text for the letter
        ("B", "dog", True),  # reference given as text
        ("<think>A or B?</think><answer>B</answer>", "B", True),
        ("A", "B", False),
        ("bird", "B", False),
    ],
)
def test_choice(prediction: str, ground_truth: str, expected: bool) -> None:
    assert answers_match(prediction, ground_truth, "choice", CHOICES) is expected


def test_choice_with_prefixed_options_and_no_choices() -> None:
    assert answers_match("cat", "A", "choice", ["A. cat", "B. dog"])
    assert answers_match("(A)", "A", "choice")
    assert not answers_match("a cat", "A", "choice")  # lower-case article is not a letter


@pytest.mark.parametrize(
    ("prediction", "ground_truth", "expected"),
    [
        ("42", "42", True),
        ("There are 7 apples.", "7", True),
        ("seven", "7", True),
        ("1,234", "1234", True),
        ("12 cm", "12", True),
        ("45%", "0.45", True),
        ("45%", "45", True),
        ("0.45", "45%", True),
        ("3/4", "0.75", True),
        ("\\frac{3}{4}", "0.75", True),
        ("\\boxed{12.5}", "12.5", True),
        ("100.5", "100", False),  # an integer reference needs an integer
        ("42.3", "42", False),
        ("42.0", "42", True),
        ("12.54", "12.5", True),  # rounds to the reference at its precision
        ("12.6", "12.5", False),
        ("forty-two", "42", True),
        ("one hundred and five", "105", True),
        ("3 or 4", "4", False),  # a hedge is not an answer
        ("102", "100", False),
        ("from 3 to 5", "5", True),  # the last number is the stated one
        ("-3", "3", False),
        ("no number here", "3", False),
    ],
)
def test_number(prediction: str, ground_truth: str, expected: bool) -> None:
    assert answers_match(prediction, ground_truth, "number") is expected


@pytest.mark.parametrize(
    ("prediction", "ground_truth", "answer_type", "expected"),
    [
        ("Red.", "red", "text", True),
        ("The car is red", "red", "text", True),
        ("not red", "red", "text", False),
        ("Yes, it is.", "yes", "text", True),
        ("No", "yes", "text", False),
        ("The Eiffel Tower", "eiffel tower", "text", True),
        ("blue", "red", "text", False),
        ("3.5", "3", "text", False),  # numeric reference compares as a number, not as a substring
        ("5 apples", "5", "text", True),
        ("a very long sentence that happens to mention red somewhere deep inside it", "red", "text", False),
        ("Paris", "paris", "open", True),
        ("STOP or GO", "STOP", "text", False),  # a hedge
        ("It could be STOP", "STOP", "text", False),
        ("", "red", "text", False),
        ("red", "", "text", False),
        (None, "red", "text", False),
    ],
)
def test_text(prediction: str | None, ground_truth: str, answer_type: str, expected: bool) -> None:
    assert answers_match(prediction, ground_truth, answer_type) is expected


def test_helpers() -> None:
    assert extract_answer("x <answer>first</answer> y <answer> last </answer>") == "first"  # the graded block
    assert parse_number("about 1,200 m") == (1200.0, False)
    assert parse_number("12.5 %") == (12.5, True)
    assert parse_number("nothing") is None


def test_option_text_maps_to_the_letter_the_question_lists() -> None:
    question = "Which animal is shown?\nOptions:\nA. cat\nB. dog"
    assert answers_match("dog", "B", "text", question=question)
    assert answers_match("(B)", "B", "text", question=question)
    assert not answers_match("cat", "B", "text", question=question)
    assert not answers_match("A or B", "B", "choice", ["cat", "dog"])  # a hedge names no option
