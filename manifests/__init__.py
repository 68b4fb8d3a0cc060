"""The Parquet contract between `filmdata` (writes) and `colorizer` (reads)."""

from manifests import layout
from manifests.errors import ManifestError, ManifestNotFoundError, SchemaError
from manifests.io import (
    atomic_path,
    kept_frames,
    load_frames,
    made_with,
    read_frames,
    read_metadata,
    validate_frames,
    write_table,
)
from manifests.schema import FRAME_SCHEMA, SCHEMA_VERSION, SHOT_SCHEMA
from manifests.temps import is_stale_temp, sweep_stale_temps, temp_suffix

__all__ = [
    "FRAME_SCHEMA",
    "SCHEMA_VERSION",
    "SHOT_SCHEMA",
    "ManifestError",
    "ManifestNotFoundError",
    "SchemaError",
    "atomic_path",
    "is_stale_temp",
    "kept_frames",
    "layout",
    "load_frames",
    "made_with",
    "read_frames",
    "read_metadata",
    "sweep_stale_temps",
    "temp_suffix",
    "validate_frames",
    "write_table",
]
