"""The Parquet schemas shared by `filmdata` (writer) and `colorizer` (reader).

One row per sampled frame, kept or rejected: nothing is silently dropped. Bump
`SCHEMA_VERSION` whenever a column is renamed, removed or changes type; adding a
nullable column does not need a bump.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 2  # 2: the shot table's n_candidates is n_sampled

# Parquet key-value metadata keys (values are UTF-8 JSON or plain strings).
META_SCHEMA_VERSION = b"filmcolor.schema_version"
META_TOOL_VERSION = b"filmcolor.tool_version"
META_KIND = b"filmcolor.kind"  # "frames" | "shots" | "dataset"
META_CONFIG = b"filmcolor.config"  # JSON of the settled config that made the file
META_INFO = b"filmcolor.info"  # JSON of facts about the run (decode errors, timings, ...)

STATUS_KEPT = "kept"
STATUS_REJECTED = "rejected"

# The print's fade undone in a shot (docs/corrections.md): the levels (0-255) its black
# and white showed as, and the per-channel power of the fade; one value per channel.
RESTORE_COLUMNS: list[tuple[str, pa.DataType]] = [
    (f"restore_{what}_{channel}", pa.float32())
    for what in ("black", "white", "gamma")
    for channel in "rgb"
]

FRAME_SCHEMA = pa.schema(
    [
        ("frame_id", pa.string()),
        ("film_id", pa.string()),
        ("source_path", pa.string()),
        ("source_kind", pa.string()),  # "film" | "image"
        ("shot_index", pa.int32()),
        ("shot_start_frame", pa.int64()),  # decoded-frame number, inclusive
        ("shot_end_frame", pa.int64()),  # decoded-frame number, exclusive
        ("frame_index", pa.int64()),  # 0-based decoded-frame number
        ("pts_s", pa.float64()),  # presentation time, seconds
        ("image_path", pa.string()),  # relative to the dataset root; null if not written
        ("thumb_path", pa.string()),  # small uncorrected copy (for audits); null if none
        ("width", pa.int32()),  # of the written image, pixels
        ("height", pa.int32()),
        ("mean_luma", pa.float32()),  # BT.601 Y, 0-255, before correction
        ("relative_luma", pa.float32()),  # mean_luma with the film's black at 0, white at 255
        ("colorfulness", pa.float32()),  # Hasler-Suesstrunk, before correction
        ("sharpness", pa.float32()),  # variance of the Laplacian on the analysis frame
        ("phash", pa.uint64()),  # 64-bit perceptual hash, before correction
        *RESTORE_COLUMNS,
        ("wb_gain_r", pa.float32()),  # white-balance gains applied to this frame's shot
        ("wb_gain_g", pa.float32()),
        ("wb_gain_b", pa.float32()),
        ("exposure_gain", pa.float32()),  # exposure correction applied (see docs/corrections.md)
        ("exposure_offset", pa.float32()),
        ("status", pa.string()),  # "kept" | "rejected"
        ("reject_reason", pa.string()),  # null when kept: "dark", "grey", "duplicate", ...
        ("split", pa.string()),  # "train" | "val" | "test"; null until build-dataset
    ]
)

SHOT_SCHEMA = pa.schema(
    [
        ("film_id", pa.string()),
        ("shot_index", pa.int32()),
        ("start_frame", pa.int64()),  # inclusive
        ("end_frame", pa.int64()),  # exclusive
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("transition_in", pa.string()),  # "start" | "cut" | "gradual"
        ("transition_in_start", pa.int64()),  # first mixed frame of the incoming transition
        ("n_sampled", pa.int32()),  # frames sampled from the shot (rows of the frame manifest)
        ("n_kept", pa.int32()),
        ("n_flash", pa.int32()),  # flash frames in the shot (never sampled)
        ("note", pa.string()),  # why the shot gave no kept frame; null when it did
        *RESTORE_COLUMNS,
        ("wb_gain_r", pa.float32()),
        ("wb_gain_g", pa.float32()),
        ("wb_gain_b", pa.float32()),
        ("exposure_gain", pa.float32()),
        ("exposure_offset", pa.float32()),
    ]
)

# Columns a reader may rely on; a manifest lacking any of them is refused.
REQUIRED_FRAME_COLUMNS: tuple[str, ...] = (
    "frame_id",
    "film_id",
    "source_path",
    "source_kind",
    "shot_index",
    "frame_index",
    "image_path",
    "width",
    "height",
    "status",
    "reject_reason",
    "split",
)
