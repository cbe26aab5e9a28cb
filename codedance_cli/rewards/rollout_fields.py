"""Names of the per-rollout fields our engine plug-ins pass to each other (tool or scheduler -> reward -> trainer)."""

TURNS_FIELD = "codedance_turns"  # ms-swift rollout_infos: each assistant turn's text
OBSERVATIONS_FIELD = "codedance_observations"  # ms-swift rollout_infos: each call's observation as the model saw it
TURN_OFFSETS_FIELD = "codedance_turn_offsets"  # the reward's per-turn advantage offsets, read by the trainer / estimator
