"""Datasets in and out: import of public formats (CodeDance-SFT/-RL, VQA) into trajectories, exports for the engines.

`importer.import_dataset` (`codedance data import`), `sources.iter_dataref` (any recipe DataRef as trajectories);
`export_swift` / `export_verl` belong to the SFT and RL stages' owners and are wired into `codedance data export`.
"""
