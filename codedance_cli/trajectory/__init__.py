"""The trajectory format: schema and parquet storage."""

from codedance_cli.trajectory.schema import (
    AnswerType,
    Observation,
    StopReason,
    Trajectory,
    Turn,
    decode_image,
    encode_image,
)

__all__ = ["AnswerType", "Observation", "StopReason", "Trajectory", "Turn", "decode_image", "encode_image"]

# The store pulls in `datasets` (about a second to import): load it only when one of its names is used,
# so that `codedance --help` and the sandbox worker's orchestrator stay quick.
_STORE_NAMES = ("TrajectoryWriter", "count_trajectories", "done_task_ids", "iter_trajectories", "read_trajectories", "write_trajectories")
__all__ += list(_STORE_NAMES)


def __getattr__(name: str):
    if name in _STORE_NAMES:
        from codedance_cli.trajectory import store

        return getattr(store, name)
    raise AttributeError(f"module 'codedance_cli.trajectory' has no attribute {name!r}")
