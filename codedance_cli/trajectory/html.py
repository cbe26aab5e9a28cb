"""One self-contained HTML page for one or many trajectories (infer --html, the eval viewer).

Everything is inline: images as data URLs, Pygments-highlighted code with its CSS,
a few lines of JavaScript to filter by label (correct / wrong / ...) and search
text. The page opens from disk with no network, so it can be attached to a bug
report or copied off a cluster.
"""

from __future__ import annotations

import base64
import html
import json
import os
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

from codedance_cli.trajectory.schema import Observation, Trajectory, Turn

_FORMATTER = HtmlFormatter(style="friendly", cssclass="code")

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #dde;padding:10px 18px;z-index:2}
header h1{font-size:17px;margin:0 0 6px}
.filters button{border:1px solid #bcc;background:#fff;border-radius:12px;padding:2px 10px;margin:0 4px 4px 0;cursor:pointer}
.filters button.on{background:#1d2330;color:#fff}
#search{padding:3px 8px;width:260px;border:1px solid #bcc;border-radius:6px}
main{padding:14px 18px;max-width:1100px}
.traj{background:#fff;border:1px solid #dde;border-radius:8px;margin:0 0 16px;padding:12px 14px}
.traj h2{font-size:15px;margin:0 0 6px}
.label{display:inline-block;border-radius:10px;padding:1px 9px;font-size:12px;margin-left:6px;background:#e5e7eb}
.label-correct{background:#d1fae5;color:#065f46}.label-wrong{background:#fee2e2;color:#991b1b}
.meta{color:#556;font-size:12.5px;margin:2px 0 8px}
.question{white-space:pre-wrap;margin:6px 0}
.turn{border-left:3px solid #c7d2fe;padding:2px 0 2px 10px;margin:10px 0}
.turn h3{font-size:13px;margin:0 0 4px;color:#334}
.reasoning,.raw{white-space:pre-wrap;color:#334}
.obs{background:#f3f4f6;border-radius:6px;padding:6px 9px;margin-top:6px}
.obs pre{white-space:pre-wrap;margin:0;font-size:12.5px}
.obs .err{color:#991b1b}
.answer{background:#ecfdf5;border:1px solid #a7f3d0;border-radius:6px;padding:5px 9px;margin-top:8px}
img{max-width:420px;max-height:420px;border:1px solid #ccd;border-radius:4px;margin:4px 6px 4px 0;vertical-align:top}
.code{border-radius:6px;padding:2px 8px;overflow-x:auto;font-size:12.5px}
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


def _esc(text: str | None) -> str:
    return html.escape(text or "", quote=True)


def _img(data: bytes, alt: str) -> str:
    mime = "image/jpeg" if data.startswith(b"\xff\xd8") else "image/png"
    return f'<img alt="{_esc(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}">'


def _code(code: str) -> str:
    return highlight(code, PythonLexer(), _FORMATTER)


def _reasoning_of(turn: Turn, version: str | None) -> str:
    # Parsing lives in the loop package; import here so `trajectory` stays importable on its own.
    from codedance_cli.loop.parser import parse_turn

    try:
        return parse_turn(turn.text, version or "codedance-v1").reasoning
    except Exception:
        return turn.text


def _observation(obs: Observation) -> str:
    parts = ['<div class="obs"><div><b>Observation</b></div>']
    if obs.stdout.strip():
        parts.append(f"<pre>{_esc(obs.stdout)}</pre>")
    if obs.error_type or obs.timed_out:
        parts.append(f'<pre class="err">{_esc(obs.error_type or "Timeout")}: {_esc(obs.error)}</pre>')
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
    parts = [f'<div class="turn"><h3>Turn {index + 1} <span class="meta">{" · ".join(cost)}</span></h3>']
    reasoning = _reasoning_of(turn, version)
    if reasoning:
        parts.append(f'<div class="reasoning">{_esc(reasoning)}</div>')
    if turn.code is not None:
        parts.append(_code(turn.code))
    if turn.observation is not None:
        parts.append(_observation(turn.observation))
    parts.append(f"<details><summary>raw model output</summary><div class=\"raw\">{_esc(turn.text)}</div></details></div>")
    return "".join(parts)


def _trajectory(traj: Trajectory, label: str | None) -> str:
    label_key = label or "unlabelled"
    chip = f'<span class="label label-{_esc(label_key)}">{_esc(label_key)}</span>' if label else ""
    meta = [f"stop: {traj.stop_reason or '-'}", f"{len(traj.turns)} turns", f"{traj.num_tool_calls} tool calls"]
    if traj.num_failed_calls:
        meta.append(f"{traj.num_failed_calls} failed")
    if traj.prompt_version:
        meta.append(traj.prompt_version)
    parts = [f'<section class="traj" data-label="{_esc(label_key)}"><h2>{_esc(traj.task_id)}{chip}</h2>']
    parts.append(f'<div class="meta">{_esc(" · ".join(meta))}</div>')
    parts.append(f'<div class="question"><b>Question.</b> {_esc(traj.question)}</div>')
    if traj.choices:
        parts.append('<div class="question">' + "<br>".join(f"{chr(65 + i)}. {_esc(c)}" for i, c in enumerate(traj.choices)) + "</div>")
    parts.extend(_img(data, "input image") for data in traj.images)
    parts.extend(_turn(i, turn, traj.prompt_version) for i, turn in enumerate(traj.turns))
    answer = _esc(traj.final_answer) if traj.final_answer is not None else "<i>no answer</i>"
    truth = f" &nbsp; <b>Reference:</b> {_esc(traj.ground_truth)}" if traj.ground_truth is not None else ""
    parts.append(f'<div class="answer"><b>Answer:</b> {answer}{truth}</div>')
    if traj.metadata.get("error"):
        parts.append(f'<div class="obs"><pre class="err">{_esc(str(traj.metadata["error"]))}</pre></div>')
    parts.append("</section>")
    return "".join(parts)


def render_html(
    trajectories: Sequence[Trajectory],
    labels: Sequence[str | None] | None = None,
    *,
    title: str = "CodeDance trajectories",
) -> str:
    """The page as a string; `labels[i]` (e.g. "correct"/"wrong") tags trajectory i and feeds the filter."""
    if labels is not None and len(labels) != len(trajectories):
        raise ValueError(f"labels has {len(labels)} entries for {len(trajectories)} trajectories")
    labels = list(labels) if labels is not None else [None] * len(trajectories)
    counts = Counter(label or "unlabelled" for label in labels)
    buttons = [f'<button class="on" data-label="all">all ({len(trajectories)})</button>']
    if any(labels):
        buttons += [f'<button data-label="{_esc(name)}">{_esc(name)} ({count})</button>' for name, count in sorted(counts.items())]
    body = "".join(_trajectory(traj, label) for traj, label in zip(trajectories, labels, strict=True))
    return (
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\">"
        f"<title>{_esc(title)}</title><style>{_CSS}{_FORMATTER.get_style_defs('.code')}</style></head><body>"
        f'<header><h1>{_esc(title)}</h1><div class="filters">{"".join(buttons)}'
        f'<input id="search" placeholder="search text..."> <span id="shown" class="meta"></span></div></header>'
        f"<main>{body}</main><script>{_SCRIPT}</script>"
        f'<script type="application/json" id="labels">{json.dumps(dict(counts))}</script></body></html>'
    )


def write_html(
    path: Path | str,
    trajectories: Sequence[Trajectory],
    labels: Sequence[str | None] | None = None,
    *,
    title: str = "CodeDance trajectories",
) -> Path:
    """Write the page atomically (temp file + rename); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_html(trajectories, labels, title=title)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temp, 0o644)  # mkstemp makes 0600; a report page is meant to be shared
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path
