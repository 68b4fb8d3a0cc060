"""The settled configuration of one extraction: one frozen dataclass per stage.

The CLI builds an `ExtractConfig`; it is saved in every manifest's metadata, and its
fingerprint decides whether a rerun can skip a film that is already done.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from filmdata.correct import CorrectionConfig
from filmdata.decode import DecodeConfig
from filmdata.errors import ConfigError
from filmdata.filters import FilterConfig
from filmdata.profile import ProfileConfig
from filmdata.sampling import SampleConfig
from filmdata.shots import ShotConfig
from filmdata.validate import check_fields

IMAGE_FORMATS = ("jpg", "png")


def settings_fingerprint(settings: Mapping[str, Any]) -> str:
    """Short, stable hash of a settings dict (a dataclass's asdict)."""
    blob = json.dumps(settings, sort_keys=True, default=str).encode()
    return hashlib.blake2b(blob, digest_size=8).hexdigest()


@dataclass(frozen=True)
class OutputConfig:
    image_format: str = "jpg"  # "jpg" | "png"
    jpeg_quality: int = 95  # 1-100
    max_side: int | None = None  # pixels; longer side is resized down to this
    write_rejected: bool = False  # also write rejected frames (uncorrected), for audits
    thumbnails: bool = True  # write a 256-wide uncorrected copy of every sampled frame

    def __post_init__(self) -> None:
        check_fields(self, {"image_format": "--format", "jpeg_quality": "--quality",
                            "max_side": "--max-side", "write_rejected": "--write-rejected"})
        if self.image_format not in IMAGE_FORMATS:
            raise ConfigError(f"image format {self.image_format!r}: choose one of {IMAGE_FORMATS}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ConfigError(f"JPEG quality {self.jpeg_quality}: give 1-100")
        if self.max_side is not None and self.max_side < 16:
            raise ConfigError(f"--max-side {self.max_side}: give at least 16 pixels")


@dataclass(frozen=True)
class ExtractConfig:
    decode: DecodeConfig = field(default_factory=DecodeConfig)
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    shots: ShotConfig = field(default_factory=ShotConfig)
    sample: SampleConfig = field(default_factory=SampleConfig)
    correct: CorrectionConfig = field(default_factory=CorrectionConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        check_fields(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Short hash of everything that changes the output (decode threading does not)."""
        settings = self.to_dict()
        for threading_setting in ("thread_type", "threads"):
            settings["decode"].pop(threading_setting, None)
        return settings_fingerprint(settings)
