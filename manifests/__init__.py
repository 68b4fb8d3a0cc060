"""The Parquet contract between `filmdata` (writes) and `colorizer` (reads)."""

from manifests import layout
from manifests.errors import ManifestError, ManifestNotFoundError, SchemaError
from manifests.io import (
    atomic_path,
    load_frames,
    made_with,
    read_frames,
    read_metadata,
    validate_frames,
    write_table,
)
from manifests.schema import FRAME_SCHEMA, SCHEMA_VERSION, SHOT_SCHEMA

__all__ = [
    "FRAME_SCHEMA",
    "SCHEMA_VERSION",
    "SHOT_SCHEMA",
    "ManifestError",
    "ManifestNotFoundError",
    "SchemaError",
    "atomic_path",
    "layout",
    "load_frames",
    "made_with",
    "read_frames",
    "read_metadata",
    "validate_frames",
    "write_table",
]
