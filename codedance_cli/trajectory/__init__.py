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
