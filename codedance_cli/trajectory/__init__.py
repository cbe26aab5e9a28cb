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

from codedance_cli.trajectory.store import (  # noqa: E402  (after the schema it stores)
    TrajectoryWriter,
    count_trajectories,
    done_task_ids,
    iter_trajectories,
    read_trajectories,
    write_trajectories,
)

__all__ += ["TrajectoryWriter", "count_trajectories", "done_task_ids", "iter_trajectories", "read_trajectories", "write_trajectories"]
