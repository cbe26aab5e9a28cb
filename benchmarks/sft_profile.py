"""A torch.profiler window over a few optimizer steps of `swift sft`: where a step's time goes (issue 20).

MFU alone says the GPU is idle; it does not say why. Loaded by benchmarks/sft_probe.py inside `swift sft` when
CODEDANCE_PROFILE_STEPS="W:N" is set, this profiles optimizer steps W+1 .. W+N and writes OUTPUT_DIR/profile.json
and profile.md:

- the GPU's busy share: kernel time over the window's wall time (low means the host, not the GPU, sets the pace:
  kernel launches, Python, waits on `.item()` / `.tolist()`);
- kernel and host time of the vision tower's forward, the LLM's forward, the whole model forward and the optimizer
  step (forward hooks open a `record_function` range around each module; the backward pass is the rest);
- per step: attention calls, host-device synchronisations and kernel launches;
- the top operators by kernel time (by host time on a CPU-only run).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from codedance_cli.common.atomic import atomic_write_text

PROFILE_STEPS = "CODEDANCE_PROFILE_STEPS"  # "W:N": skip W optimizer steps, profile the next N
PROFILE_JSON = "profile.json"
RANGES = {  # our range name -> the module it wraps (suffix of its name in model.named_modules(); "" is the model)
    "codedance::vit_forward": "visual",
    "codedance::llm_forward": "language_model",
    "codedance::model_forward": "",
}
ATTENTION_OPS = ("aten::scaled_dot_product_attention", "torch_attn::_varlen_attn", "aten::_flash_attention_forward")
SYNC_OPS = ("aten::_local_scalar_dense", "cudaStreamSynchronize", "cudaDeviceSynchronize")
LAUNCH_OPS = ("cudaLaunchKernel", "cuLaunchKernel", "cudaLaunchKernelExC", "cuLaunchKernelEx")
OPTIMIZER_PREFIX = "Optimizer.step#"
TOP = 15


def parse_window(text: str) -> tuple[int, int]:
    """"W:N" -> (W, N); a clear error for anything else."""
    skip, _, steps = text.partition(":")
    if not (skip.isdigit() and steps.isdigit() and int(steps) > 0):
        raise ValueError(f"{PROFILE_STEPS}={text!r}: expected 'W:N' (skip W steps, profile N > 0)")
    return int(skip), int(steps)


def _find_module(model: torch.nn.Module, suffix: str) -> torch.nn.Module | None:
    if not suffix:
        return model
    return next((module for name, module in model.named_modules() if name == suffix or name.endswith("." + suffix)), None)


class _Range:
    """A `record_function` range opened by a module's forward pre-hook and closed by its forward hook."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.open: list[record_function] = []

    def enter(self, *_: Any) -> None:
        context = record_function(self.name)
        context.__enter__()
        self.open.append(context)

    def exit(self, *_: Any) -> None:
        if self.open:
            self.open.pop().__exit__(None, None, None)


class StepProfiler:
    """Profiles optimizer steps skip+1 .. skip+steps; `on_step` is called as each step begins."""

    def __init__(self, skip: int, steps: int, out_dir: Path) -> None:
        self.skip, self.steps, self.out_dir = skip, steps, out_dir
        self.profiler: profile | None = None
        self.hooks: list[Any] = []
        self.started = 0.0
        self.done = False

    def on_step(self, step: int, model: torch.nn.Module) -> None:
        if self.done:
            return
        if step == self.skip + 1 and self.profiler is None:
            self.start(model)
        elif step == self.skip + self.steps + 1 and self.profiler is not None:
            self.stop()

    def start(self, model: torch.nn.Module) -> None:
        for name, suffix in RANGES.items():
            module = _find_module(model, suffix)
            if module is not None:
                span = _Range(name)
                self.hooks += [module.register_forward_pre_hook(span.enter), module.register_forward_hook(span.exit)]
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
        self.profiler = profile(activities=activities)
        _synchronize()
        self.profiler.__enter__()
        self.started = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        assert self.profiler is not None
        _synchronize()
        wall = time.perf_counter() - self.started
        self.profiler.__exit__(None, None, None)
        for hook in self.hooks:
            hook.remove()
        self.done = True
        summary = summarize(self.profiler.key_averages(), wall, self.steps, device=torch.cuda.is_available())
        write_summary(summary, self.out_dir)
        return summary


def _synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _host(event: Any) -> bool:
    return getattr(event, "device_type", torch.autograd.DeviceType.CPU) == torch.autograd.DeviceType.CPU


def _self_device_us(event: Any) -> float:
    return float(getattr(event, "self_device_time_total", getattr(event, "self_cuda_time_total", 0.0)) or 0.0)


def _device_us(event: Any) -> float:
    return float(getattr(event, "device_time_total", getattr(event, "cuda_time_total", 0.0)) or 0.0)


def summarize(averages: Any, wall_s: float, steps: int, *, device: bool) -> dict[str, Any]:
    """The profile's numbers, per step where a count is concerned (`averages`: `profiler.key_averages()`)."""
    events = list(averages)
    by_key: dict[str, Any] = {}
    for event in events:  # a range may appear twice (host and GPU-side annotation): keep the host one
        if event.key not in by_key or _host(event):
            by_key[event.key] = event
    # kernel time once: the device-side events themselves (a host op's self device time is the same kernels again,
    # and a range's GPU-side annotation spans its kernels)
    kernel_s = sum(_self_device_us(event) for event in events if not _host(event)
                   and not getattr(event, "is_user_annotation", False)) / 1e6
    ranges = {}
    optimizer = [event for key, event in by_key.items() if key.startswith(OPTIMIZER_PREFIX)]
    for key, event in [*((name, by_key.get(name)) for name in RANGES), *((e.key, e) for e in optimizer)]:
        if event is not None:
            ranges[key] = {"calls_per_step": event.count / steps, "kernel_s_per_step": _device_us(event) / 1e6 / steps,
                           "host_s_per_step": event.cpu_time_total / 1e6 / steps}

    def per_step(names: tuple[str, ...]) -> float:
        return sum(by_key[name].count for name in names if name in by_key) / steps

    order = (lambda e: _self_device_us(e)) if device else (lambda e: e.self_cpu_time_total)
    # host-side operators, each with the kernels it launched itself
    top = sorted((e for e in by_key.values() if _host(e) and not e.key.startswith(("codedance::", "ProfilerStep"))),
                 key=order, reverse=True)
    return {
        "steps": steps, "wall_s_per_step": wall_s / steps, "device": device,
        "kernel_s_per_step": kernel_s / steps, "gpu_busy_share": kernel_s / wall_s if device and wall_s else None,
        "ranges": ranges,
        "attention_calls_per_step": per_step(ATTENTION_OPS),
        "syncs_per_step": per_step(SYNC_OPS),
        "kernel_launches_per_step": per_step(LAUNCH_OPS),
        "top_ops": [{"op": e.key, "calls_per_step": e.count / steps, "kernel_ms_per_step": _self_device_us(e) / 1e3 / steps,
                     "host_ms_per_step": e.self_cpu_time_total / 1e3 / steps} for e in top[:TOP]],
    }


def markdown(summary: dict[str, Any]) -> str:
    """The summary for people: the headline numbers, the ranges, the top operators."""
    busy = summary["gpu_busy_share"]
    lines = [
        f"profiled {summary['steps']} optimizer steps: {summary['wall_s_per_step']:.3f} s wall a step, "
        f"{summary['kernel_s_per_step']:.3f} s of kernels"
        + (f" (GPU busy {100 * busy:.1f} %)" if busy is not None else " (no GPU: host times only)"),
        f"per step: {summary['attention_calls_per_step']:,.0f} attention calls, {summary['syncs_per_step']:,.0f} "
        f"host-device syncs, {summary['kernel_launches_per_step']:,.0f} kernel launches",
        "",
        "| range | calls a step | kernel s a step | host s a step |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {name} | {r['calls_per_step']:g} | {r['kernel_s_per_step']:.3f} | {r['host_s_per_step']:.3f} |"
          for name, r in summary["ranges"].items()),
        "",
        "| op | calls a step | kernel ms a step | host ms a step (self) |",
        "| --- | ---: | ---: | ---: |",
        *(f"| {op['op'][:80]} | {op['calls_per_step']:g} | {op['kernel_ms_per_step']:.2f} | {op['host_ms_per_step']:.2f} |"
          for op in summary["top_ops"]),
    ]
    return "\n".join(lines)


def write_summary(summary: dict[str, Any], out_dir: Path) -> None:
    """profile.json and profile.md, each written whole."""
    atomic_write_text(out_dir / PROFILE_JSON, json.dumps(summary, indent=2) + "\n")
    atomic_write_text(out_dir / "profile.md", markdown(summary) + "\n")
