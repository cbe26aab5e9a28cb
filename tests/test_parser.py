"""Every malformed-output case of the turn parser has one defined result."""

from __future__ import annotations

import json
import time

import pytest

from codedance_cli.loop.parser import MAX_PARSE_CHARS, parse_turn
from codedance_cli.loop.prompts import DEFAULT_VERSION as V1
from codedance_cli.loop.prompts import TOOLCALL_VERSION as TC
from codedance_cli.loop.prompts import tool_call_text


def test_well_formed_code_turn():
    parsed = parse_turn("<think>Zoom into the sign.</think>\n```python\nprint(input_image.size)\n```", V1)
    assert parsed.reasoning == "Zoom into the sign."
    assert parsed.code == "print(input_image.size)"
    assert parsed.answer is None and not parsed.malformed and parsed.flags == set()
    assert parsed.wants_execution


def test_well_formed_answer_turn():
    parsed = parse_turn("<think>It reads STOP.</think>\n<answer> STOP </answer>", V1)
    assert parsed.answer == "STOP" and parsed.code is None and parsed.flags == set()
    assert not parsed.wants_execution


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_output(text):
    parsed = parse_turn(text, V1)
    assert parsed.flags == {"empty"} and parsed.code is None and parsed.answer is None and parsed.reasoning == ""


def test_unterminated_fence_runs_to_end():
    parsed = parse_turn("<think>crop</think>\n```python\nbox = (0, 0, 10, 10)\ncrop = input_image.cr", V1)
    assert parsed.code == "box = (0, 0, 10, 10)\ncrop = input_image.cr"
    assert {"unterminated_code", "malformed"} <= parsed.flags


def test_several_code_blocks_run_concatenated_in_order():
    text = "<think>two steps</think>\n```python\nx = 1\n```\nthen\n```py\nprint(x + 1)\n```"
    parsed = parse_turn(text, V1)
    assert parsed.code == "x = 1\n\nprint(x + 1)"
    assert parsed.several_code_blocks and not parsed.malformed


def test_non_python_fences_are_not_code():
    parsed = parse_turn("<think>format</think>\n```json\n{\"a\": 1}\n```\n<answer>1</answer>", V1)
    assert parsed.code is None and parsed.answer == "1" and parsed.flags == set()


def test_bare_fence_counts_as_python():
    assert parse_turn("```\nprint(2)\n```", V1).code == "print(2)"


def test_no_answer_and_no_code():
    parsed = parse_turn("<think>I am not sure what to do.</think> Let me think more.", V1)
    assert parsed.code is None and parsed.answer is None and not parsed.wants_execution
    assert parsed.reasoning == "I am not sure what to do."


def test_answer_inside_code_is_not_an_answer():
    parsed = parse_turn('<think>print it</think>\n```python\nprint("<answer>3</answer>")\n```', V1)
    assert parsed.answer is None and parsed.code == 'print("<answer>3</answer>")'
    assert "answer_in_code" in parsed.flags


def test_code_and_answer_in_one_turn_answer_wins_and_code_is_not_run():
    parsed = parse_turn("<think>guess</think>\n```python\nprint(1)\n```\n<answer>B</answer>", V1)
    assert parsed.answer == "B" and parsed.code is None and "code_and_answer" in parsed.flags


def test_several_answers_first_counts_as_the_reward_grades_it():
    parsed = parse_turn("<answer>A</answer> no wait <answer>C</answer>", V1)
    assert parsed.answer == "A" and "several_answers" in parsed.flags


def test_unterminated_answer_takes_the_rest():
    parsed = parse_turn("<think>done</think><answer>42 apples", V1)
    assert parsed.answer == "42 apples" and {"unterminated_answer", "malformed"} <= parsed.flags


def test_unbalanced_think_is_flagged():
    parsed = parse_turn("<think>hmm\n<answer>7</answer>", V1)
    assert parsed.answer == "7" and {"unbalanced_think", "malformed"} <= parsed.flags


def test_reasoning_without_think_tags_is_prose_before_code():
    parsed = parse_turn("Let me crop the top left.\n```python\nprint(1)\n```", V1)
    assert parsed.reasoning == "Let me crop the top left." and parsed.code == "print(1)"


def test_enormous_output_is_cut_and_parsed_fast():
    text = "<think>" + "blah " * 400_000 + "</think>\n```python\nprint(1)\n```"
    started = time.perf_counter()
    parsed = parse_turn(text, V1)
    assert time.perf_counter() - started < 1.0
    assert "truncated_input" in parsed.flags
    assert parsed.code is None  # the code block lay past the cut
    assert len(parsed.reasoning) <= MAX_PARSE_CHARS


def test_enormous_pathological_fences_are_linear():
    text = "```python\n" * 20_000
    started = time.perf_counter()
    parsed = parse_turn(text, V1)
    assert time.perf_counter() - started < 2.0
    assert parsed.code is not None


# --- the tool-call format (CodeDance release) ---


def test_tool_call_extracts_code():
    text = "<think>crop it</think>\n" + tool_call_text("print(input_image.size)\nx = 'a\"b'")
    parsed = parse_turn(text, TC)
    assert parsed.code == "print(input_image.size)\nx = 'a\"b'" and parsed.flags == set()


def test_tool_call_with_raw_newlines_in_json_string():
    text = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "x = 1\nprint(x)"}}\n</tool_call>'
    assert parse_turn(text, TC).code == "x = 1\nprint(x)"


def test_tool_call_with_double_encoded_arguments():
    payload = {"name": "execute_python_code", "arguments": json.dumps({"code": "print(5)"})}
    assert parse_turn(f"<tool_call>{json.dumps(payload)}</tool_call>", TC).code == "print(5)"


def test_bad_tool_call_becomes_tool_error():
    parsed = parse_turn("<tool_call>{not json}</tool_call>", TC)
    assert parsed.code is None and parsed.tool_error and "not valid JSON" in parsed.tool_error
    assert {"bad_tool_call", "malformed"} <= parsed.flags and parsed.wants_execution


def test_unknown_tool_name_is_a_tool_error():
    parsed = parse_turn('<tool_call>{"name": "search", "arguments": {"q": "x"}}</tool_call>', TC)
    assert parsed.code is None and "unknown tool 'search'" in parsed.tool_error


def test_unterminated_tool_call_is_parsed_to_the_end():
    text = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(3)"}}'
    parsed = parse_turn(text, TC)
    assert parsed.code == "print(3)" and "unterminated_code" in parsed.flags


def test_several_tool_calls_concatenate_and_bad_ones_are_flagged():
    text = tool_call_text("a = 2") + "\n<tool_call>oops</tool_call>\n" + tool_call_text("print(a)")
    parsed = parse_turn(text, TC)
    assert parsed.code == "a = 2\n\nprint(a)" and {"several_code_blocks", "bad_tool_call"} <= parsed.flags


def test_fenced_code_under_tool_format_is_accepted_off_format():
    parsed = parse_turn("```python\nprint(1)\n```", TC)
    assert parsed.code == "print(1)" and "off_format" in parsed.flags


def test_tool_call_under_fenced_format_is_accepted_off_format():
    parsed = parse_turn(tool_call_text("print(9)"), V1)
    assert parsed.code == "print(9)" and "off_format" in parsed.flags


def test_answer_in_tool_call_code_is_not_an_answer():
    parsed = parse_turn(tool_call_text('print("<answer>x</answer>")'), TC)
    assert parsed.answer is None and parsed.code is not None and "answer_in_code" in parsed.flags


def test_unknown_version_is_bad_input():
    from codedance_cli.errors import BadInput

    with pytest.raises(BadInput, match="unknown prompt_version"):
        parse_turn("x", "codedance-v0")
