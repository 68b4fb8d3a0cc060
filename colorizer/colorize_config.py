"""What `colorize` is asked to do, settled once: the frozen `ColorizeConfig`.

Its own module so that the image dispatcher (`colorizer.colorize`) and the film transcoder
(`colorizer.colorize_film`) both read it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from colorizer.errors import ConfigError
from colorizer.fields import check_fields
from colorizer.temporal import keyframe_interval

SMOOTH_METHODS = ("flow", "ema")
# Smoothing on by default: on bench/bench_temporal.py's films (4 real clips, 1 synthetic),
# flow smoothing at 0.3 s on top of the default keyframes takes the warping error from
# 0.75x to 0.47x of per-frame colorization, PSNR from +0.02 to +0.20 dB, at the same speed
# (docs/colorize.md).
DEFAULT_SMOOTH_S = 0.3


@dataclass(frozen=True)
class ColorizeConfig:
    """Everything `colorize` needs besides the inputs. Films use the last group of fields."""

    checkpoint: Path
    out: Path
    temperature: float | None = None  # annealed mean: 1 = mean, -> 0 = mode; None: the
    #   checkpoint's own (0.5 for trained ones, 1.0 for Zhang et al.'s released weights)
    work_size: int | None = None  # shorter side of the network input, pixels; None: the
    #   scale the checkpoint was trained at (256 by default)
    batch_size: int = 8  # frames (or images' tiles) through the network at once
    device: str = "auto"  # auto, cpu, cuda, cuda:N
    arch: str | None = None  # refuse a checkpoint of another architecture
    image_format: str = "png"  # png or jpg
    jpeg_quality: int = 95
    quiet: bool = False
    # films
    crf: int = 18  # libx264 quality: lower is better and bigger (0 lossless, 18 ~ transparent)
    preset: str = "veryfast"  # libx264 speed/size trade-off
    start_s: float | None = None  # colorize [start_s, end_s) only
    end_s: float | None = None
    keyframes: str = "auto"  # network on every N-th frame of a shot ("N"), the rest carried
    #   by optical flow from both neighbouring keyframes; "off": every frame; "auto": the
    #   measured default interval (`colorizer.temporal.DEFAULT_KEYFRAME_INTERVAL`)
    smooth_s: float = DEFAULT_SMOOTH_S  # time constant of the smoothing of ab within a
    #   shot, s; 0 = off
    smooth_method: str = "flow"  # flow: motion-compensated (warped by optical flow,
    #   trusted pixels only); ema: the plain moving average (colour trails motion)
    cut_threshold: float | None = None  # score of the shared shot detector's cut
    #   proposals (`shotdetect`, method "film", 0-255); None: its tuned default

    def __post_init__(self) -> None:
        check_fields(self)  # every value of its declared type; numbers finite (no nan)
        if self.temperature is not None and self.temperature < 0:
            raise ConfigError(f"--temperature must be >= 0, got {self.temperature}",
                              key="temperature")
        if self.work_size is not None and self.work_size < 16:
            raise ConfigError(f"--work-size must be >= 16 pixels, got {self.work_size}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.image_format not in ("png", "jpg"):
            raise ConfigError(f"image format must be png or jpg, got {self.image_format!r}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"--crf must be in 0..51, got {self.crf}")
        if self.start_s is not None and self.start_s < 0:
            raise ConfigError(f"--start must be >= 0 seconds, got {self.start_s}")
        if self.start_s is not None and self.end_s is not None and self.end_s <= self.start_s:
            raise ConfigError(f"--end ({self.end_s}) must be after --start ({self.start_s})")
        if self.smooth_s < 0:
            raise ConfigError(f"--smooth must be >= 0 seconds, got {self.smooth_s}")
        if self.smooth_method not in SMOOTH_METHODS:
            raise ConfigError(f"--smooth-method must be one of {', '.join(SMOOTH_METHODS)}, "
                              f"got {self.smooth_method!r}", key="smooth_method")
        if self.cut_threshold is not None and not 0 <= self.cut_threshold <= 255:
            raise ConfigError(f"--cut-threshold must be in 0..255, got {self.cut_threshold}",
                              key="cut_threshold")
        keyframe_interval(self.keyframes)  # auto, off or a whole number >= 1

    @property
    def keyframe_interval(self) -> int:
        """Frames from one keyframe to the next within a shot (1: every frame)."""
        return keyframe_interval(self.keyframes)
