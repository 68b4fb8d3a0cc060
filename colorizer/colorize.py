"""Colorize images and films with a trained checkpoint (`python cli.py colorize`).

The grey content is never altered: every output pixel keeps the input's own full-resolution
L (CIE Lab lightness); only ab comes from the network. The network sees the image resized so
that its shorter side is ``work_size`` (never upscaled; both sides rounded to multiples of 8)
and predicts ab at 1/4 of that; ab is decoded with the annealed mean at ``temperature``,
upsampled bilinearly to the full resolution and joined with the original L. Lab -> sRGB runs
in float32 outside autocast, with a gamut mapping that shrinks the chroma of out-of-gamut
pixels (never their lightness) so that clipping to [0, 1] cannot change L.

Inputs are image files, film files, or folders of them (not recursive). Outputs:
``OUT/<stem>_color.png`` (``.jpg`` with ``image_format="jpg"``) and
``OUT/<stem>_color.mp4`` (``.mkv`` when the source audio cannot go into MP4); every file is
written to a temporary name beside the target and renamed at the end, so an interrupted run
leaves no half-written output under the final name. Film specifics: `colorizer.colorize_film`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from colorizer.bins import DEFAULT_TEMPERATURE, annealed_mean
from colorizer.checkpoint import DEFAULT_WORK_SIZE, decode_settings, load_model
from colorizer.errors import ColorizerError, ConfigError, InputError
from colorizer.fields import check_fields
from colorizer.lab import _EPS, _F_EPS, _KAPPA, _WHITE_D65, _XYZ_FROM_RGB
from colorizer.model import ColorizationNet, ModelConfig
from colorizer.outputs import ensure_writable_folder, sweep_stale_temps, write_bytes

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
FILM_SUFFIXES = frozenset(
    {".mp4", ".mkv", ".mov", ".avi", ".mpg", ".mpeg", ".m4v", ".webm", ".ts", ".mts", ".m2ts",
     ".wmv", ".flv", ".ogv", ".vob", ".mxf", ".dv", ".3gp"}
)
_GAMUT_TOL = 1e-4  # sRGB values this far outside [0, 1] count as in gamut (float32 noise)
_GAMUT_STEPS = 8  # bisection steps of the chroma scale: 1/256 of the predicted chroma


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
    smooth_s: float = 0.0  # time constant of the ab EMA within a shot, seconds; 0 = off
    cut_threshold: float = 20.0  # ContentDetector (luma) score that resets the EMA

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


@dataclass
class ColorizeResult:
    """One input's outcome: `output` is None and `error` says why when it failed."""

    source: Path
    kind: str  # image or film
    output: Path | None = None
    error: str | None = None
    cause: Exception | None = None  # the exception behind `error` (an OSError: disk full, ...)
    warnings: list[str] = field(default_factory=list)  # written, but not all of it (damage)
    frames: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # film: decode/model/encode, s


# --------------------------------------------------------------------------- the predictor


def work_shape(height: int, width: int, work_size: int) -> tuple[int, int]:
    """Network input size for a (height, width) image: shorter side ``work_size`` (never
    upscaled), aspect kept, both sides rounded to multiples of 8 (at least 8)."""
    scale = min(1.0, work_size / min(height, width))
    return (max(8, round(height * scale / 8) * 8), max(8, round(width * scale / 8) * 8))


def _lab_to_linear(
    L: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lab -> linear sRGB (unclipped), any shape, float32: the formulas of `colorizer.lab`
    (D65, scikit-image's constants, negative Z clamped) without the final gamma."""
    fy = (L + 16.0) / 116.0
    f = (fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0.0))
    xyz = [
        torch.where(fc > _F_EPS, fc * fc * fc, (fc - 16.0 / 116.0) / _KAPPA) * white
        for fc, white in zip(f, _WHITE_D65, strict=True)
    ]
    m = _rgb_from_xyz()
    return tuple(  # type: ignore[return-value]
        m[i][0] * xyz[0] + m[i][1] * xyz[1] + m[i][2] * xyz[2] for i in range(3)
    )


@lru_cache(maxsize=1)
def _rgb_from_xyz() -> tuple[tuple[float, ...], ...]:
    inv = np.linalg.inv(np.array(_XYZ_FROM_RGB, dtype=np.float64))
    return tuple(tuple(float(v) for v in row) for row in inv)


def _outside(rgb: tuple[torch.Tensor, ...]) -> torch.Tensor:
    bad = torch.zeros_like(rgb[0], dtype=torch.bool)
    for c in rgb:
        bad |= (c < -_GAMUT_TOL) | (c > 1 + _GAMUT_TOL)
    return bad


def linear_in_gamut(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> linear sRGB float32 (B, 3, H, W) in [0, 1], L kept.

    Pixels whose Lab lies outside the sRGB gamut get their ab scaled down (same hue, less
    chroma; bisection on the scale) until they fit, instead of clipping RGB, which would
    change their lightness. ab = 0 is always in gamut for L in [0, 100].
    """
    with torch.autocast(device_type=L.device.type, enabled=False):
        L, a, b = L.float()[:, 0], ab.float()[:, 0], ab.float()[:, 1]
        rgb = _lab_to_linear(L, a, b)
        bad = _outside(rgb)
        if bool(bad.any()):
            where = bad.nonzero(as_tuple=True)
            Lb, ab_, bb = L[where], a[where], b[where]
            lo, hi = torch.zeros_like(Lb), torch.ones_like(Lb)
            for _ in range(_GAMUT_STEPS):
                mid = (lo + hi) / 2
                ok = ~_outside(_lab_to_linear(Lb, ab_ * mid, bb * mid))
                lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
            fixed = _lab_to_linear(Lb, ab_ * lo, bb * lo)
            rgb = tuple(c.index_put(where, f) for c, f in zip(rgb, fixed, strict=True))
        return torch.stack(rgb, 1).clamp_(0.0, 1.0)


def lab_to_rgb_in_gamut(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> sRGB float32 (B, 3, H, W) in [0, 1] with L kept
    (the gamut mapping of `linear_in_gamut`, then the sRGB gamma)."""
    lin = linear_in_gamut(L, ab)
    return torch.where(
        lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * lin
    )


@lru_cache(maxsize=4)
def _gamma_lut(device: torch.device) -> torch.Tensor:
    """uint8 sRGB of linear values k / 65535, k = 0..65535 (rounded, computed in float64)."""
    lin = np.arange(65536, dtype=np.float64) / 65535.0
    srgb = np.where(lin > 0.0031308, 1.055 * lin ** (1 / 2.4) - 0.055, 12.92 * lin)
    return torch.from_numpy(np.round(srgb * 255.0).astype(np.uint8)).to(device)


@lru_cache(maxsize=4)
def _linear_lut(device: torch.device) -> torch.Tensor:
    """Linear value of each uint8 sRGB level (float32, computed in float64)."""
    v = np.arange(256, dtype=np.float64) / 255.0
    lin = np.where(v > 0.04045, ((v + 0.055) / 1.055) ** 2.4, v / 12.92)
    return torch.from_numpy(lin.astype(np.float32)).to(device)


def lab_to_srgb_u8(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> uint8 sRGB (B, H, W, 3), gamut-mapped (L kept);
    the gamma by a 65536-entry table on the linear value (exact to the rounding)."""
    lin = linear_in_gamut(L, ab)  # (B, 3, H, W)
    index = lin.permute(0, 2, 3, 1).mul_(65535.0).round_().long()
    return _gamma_lut(lin.device)[index]


def _y_to_L(y: torch.Tensor) -> torch.Tensor:
    f = torch.where(y > _EPS, y.clamp_min(_EPS) ** (1.0 / 3.0), _KAPPA * y + 16.0 / 116.0)
    return 116.0 * f - 16.0


def rgb_u8_to_L(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (B, H, W, 3) -> L (B, 1, H, W) float32 in [0, 100] (as `colorizer.lab`)."""
    lin = _linear_lut(rgb.device)[rgb.long()]  # (B, H, W, 3)
    w = _XYZ_FROM_RGB[1]
    y = lin[..., 0] * w[0] + lin[..., 1] * w[1] + lin[..., 2] * w[2]
    return _y_to_L(y)[:, None]


@torch.no_grad()
def _grey_lut(device: torch.device) -> torch.Tensor:
    """L of each grey level 0..255 (R = G = B)."""
    return _y_to_L(_linear_lut(device) * sum(_XYZ_FROM_RGB[1]))


class Colorizer:
    """A loaded network and how to run it: L at full resolution in, ab or RGB out.

    On CUDA the network runs in bf16 autocast with channels_last; on CPU in float32.
    """

    def __init__(
        self,
        model: ColorizationNet,
        model_config: ModelConfig,
        device: torch.device,
        temperature: float = DEFAULT_TEMPERATURE,
        work_size: int = DEFAULT_WORK_SIZE,
    ) -> None:
        self.model = model.to(device).eval()
        self.model_config = model_config
        self.device = device
        self.temperature = temperature
        self.work_size = work_size
        self.cuda = device.type == "cuda"
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._lut: torch.Tensor | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: Path | str,
        device: str = "auto",
        *,
        arch: str | None = None,
        temperature: float | None = None,
        work_size: int | None = None,
    ) -> Colorizer:
        """The checkpoint's network, decoding at its own temperature and working size
        (`checkpoint.decode_settings`) unless `temperature` / `work_size` are given."""
        from colorizer.vgg_finetune import resolve_device

        dev = resolve_device(device)
        model, cfg, payload = load_model(path, dev, expect_arch=arch)
        own_temperature, own_size = decode_settings(payload)
        return cls(
            model, cfg, dev,
            temperature=own_temperature if temperature is None else temperature,
            work_size=own_size if work_size is None else work_size,
        )

    def grey_to_L(self, grey: torch.Tensor) -> torch.Tensor:
        """uint8 grey (B, H, W) -> L (B, 1, H, W): exact, by a 256-entry table."""
        if self._lut is None:
            self._lut = _grey_lut(self.device)
        return self._lut[grey.to(self.device).long()][:, None]

    @torch.no_grad()
    def logits(self, L_work: torch.Tensor) -> torch.Tensor:
        """L (B, 1, h, w) at working size (multiples of 8) -> (B, 313, h/4, w/4) float32."""
        x = L_work.to(self.device, torch.float32)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return self.model(x).float()
        return self.model(x)

    def to_work(self, L: torch.Tensor) -> torch.Tensor:
        """Full-resolution L (B, 1, H, W) -> the network's input size (bilinear, antialiased)."""
        h, w = work_shape(L.shape[-2], L.shape[-1], self.work_size)
        if (h, w) == tuple(L.shape[-2:]):
            return L
        return F.interpolate(L, size=(h, w), mode="bilinear", align_corners=False, antialias=True)

    @torch.no_grad()
    def predict_ab(self, L: torch.Tensor) -> torch.Tensor:
        """Full-resolution L (B, 1, H, W) -> ab (B, 2, h/4, w/4) at 1/4 of the working size."""
        return annealed_mean(self.logits(self.to_work(L.to(self.device))), self.temperature)

    @torch.no_grad()
    def compose(self, L: torch.Tensor, ab_low: torch.Tensor) -> torch.Tensor:
        """L (B, 1, H, W) + low-res ab -> uint8 RGB (B, H, W, 3) on the CPU; L kept."""
        L = L.to(self.device, torch.float32)
        ab = F.interpolate(ab_low.float(), size=L.shape[-2:], mode="bilinear",
                           align_corners=False)
        return lab_to_srgb_u8(L, ab).cpu()

    def colorize_rgb(self, rgb: np.ndarray) -> np.ndarray:
        """One uint8 image, (H, W) grey or (H, W, 3) RGB -> (H, W, 3) uint8 colour RGB."""
        if rgb.ndim == 2:
            L = self.grey_to_L(torch.from_numpy(rgb)[None])
        else:
            L = rgb_u8_to_L(torch.from_numpy(np.ascontiguousarray(rgb))[None].to(self.device))
        return self.compose(L, self.predict_ab(L))[0].numpy()


# --------------------------------------------------------------------------- inputs


def expand_inputs(inputs: Iterable[Path | str]) -> list[tuple[Path, str]]:
    """(path, kind) for each input: files as given, folders as their image and film files
    (sorted, not recursive). kind: image, film, or unknown (decided when opened).
    A missing path is kept as ``missing`` so that it fails with its own error line."""
    found: list[tuple[Path, str]] = []
    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and _kind(p) != "unknown")
            if not files:
                found.append((path, "empty"))
            found.extend((p, _kind(p)) for p in files)
        elif path.exists():
            found.append((path, _kind(path)))
        else:
            found.append((path, "missing"))
    return found


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in FILM_SUFFIXES:
        return "film"
    return "unknown"


def read_image(path: Path) -> np.ndarray:
    """(H, W) uint8 for grey files, (H, W, 3) uint8 RGB for colour ones (alpha dropped);
    16-bit images are reduced to 8 bits."""
    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else None
    img = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data is not None and data.size else None
    if img is None:
        raise InputError(
            f"cannot read image {path}: missing, damaged or not an image file; give a PNG, "
            "JPEG, TIFF, BMP or WebP image"
        )
    if img.dtype == np.uint16:
        img = (img / 257.0).round().astype(np.uint8)
    elif img.dtype != np.uint8:
        raise InputError(f"{path}: {img.dtype} images are not supported; save it as 8-bit")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 3:
        code = cv2.COLOR_BGRA2RGB if img.shape[2] == 4 else cv2.COLOR_BGR2RGB
        img = cv2.cvtColor(img, code)
        if _is_grey(img):
            img = np.ascontiguousarray(img[:, :, 0])
    return img


def _is_grey(rgb: np.ndarray) -> bool:
    return bool((rgb[:, :, 0] == rgb[:, :, 1]).all() and (rgb[:, :, 1] == rgb[:, :, 2]).all())


def output_path(out: Path, source: Path, suffix: str, taken: set[Path]) -> Path:
    """OUT/<stem>_color<suffix>; a second input of the same stem in one run gets its own
    extension in the name (<stem>_<ext>_color<suffix>) instead of overwriting the first."""
    target = out / f"{source.stem}_color{suffix}"
    if target in taken:
        target = out / f"{source.stem}_{source.suffix.lstrip('.').lower()}_color{suffix}"
    taken.add(target)
    return target


def write_image(rgb: np.ndarray, target: Path, jpeg_quality: int = 95) -> None:
    """Write uint8 RGB atomically (`colorizer.outputs.atomic_output`)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if target.suffix == ".jpg" else []
    ok, buf = cv2.imencode(target.suffix, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise InputError(f"OpenCV could not encode {target.name}")
    write_bytes(target, buf.tobytes())


# --------------------------------------------------------------------------- entry point


def colorize_image(colorizer: Colorizer, source: Path, target: Path, jpeg_quality: int = 95
                   ) -> Path:
    img = read_image(source)
    write_image(colorizer.colorize_rgb(img), target, jpeg_quality)
    return target


def colorize_paths(
    inputs: Iterable[Path | str], cfg: ColorizeConfig, colorizer: Colorizer | None = None
) -> Iterator[ColorizeResult]:
    """Colorize every input, yielding one result per input as it finishes.

    The checkpoint is loaded once (its errors are raised: nothing can be done without it);
    then ``cfg.out`` is created and test-written, and the temporary files that killed runs
    left in it are swept (`colorizer.outputs`); an unwritable folder raises OSError.
    A bad input, or an output that cannot be written (a full disk), gives a result with
    ``error`` (and ``cause``) set and the others go on. KeyboardInterrupt propagates after
    the current output's temporary file has been removed.
    """
    import time

    if colorizer is None:
        colorizer = Colorizer.from_checkpoint(
            cfg.checkpoint, cfg.device, arch=cfg.arch, temperature=cfg.temperature,
            work_size=cfg.work_size,
        )
    ensure_writable_folder(cfg.out)  # an unwritable --out: one error before any work
    removed = sweep_stale_temps(cfg.out)
    if removed:
        log.info("%s: removed %d temporary file(s) left by an interrupted run", cfg.out,
                 len(removed))
    taken: set[Path] = set()
    for source, kind in expand_inputs(inputs):
        t0 = time.perf_counter()
        result = ColorizeResult(source, kind)
        try:
            _colorize_one(colorizer, source, kind, cfg, taken, result)
        except ColorizerError as exc:
            result.error, result.cause = str(exc), exc
        except OSError as exc:  # this input's output could not be written (disk full, ...)
            where = f" ({exc.filename})" if exc.filename else ""
            result.error, result.cause = f"{source}: {exc.strerror or exc}{where}", exc
        result.seconds = time.perf_counter() - t0
        yield result


def _colorize_one(colorizer: Colorizer, source: Path, kind: str, cfg: ColorizeConfig,
                  taken: set[Path], result: ColorizeResult) -> None:
    """Colorize one input into `result` (its output, frames, timings, warnings)."""
    from colorizer.colorize_film import colorize_film
    if kind == "missing":
        raise InputError(f"{source}: no such file or folder")
    if kind == "empty":
        raise InputError(f"{source}: folder holds no image or film files")
    if kind == "unknown":
        kind = result.kind = _sniff(source)
    if kind == "image":
        suffix = ".jpg" if cfg.image_format == "jpg" else ".png"
        target = output_path(cfg.out, source, suffix, taken)
        result.output = colorize_image(colorizer, source, target, cfg.jpeg_quality)
        result.frames = 1
        return
    film = colorize_film(colorizer, source, cfg, taken=taken)
    result.output, result.frames = film.output, film.frames
    result.timings = film.timings
    result.warnings.extend(film.warnings())


def _sniff(path: Path) -> str:
    """image or film for a file whose extension says neither (OpenCV, then PyAV, decide)."""
    try:
        read_image(path)
    except InputError:
        return "film"  # colorize_film says clearly if it is no video either
    return "image"
