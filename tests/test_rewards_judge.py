"""The reward's judge path over real HTTP: JudgeClient against local chat-completions servers (the judge model is
the only stand-in), selected by CODEDANCE_JUDGE_URL, spread over several servers, failing safe."""

from __future__ import annotations

import pytest
from test_clients import FlakyServer

from codedance_cli.engines.verl.reward import compute_score_batch, load_reward_config


def dog_judge(**kwargs) -> FlakyServer:
    def reply(body: dict) -> str:
        candidate = body["messages"][-1]["content"].split("Candidate answer: ")[1]
        return f"Thinking.\nJudgement: {'yes' if 'dog' in candidate else 'no'}"

    return FlakyServer(reply=reply, **kwargs)


@pytest.fixture(autouse=True)
def fresh_config():
    load_reward_config.cache_clear()
    yield
    load_reward_config.cache_clear()


def test_open_answers_are_judged_over_http_round_robin(monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = dog_judge(), dog_judge()
    monkeypatch.setenv("CODEDANCE_JUDGE_URL", f"{first.url},{second.url}")
    solutions = [
        "<answer>a small dog</answer>",
        "<answer>a cat</answer>",
        "<answer>the family pet that barks at the mailman, a dog</answer>",
        "<answer>B</answer>",
    ]
    infos = [{"answer_type": "open", "question": "Which animal?"}] * 3 + [{"answer_type": "choice"}]
    results = compute_score_batch(["codedance"] * 4, solutions, ["dog", "dog", "dog", "A"], infos)
    assert [r["accuracy"] for r in results] == [1.0, 0.0, 1.0, 0.0]
    assert [r["judged"] for r in results] == [1.0, 1.0, 1.0, 1.0]  # judge_policy `always`: every general rollout
    assert len(first.requests) == 2 and len(second.requests) == 2
    assert first.requests[0]["model"] == "judge"


def test_failing_judge_scores_wrong_instead_of_failing_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    broken = dog_judge(failures=100, status=500)
    monkeypatch.setenv("CODEDANCE_JUDGE_URL", broken.url)
    (result,) = compute_score_batch(["codedance"], ["<answer>a dog</answer>"], ["puppy"], [{"answer_type": "open"}])
    assert result["judged"] == 1.0 and result["accuracy"] == 0.0 and result["format"] == 0.0
    assert len(broken.requests) >= 1
