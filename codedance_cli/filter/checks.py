"""Per-trajectory checks: duplicate detection and re-execution of recorded code.

Re-execution replays every code step of a trajectory in a fresh sandbox session and
compares with what was recorded: the same success/failure, the same printed text,
and the same images pixel for pixel. A difference means the code depends on
something other than its inputs (randomness, time, the machine), and a training
example whose observations cannot be reproduced is dropped.
"""

from __future__ import annotations

import hashlib
import io
import re

import numpy as np
from PIL import Image

from codedance_cli.sandbox.base import Sandbox
from codedance_cli.trajectory.schema import Observation, Trajectory

_SPACES = re.compile(r"\s+")
_PUNCT = re.compile(r"[^\w\s]")


def normalise_question(question: str) -> str:
    """Lower case, punctuation and runs of whitespace removed: trivially reworded copies collide."""
    return _SPACES.sub(" ", _PUNCT.sub(" ", question.lower())).strip()


def dedup_key(traj: Trajectory) -> str:
    """Hash of the input images' bytes plus the normalised question."""
    digest = hashlib.sha256()
    for data in traj.images:
        digest.update(hashlib.sha256(data).digest())
    digest.update(normalise_question(traj.question).encode("utf-8"))
    return digest.hexdigest()


def image_fingerprint(data: bytes) -> str:
    """Hash of decoded pixels (mode, size, values): two encoders of the same picture agree."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            rgba = image.convert("RGBA")
            pixels = np.asarray(rgba)
    except Exception:
        return "undecodable:" + hashlib.sha256(data).hexdigest()
    return hashlib.sha256(str(pixels.shape).encode() + pixels.tobytes()).hexdigest()


def _clean(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def observation_difference(recorded: Observation, replayed: Observation) -> str | None:
    """What differs between two runs of the same cell, or None when they agree."""
    if recorded.ok != replayed.ok:
        return f"ok {recorded.ok} -> {replayed.ok} ({replayed.error_type or recorded.error_type})"
    if _clean(recorded.stdout) != _clean(replayed.stdout):
        return "stdout differs"
    if len(recorded.images) != len(replayed.images):
        return f"{len(recorded.images)} -> {len(replayed.images)} images"
    for a, b in zip(recorded.images, replayed.images):
        if a != b and image_fingerprint(a) != image_fingerprint(b):
            return "image pixels differ"
    return None


def recorded_failure(traj: Trajectory) -> bool:
    """Some recorded code step failed (error or timeout)."""
    return any(turn.observation is not None and not turn.observation.ok for turn in traj.turns)


async def reexecute(traj: Trajectory, sandbox: Sandbox) -> str | None:
    """Replay the code steps; None when every step reproduces, else why not ('nondeterministic: step 2: stdout differs')."""
    steps = [turn for turn in traj.turns if turn.code is not None and turn.observation is not None]
    if not steps:
        return None
    async with await sandbox.open_session(traj.images) as session:
        for number, turn in enumerate(steps, 1):
            assert turn.code is not None and turn.observation is not None
            replayed = await session.run(turn.code)
            difference = observation_difference(turn.observation, replayed)
            if difference is not None:
                kind = "reexec_failed" if turn.observation.ok and not replayed.ok else "nondeterministic"
                return f"{kind}: step {number}: {difference}"
    return None
