"""Shot detection shared by both halves: `filmdata` (shots of a film to sample) and
`colorizer` (cuts where temporal smoothing and keyframes restart). Depends on numpy,
OpenCV and PySceneDetect only; imports neither half."""

from shotdetect.detector import (
    ANALYSIS_WIDTH,
    DETECTORS,
    MAX_MIN_SHOT_S,
    THRESHOLD_RANGES,
    DetectorSettings,
    Settings,
    ShotDetector,
    Transition,
    analysis_frame,
)
from shotdetect.errors import DetectorError

__all__ = [
    "ANALYSIS_WIDTH",
    "DETECTORS",
    "MAX_MIN_SHOT_S",
    "THRESHOLD_RANGES",
    "DetectorError",
    "DetectorSettings",
    "Settings",
    "ShotDetector",
    "Transition",
    "analysis_frame",
]
