"""One self-contained HTML page for one or many trajectories (infer --html, the eval viewer).

Everything is inline: images as data URLs, Pygments-highlighted code with its CSS,
a few lines of JavaScript to filter by label (correct / wrong / ...) and search
text. The page opens from disk with no network, so it can be attached to a bug
report or copied off a cluster.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from codedance_cli.viewer.html_text import attribute, mark_controls, shorten, visible
from codedance_cli.common.atomic import atomic_write_text
from codedance_cli.trajectory.media import data_url
from codedance_cli.trajectory.schema import Observation, Trajectory, Turn
from codedance_cli.viewer.turn_parts import flag_notes, split_turn

_FORMATTER = HtmlFormatter(style="friendly", cssclass="code")
TITLE_CHARS = 120  # the page title
CARD_TITLE_CHARS = 100  # a trajectory's heading (its task id)

@dataclass(frozen=True)
class Prediction:
    """What a scorer graded for one trajectory, and how it read it off the model's text.

    `how` is empty when the prediction is the answer tag as written; otherwise it says which relaxed reading
    produced it ("relaxed: last number of the last message"), so the page never shows one answer in the heading
    and another in the answer box without saying why.
    """

    text: str | None
    how: str = ""

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde;padding:10px 18px;z-index:2;overflow-wrap:anywhere}
header h1{font-size:17px;margin:0 0 6px}
.filters button{border:1px solid #bcc;background:#fff;border-radius:12px;padding:2px 10px;margin:0 4px 4px 0;cursor:pointer;overflow-wrap:anywhere}
.filters button.on{background:#1d2330;color:#fff}
#search{padding:3px 8px;width:260px;max-width:100%;border:1px solid #bcc;border-radius:6px}
main{padding:14px 18px;max-width:1100px}
.traj{background:#fff;border:1px solid #dde;border-radius:8px;margin:0 0 16px;padding:12px 14px;min-width:0;overflow-wrap:anywhere;word-break:break-word}
.traj h2{font-size:15px;margin:0 0 6px}
.label{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;margin-left:6px;background:#e5e7eb}
.label-correct{background:#d1fae5;color:#065f46}.label-wrong{background:#fee2e2;color:#991b1b}
.meta{color:#556;font-size:12.5px;margin:2px 0 8px}
.predicted .value{font-weight:600}.predicted .how{color:#92400e}
.flag{display:inline-block;background:#fef3c7;color:#92400e;border-radius:8px;padding:0 6px;margin-left:6px;font-weight:normal}
.question{white-space:pre-wrap;margin:6px 0}
.turn{border-left:3px solid #c7d2fe;padding:2px 0 2px 10px;margin:10px 0;min-width:0}
.turn h3{font-size:13px;margin:0 0 4px;color:#334}
.reasoning,.raw{white-space:pre-wrap;color:#334}
pre{white-space:pre-wrap;overflow-wrap:anywhere;word-break:break-word}
.obs{background:#f3f4f6;border-radius:6px;padding:6px 9px;margin-top:6px}
.obs pre{margin:0;font-size:12.5px}
.obs .err{color:#991b1b}
pre.unrun{background:#f9fafb;border:1px dashed #ccd;border-radius:6px;padding:4px 8px;font-size:12.5px}
.answer{background:#ecfdf5;border:1px solid #a7f3d0;border-radius:6px;padding:5px 9px;margin-top:8px}
.answer .predicted{display:block}
img{max-width:min(420px,100%);max-height:420px;height:auto;border:1px solid #ccd;border-radius:4px;margin:4px 6px 4px 0;vertical-align:top}
.code{border-radius:6px;padding:2px 8px;overflow-x:auto;font-size:12.5px}
.ctl{font:11.5px ui-monospace,monospace;color:#9a3412;background:#ffedd5;border-radius:3px;padding:0 1px}
details summary{cursor:pointer;color:#556;font-size:12.5px}
"""

_SCRIPT = """
(function(){
  let label='all', query='';
  const cards=[...document.querySelectorAll('.traj')];
  function apply(){
    let shown=0;
    for(const c of cards){
      const ok=(label==='all'||c.dataset.label===label)&&(!query||c.textContent.toLowerCase().includes(query));
      c.style.display=ok?'':'none'; if(ok) shown++;
    }
    document.getElementById('shown').textContent=shown+' of '+cards.length+' shown';
  }
  for(const b of document.querySelectorAll('.filters button')){
    b.addEventListener('click',()=>{
      document.querySelectorAll('.filters button').forEach(x=>x.classList.remove('on'));
      b.classList.add('on'); label=b.dataset.label; apply();
    });
  }
  document.getElementById('search').addEventListener('input',e=>{query=e.target.value.toLowerCase(); apply();});
  apply();
})();
"""


def _img(data: bytes, alt: str) -> str:
    return f'<img alt="{alt}" src="{data_url(data)}">'


def _code(code: str) -> str:
    # Pygments escapes < > & but passes control characters through; they can only sit in text, never in its markup.
    return mark_controls(highlight(code.replace("\r\n", "\n"), PythonLexer(), _FORMATTER))


def _scrubbed(text: str) -> str:
    # Trajectories recorded before the sandbox scrubbed tracebacks still name host folders: scrub them on display too.
    from codedance_cli.sandbox.trace_paths import scrub_host_paths

    return scrub_host_paths(text)


def _observation(obs: Observation) -> str:
    parts = ['<div class="obs"><div><b>Observation</b></div>']
    if obs.stdout.strip():
        parts.append(f"<pre>{visible(obs.stdout)}</pre>")
    if obs.error_type or obs.timed_out:
        parts.append(f'<pre class="err">{visible(obs.error_type or "Timeout")}: {visible(_scrubbed(obs.error or ""))}</pre>')
    if not obs.stdout.strip() and not obs.images and obs.ok:
        parts.append("<pre>(no output)</pre>")
    parts.extend(_img(data, "produced image") for data in obs.images)
    parts.append(f'<div class="meta">{obs.duration_s:.2f}s{" · output truncated" if obs.truncated else ""}</div></div>')
    return "".join(parts)


def _turn(index: int, turn: Turn, version: str | None) -> str:
    cost = []
    if turn.completion_tokens is not None:
        cost.append(f"{turn.completion_tokens} tokens")
    if turn.generation_s is not None:
        cost.append(f"{turn.generation_s:.2f}s")
    flags = "".join(f'<span class="flag">{visible(note)}</span>' for note in flag_notes(turn.text, version))
    parts = [f'<div class="turn"><h3>Turn {index + 1} <span class="meta">{" · ".join(cost)}</span>{flags}</h3>']
    prose, code_regions = split_turn(turn.text)
    if prose:
        parts.append(f'<div class="reasoning">{visible(prose)}</div>')
    if turn.code is not None:
        parts.append(_code(turn.code))
    else:  # code the loop did not run (a turn that also answered, a bad tool call): shown as written, once
        parts.extend(f'<div class="meta">code not run</div><pre class="unrun">{visible(region)}</pre>' for region in code_regions)
    if turn.observation is not None:
        parts.append(_observation(turn.observation))
    parts.append(f'<details><summary>raw model output</summary><div class="raw">{visible(turn.text)}</div></details></div>')
    return "".join(parts)


def _predicted(prediction: Prediction) -> str:
    """The same markup in the card's heading and in its answer box."""
    how = f' <span class="how">({visible(prediction.how)})</span>' if prediction.how else ""
    value = "<i>nothing readable</i>"
    if prediction.text is not None:
        value = f'<span class="value">\u201c{visible(prediction.text)}\u201d</span>'
    return f'<span class="predicted">predicted{how}: {value}</span>'


def _trajectory(traj: Trajectory, label: str | None, prediction: Prediction | None) -> str:
    label_key = label or "unlabelled"
    chip = f'<span class="label label-{attribute(label_key)}">{visible(label_key)}</span>' if label else ""
    meta = [f"stop: {traj.stop_reason or '-'}", f"{len(traj.turns)} turns", f"{traj.num_tool_calls} tool calls"]
    if traj.num_failed_calls:
        meta.append(f"{traj.num_failed_calls} failed")
    if traj.prompt_version:
        meta.append(traj.prompt_version)
    heading = f'<h2 title="{attribute(traj.task_id)}">{visible(shorten(traj.task_id, CARD_TITLE_CHARS))}{chip}</h2>'
    parts = [f'<section class="traj" data-label="{attribute(label_key)}"><div class="head">{heading}']
    parts.append(f'<div class="meta">{visible(" · ".join(meta))}</div>')
    if prediction is not None:
        parts.append(f'<div class="meta">{_predicted(prediction)}</div>')
    parts.append(f'</div><div class="question"><b>Question.</b> {visible(traj.question)}</div>')
    if traj.choices:
        parts.append('<div class="question">' + "<br>".join(f"{chr(65 + i)}. {visible(c)}" for i, c in enumerate(traj.choices)) + "</div>")
    parts.extend(_img(data, "input image") for data in traj.images)
    parts.extend(_turn(i, turn, traj.prompt_version) for i, turn in enumerate(traj.turns))
    answer = visible(traj.final_answer) if traj.final_answer is not None else "<i>no answer tag</i>"
    truth = f" &nbsp; <b>Reference:</b> {visible(traj.ground_truth)}" if traj.ground_truth is not None else ""
    graded = _predicted(prediction) if prediction is not None else ""
    parts.append(f'<div class="answer"><b>Answer:</b> <span class="final">{answer}</span>{truth}{graded}</div>')
    if traj.metadata.get("error"):
        parts.append(f'<div class="obs"><pre class="err">{visible(_scrubbed(str(traj.metadata["error"])))}</pre></div>')
    parts.append("</section>")
    return "".join(parts)


def render_html(
    trajectories: Sequence[Trajectory],
    labels: Sequence[str | None] | None = None,
    *,
    title: str = "CodeDance trajectories",
    predictions: Sequence[Prediction | None] | None = None,
) -> str:
    """The page as a string; `labels[i]` (e.g. "correct"/"wrong") tags trajectory i and feeds the filter;
    `predictions[i]` is what a scorer graded for it, shown in its heading and its answer box alike."""
    for name, given in (("labels", labels), ("predictions", predictions)):
        if given is not None and len(given) != len(trajectories):
            raise ValueError(f"{name} has {len(given)} entries for {len(trajectories)} trajectories")
    labels = list(labels) if labels is not None else [None] * len(trajectories)
    predictions = list(predictions) if predictions is not None else [None] * len(trajectories)
    counts = Counter(label or "unlabelled" for label in labels)
    buttons = [f'<button class="on" data-label="all">all ({len(trajectories)})</button>']
    if any(labels):
        buttons += [f'<button data-label="{attribute(name)}">{visible(name)} ({count})</button>' for name, count in sorted(counts.items())]
    body = "".join(_trajectory(*row) for row in zip(trajectories, labels, predictions, strict=True))
    short = shorten(title, TITLE_CHARS)
    label_json = json.dumps(dict(counts)).replace("<", "\\u003c")  # a label cannot close the script element
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">"
        f"<title>{attribute(short)}</title><style>{_CSS}{_FORMATTER.get_style_defs('.code')}</style></head><body>"
        f'<header><h1 title="{attribute(title)}">{visible(short)}</h1><div class="filters">{"".join(buttons)}'
        f'<input id="search" placeholder="search text..."> <span id="shown" class="meta"></span></div></header>'
        f"<main>{body}</main><script>{_SCRIPT}</script>"
        f'<script type="application/json" id="labels">{label_json}</script></body></html>'
    )


def write_html(
    path: Path | str,
    trajectories: Sequence[Trajectory],
    labels: Sequence[str | None] | None = None,
    *,
    title: str = "CodeDance trajectories",
    predictions: Sequence[Prediction | None] | None = None,
) -> Path:
    """Write the page atomically (temp file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(trajectories, labels, title=title, predictions=predictions)
    return atomic_write_text(path, text)  # a normal 0644-under-umask file: a report page is meant to be shared
