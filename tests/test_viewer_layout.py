"""The trajectory page never contradicts itself, checked as layout facts in headless Chromium (not pixels).

How: render a page of hostile trajectories (a very long unbroken string everywhere text goes, control characters,
a bidi override, an unclosed code fence, a traceback naming host folders, a long title, an output image), append a
probe script that measures the laid-out page on `load` and writes what it found as JSON into a `data-probe`
attribute of <body>, run `chromium --headless --dump-dom`, and read the attribute back. Skipped only where the
Debian `chromium` binary is missing (`make system-deps` installs it).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from codedance_cli.eval.scoring import ScoredSample
from codedance_cli.eval.viewer import prediction_of
from codedance_cli.viewer.html import Prediction, render_html
from codedance_cli.viewer.html_text import attribute, shorten, visible
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn, encode_image

UNBROKEN = "x" * 3000
HOST_TRACE = (
    "Traceback (most recent call last):\n"
    '  File "<cell 2>", line 1, in <module>\n'
    '  File "/work/main/.venv/lib/python3.11/site-packages/numpy/_core/fromnumeric.py", line 299, in reshape\n'
    '  File "/usr/lib/python3.11/json/decoder.py", line 337, in decode\n'
    f"ValueError: cannot reshape {UNBROKEN}"
)
UNCLOSED = "<think>Zoom into the corner first.\n```python\nzoom = input_image.crop((0, 0, 40, 40))  # FENCE_MARK\nzoom"
LONG_TITLE = "infer " + " ".join(f"word{i:03d}" for i in range(60))


def hostile() -> Trajectory:
    crop = encode_image(Image.new("RGB", (48, 32), (30, 90, 200)))
    return Trajectory(
        task_id=LONG_TITLE, question=f"How many dots? {UNBROKEN}", images=[encode_image(Image.new("RGB", (900, 60), "white"))],
        ground_truth="3", prompt_version="codedance-v1", stop_reason="answer", final_answer=f"3 dots, {UNBROKEN[:500]}",
        turns=[
            Turn(text=UNCLOSED, code="zoom = input_image.crop((0, 0, 40, 40))  # FENCE_MARK\nzoom",
                 observation=Observation(images=[crop], stdout=f"bell\x07 esc\x1b[31m nul\x00 del\x7f rtl\u202eabc {UNBROKEN}\n")),
            Turn(text=f"<think>Reshape.</think>\n```python\nx = '{UNBROKEN}'\nnp.reshape(x)\n```", code=f"x = '{UNBROKEN}'\nnp.reshape(x)",
                 observation=Observation(error_type="ValueError", error=HOST_TRACE)),
            Turn(text=f"<think>I count 3 {UNBROKEN}</think><answer>3 dots, {UNBROKEN[:500]}</answer>"),
        ],
    )


PROBE = """<script>
window.addEventListener('load', () => {
  const text = el => (el ? el.innerText : null);
  const wide = el => el.scrollWidth > el.clientWidth + 1;
  const right = el => el.getBoundingClientRect().right;
  const name = el => el.className || el.tagName;
  const cards = [...document.querySelectorAll('.traj')].map(card => ({
    overflows: wide(card),
    insideOverflows: [...card.querySelectorAll('pre,.code,.reasoning,.question,.answer,h2,h3,.meta,.obs')].filter(wide).map(name),
    outside: [...card.querySelectorAll('*')].filter(e => e.getBoundingClientRect().right > right(card) + 1).map(name),
    text: card.innerText,
    heading: text(card.querySelector('h2')),
    headingTitle: card.querySelector('h2').title,
    headPredicted: text(card.querySelector('.head .predicted')),
    answerPredicted: text(card.querySelector('.answer .predicted')),
    codeText: [...card.querySelectorAll('div.code')].map(e => e.innerText).join('\\n'),
    controls: card.querySelectorAll('.ctl').length,
    images: [...card.querySelectorAll('img')].map(i => ({alt: i.alt, natural: i.naturalWidth, shown: i.getBoundingClientRect().width})),
  }));
  document.body.dataset.probe = JSON.stringify({
    pageOverflows: document.documentElement.scrollWidth > window.innerWidth, innerWidth: window.innerWidth, cards,
    title: document.title, h1: text(document.querySelector('h1')),
  });
});
</script></body>"""


def probe(page: str, tmp_path: Path, width: int = 720) -> dict:
    """Lay `page` out in headless Chromium at `width` px and return what the probe measured."""
    path = tmp_path / "probe.html"
    path.write_text(page.replace("</body>", PROBE, 1), encoding="utf-8")
    command = [
        "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        f"--window-size={width},1000", "--virtual-time-budget=10000", "--dump-dom", path.as_uri(),
    ]  # fmt: skip
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<body[^>]*\sdata-probe="([^"]*)"', dom)
    assert found, dom[-2000:]
    return json.loads(html.unescape(found.group(1)))


needs_chromium = pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian chromium not installed (make system-deps installs it)")


@needs_chromium
def test_hostile_trajectory_lays_out_inside_its_card(tmp_path):
    relaxed = Prediction("3", "relaxed: last number of the answer tag")
    page = render_html([hostile(), hostile()], ["wrong", "correct"], title=LONG_TITLE, predictions=[relaxed, None])
    result = probe(page, tmp_path)
    assert not result["pageOverflows"]
    for card in result["cards"]:
        assert not card["overflows"], card
        assert not card["insideOverflows"] and not card["outside"], card["insideOverflows"] + card["outside"]
        text = card["text"]
        # the unclosed fence: once, as code (the raw output is collapsed, not shown)
        assert text.count("FENCE_MARK") == 1 and "FENCE_MARK" in card["codeText"]
        assert "Zoom into the corner first." in text and "```" not in text
        # control characters: visible escapes, none raw; the bidi override cannot reorder what follows
        assert card["controls"] >= 5 and all(mark in text for mark in ("\\x07", "\\x1b", "\\x00", "\\x7f", "\\u202e"))
        assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u202a-\u202e]", text)
        # the traceback names no host folder
        assert "<python>/site-packages/numpy/_core/fromnumeric.py" in text and "<python>/lib/json/decoder.py" in text
        assert "/work/main" not in text and "/usr/lib/python3" not in text
        # the title: cut at a word, with an ellipsis, the whole of it on hover
        heading = card["heading"].split("\n")[0].rsplit("…", 1)[0]
        assert card["heading"].count("…") == 1 and card["headingTitle"] == LONG_TITLE
        assert LONG_TITLE.startswith(heading) and LONG_TITLE[len(heading)] == " "
        # both images decoded and shown inside the card: the input and the crop the code produced
        shown = [(image["alt"], image["natural"] > 0, image["shown"] > 0) for image in card["images"]]
        assert shown == [("input image", True, True), ("produced image", True, True)]
    first, second = result["cards"]
    assert first["headPredicted"] == first["answerPredicted"] == "predicted (relaxed: last number of the answer tag): “3”"
    assert second["headPredicted"] is None and second["answerPredicted"] is None
    assert result["title"].endswith("…") and result["h1"] == result["title"] and len(result["title"]) <= 120


@needs_chromium
def test_narrow_window_still_wraps(tmp_path):
    result = probe(render_html([hostile()], title="narrow"), tmp_path, width=360)
    assert not result["pageOverflows"] and not result["cards"][0]["overflows"] and not result["cards"][0]["insideOverflows"]


def test_controls_are_escaped_visibly_and_attributes_stay_plain():
    bell = '<span class="ctl" title="control character U+0007">\\x07</span>'
    carriage_return = '<span class="ctl" title="control character U+000D">\\x0d</span>'
    assert visible("a\x07<b>\r\nc\rd") == f"a{bell}&lt;b&gt;\nc{carriage_return}d"
    assert attribute('say "\x1b"') == "say &quot;\\x1b&quot;"
    assert visible(None) == ""


@pytest.mark.parametrize(
    "text, limit, expected",
    [
        ("short title", 40, "short title"),
        ("What is the colour of the small car next to the tree?", 30, "What is the colour of the…"),
        ("one two three", 8, "one two…"),
        ("x" * 50, 10, "xxxxxxxxx…"),
        ("multi\nline   text", 40, "multi line text"),
    ],
)
def test_shorten_cuts_at_a_word(text, limit, expected):
    assert shorten(text, limit) == expected and len(shorten(text, limit)) <= limit


def test_unclosed_fence_is_shown_once_in_the_markup_outside_the_raw_output():
    page = render_html([hostile()])
    shown = re.sub(r"<details>.*?</details>", "", page, flags=re.DOTALL)
    assert shown.count("FENCE_MARK") == 1 and "```" not in shown


def test_code_the_loop_did_not_run_is_shown_once_as_written():
    text = "<think>Both.</think>\n```python\nprint('UNRUN')\n```\n<answer>4</answer>"
    page = render_html([Trajectory(task_id="t", question="q", final_answer="4", turns=[Turn(text=text)])])
    shown = re.sub(r"<details>.*?</details>", "", page, flags=re.DOTALL)
    assert shown.count("UNRUN") == 1 and "code not run" in shown and "code and answer in one turn" in shown


def _sample(prediction: str | None, *, correct: bool = False, judged: bool = False) -> ScoredSample:
    return ScoredSample(benchmark="b", task_id="t", sample=0, category="all", prediction=prediction, correct=correct, judged=judged)


@pytest.mark.parametrize(
    "final, answer_type, sample, expected",
    [
        ("B", "choice", _sample("B"), Prediction("B")),
        ("B. a cat", "choice", _sample("B"), Prediction("B", "relaxed: the option it names of the answer tag")),
        (None, "number", _sample("42"), Prediction("42", "relaxed: last number of the last message, no answer tag")),
        ("about 1,200", "number", _sample("1200"), Prediction("1200", "relaxed: last number of the answer tag")),
        (None, "text", _sample(None), Prediction(None, "no answer tag")),
        ("a dog", "text", _sample("cat", correct=True, judged=True), Prediction("cat", "judge: the same as the reference")),
    ],
)
def test_prediction_says_how_it_was_read(final, answer_type, sample, expected):
    trajectory = Trajectory(task_id="t", question="q", final_answer=final, turns=[Turn(text="it is 42")])
    task = Trajectory(task_id="t", question="q", answer_type=answer_type)
    assert prediction_of(sample, trajectory, task) == expected


def test_tool_call_turn_shows_the_extracted_code_once_and_the_prose_around_it():
    call = '<tool_call>\n{"name": "execute_python_code", "arguments": {"code": "print(\'TOOLCODE\')"}}\n</tool_call>'
    turn = Turn(text=f"<think>Look closer.</think>\n{call}\nThen read it.", code="print('TOOLCODE')")
    page = render_html([Trajectory(task_id="t", question="q", prompt_version="codedance-toolcall-v1", turns=[turn])])
    shown = re.sub(r"<details>.*?</details>", "", page, flags=re.DOTALL)
    assert shown.count("TOOLCODE") == 1 and "execute_python_code" not in shown
    assert "Look closer.\nThen read it." in shown
