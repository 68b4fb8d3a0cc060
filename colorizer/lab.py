"""sRGB <-> CIE Lab in torch (D65 white, 2-degree observer, sRGB gamma).

Same constants and piecewise functions as scikit-image's ``rgb2lab`` / ``lab2rgb``, so the
two agree to float32 rounding. Channels are on dim -3: ``(3, H, W)`` or ``(B, 3, H, W)``.
Every conversion runs in float32 with autocast disabled, whatever the caller's context.

The uint8 edges used by colorize live here too: L of 8-bit grey or RGB pixels (exact, by
tables), and Lab -> 8-bit sRGB with a gamut mapping that shrinks the chroma of out-of-gamut
pixels (never their lightness), so that clipping to [0, 1] cannot change L. On CPU tensors
the latter runs in numpy, the same float32 operations in the same order (the same bytes),
several times faster than the torch code, which other devices run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import cv2
import numpy as np
import torch

from colorizer.errors import InputError

# Linear sRGB -> XYZ (rows X, Y, Z), as in scikit-image.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_WHITE_D65 = (0.95047, 1.0, 1.08883)  # XYZ of the reference white, Y = 1
_EPS = 0.008856  # Lab f(t) switches from cube root to linear below this t
_KAPPA = 7.787  # slope of the linear part of f(t)
_F_EPS = 0.2068966  # f(_EPS): inverse switch point


def _check_channels(x: torch.Tensor, name: str) -> None:
    if x.dim() < 3 or x.shape[-3] != 3:
        raise InputError(
            f"{name} must have 3 channels on dim -3, e.g. (B, 3, H, W); got {tuple(x.shape)}"
        )


def _mix(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """Apply a 3x3 colour matrix over the channel dim -3 of x."""
    return torch.einsum("ij,...jhw->...ihw", matrix, x)


@lru_cache(maxsize=8)
def _constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """(xyz_from_rgb (3, 3), white (3, 1, 1)) in float32 on device, made once per device."""
    m = torch.tensor(_XYZ_FROM_RGB, dtype=torch.float32, device=device)
    white = torch.tensor(_WHITE_D65, dtype=torch.float32, device=device).view(3, 1, 1)
    return m, white


def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """Gamma-encoded sRGB in [0, 1] -> linear sRGB (the inverse sRGB transfer curve)."""
    return torch.where(x > 0.04045, ((x.clamp_min(0.04045) + 0.055) / 1.055) ** 2.4, x / 12.92)


def _f(t: torch.Tensor) -> torch.Tensor:
    """Lab's f(t): cube root above _EPS, linear below."""
    return torch.where(t > _EPS, t.clamp_min(_EPS) ** (1.0 / 3.0), _KAPPA * t + 16.0 / 116.0)


def luminance_to_L(y: torch.Tensor) -> torch.Tensor:
    """Relative luminance Y (white = 1) -> L in [0, 100]."""
    return 116.0 * _f(y) - 16.0


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1] (..., 3, H, W) -> Lab float32 (..., 3, H, W): L in [0, 100], ab ~±110."""
    _check_channels(rgb, "rgb")
    with torch.autocast(device_type=rgb.device.type, enabled=False):
        x = rgb.float()
        xyz_from_rgb, white = _constants(x.device)
        lin = srgb_to_linear(x)
        t = _mix(lin, xyz_from_rgb) / white  # (..., 3, H, W) XYZ relative to white
        fx, fy, fz = _f(t).unbind(-3)
        return torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=-3)


def lab_to_linear(
    L: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L, a, b (any one shape, float32) -> linear sRGB (R, G, B) of that shape, unclipped.

    As in scikit-image, negative Z (far out-of-gamut Lab) is clamped to 0 before the inverse.
    """
    fy = (L + 16.0) / 116.0
    f = (fy + a / 500.0, fy, (fy - b / 200.0).clamp_min(0.0))
    x, y, z = (
        torch.where(fc > _F_EPS, fc * fc * fc, (fc - 16.0 / 116.0) / _KAPPA) * white
        for fc, white in zip(f, _WHITE_D65, strict=True)
    )
    m = _rgb_from_xyz()
    return tuple(  # type: ignore[return-value]
        row[0] * x + row[1] * y + row[2] * z for row in m
    )


@lru_cache(maxsize=1)
def _rgb_from_xyz() -> tuple[tuple[float, ...], ...]:
    """The inverse of _XYZ_FROM_RGB, computed in float64, as Python floats."""
    inv = torch.linalg.inv(torch.tensor(_XYZ_FROM_RGB, dtype=torch.float64))
    return tuple(tuple(float(v) for v in row) for row in inv)


def linear_to_srgb(lin: torch.Tensor) -> torch.Tensor:
    """Linear sRGB -> gamma-encoded sRGB (the sRGB transfer curve), unclipped."""
    return torch.where(
        lin > 0.0031308, 1.055 * lin.clamp_min(0.0031308) ** (1.0 / 2.4) - 0.055, 12.92 * lin
    )


def lab_to_rgb(lab: torch.Tensor, clip: bool = True) -> torch.Tensor:
    """Lab (..., 3, H, W) -> sRGB float32 (..., 3, H, W), clipped to [0, 1] unless clip=False."""
    _check_channels(lab, "lab")
    with torch.autocast(device_type=lab.device.type, enabled=False):
        rgb = linear_to_srgb(torch.stack(lab_to_linear(*lab.float().unbind(-3)), dim=-3))
        return rgb.clamp(0.0, 1.0) if clip else rgb


def split_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 3, H, W) Lab -> (L (B, 1, H, W) in [0, 100], ab (B, 2, H, W))."""
    return lab[:, :1], lab[:, 1:]


def join_lab(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, h, w) -> Lab (B, 3, H, W); ab resized bilinearly to L's size."""
    if ab.shape[-2:] != L.shape[-2:]:
        ab = torch.nn.functional.interpolate(
            ab.float(), size=L.shape[-2:], mode="bilinear", align_corners=False
        )
    return torch.cat((L.float(), ab.float()), dim=1)


# --------------------------------------------------------------------------- uint8 edges
# Lab <-> 8-bit sRGB for colorize: L from the input's own pixels, and composition back to
# uint8 with a gamut mapping that never changes L.

_GAMUT_TOL = 1e-4  # linear values this far outside [0, 1] count as in gamut (float32 noise)
_GAMUT_STEPS = 8  # bisection steps of the chroma scale: 1/256 of the predicted chroma


@lru_cache(maxsize=4)
def _linear_lut(device: torch.device) -> torch.Tensor:
    """(256,) float32 linear value of each uint8 sRGB level (computed in float64)."""
    v = torch.arange(256, dtype=torch.float64) / 255.0
    return srgb_to_linear(v).to(device=device, dtype=torch.float32)


@lru_cache(maxsize=4)
def _gamma_lut(device: torch.device) -> torch.Tensor:
    """(65536,) uint8 sRGB of linear values k / 65535 (rounded, computed in float64)."""
    lin = torch.arange(65536, dtype=torch.float64) / 65535.0
    return (linear_to_srgb(lin) * 255.0).round().to(device=device, dtype=torch.uint8)


@lru_cache(maxsize=4)
def _grey_lut(device: torch.device) -> torch.Tensor:
    """(256,) float32 L of each grey level 0..255 (R = G = B)."""
    return luminance_to_L(_linear_lut(device) * sum(_XYZ_FROM_RGB[1]))


def grey_u8_to_L(grey: torch.Tensor) -> torch.Tensor:
    """uint8 grey (B, H, W) -> L (B, 1, H, W) float32: exact, by a 256-entry table."""
    return _grey_lut(grey.device)[grey.long()][:, None]


def rgb_u8_to_L(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 RGB (B, H, W, 3) -> L (B, 1, H, W) float32 in [0, 100] (as `rgb_to_lab`)."""
    lin = _linear_lut(rgb.device)[rgb.long()]  # (B, H, W, 3)
    w = _XYZ_FROM_RGB[1]
    y = lin[..., 0] * w[0] + lin[..., 1] * w[1] + lin[..., 2] * w[2]
    return luminance_to_L(y)[:, None]


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
        rgb = lab_to_linear(L, a, b)
        bad = _outside(rgb)
        if bool(bad.any()):
            where = bad.nonzero(as_tuple=True)
            Lb, ab_, bb = L[where], a[where], b[where]
            lo, hi = torch.zeros_like(Lb), torch.ones_like(Lb)
            for _ in range(_GAMUT_STEPS):
                mid = (lo + hi) / 2
                ok = ~_outside(lab_to_linear(Lb, ab_ * mid, bb * mid))
                lo, hi = torch.where(ok, mid, lo), torch.where(ok, hi, mid)
            fixed = lab_to_linear(Lb, ab_ * lo, bb * lo)
            rgb = tuple(c.index_put(where, f) for c, f in zip(rgb, fixed, strict=True))
        return torch.stack(rgb, 1).clamp_(0.0, 1.0)


def lab_to_rgb_in_gamut(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) and ab (B, 2, H, W) -> sRGB float32 (B, 3, H, W) in [0, 1] with L kept
    (the gamut mapping of `linear_in_gamut`, then the sRGB gamma)."""
    return linear_to_srgb(linear_in_gamut(L, ab))


def _lab_to_srgb_u8_reference(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """`lab_to_srgb_u8` in torch on any device: L (B, 1, H, W), ab (B, 2, H, W) -> uint8 sRGB
    (B, H, W, 3), by `linear_in_gamut` and a 65536-entry table for the gamma. The CPU fast
    path reproduces it bit for bit (tests compare the two)."""
    lin = linear_in_gamut(L, ab)  # (B, 3, H, W)
    index = lin.permute(0, 2, 3, 1).mul_(65535.0).round_().long()
    return _gamma_lut(lin.device)[index]


def lab_to_srgb_u8(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) in [0, 100] and ab (B, 2, H, W) -> uint8 sRGB (B, H, W, 3), gamut-mapped
    as `linear_in_gamut` (out-of-gamut pixels lose chroma, never lightness); the gamma by a
    65536-entry table on the linear value (exact to the rounding).

    CPU tensors take a numpy path (`_lab_to_srgb_u8_numpy`) that gives the same bytes several
    times faster; other devices run the torch code (`_lab_to_srgb_u8_reference`).
    """
    on_cpu = L.device.type == "cpu" and ab.device.type == "cpu"
    if on_cpu and L.dim() == 4 and L.shape[1] == 1 and ab.shape == (L.shape[0], 2, *L.shape[2:]):
        return _lab_to_srgb_u8_numpy(L, ab)
    return _lab_to_srgb_u8_reference(L, ab)


# --------------------------------------------------------------------------- CPU fast path
# The float32 operations of `lab_to_linear`, `_outside` and the bisection of `linear_in_gamut`
# in the same order, hence with the same roundings (the same bytes out), but in numpy, in
# place, in reused scratch arrays: X and Z (and R, G, B) stacked so that one numpy call does
# each step for all of them, each branch of f's inverse only where some value takes it, the
# bisection on the out-of-gamut pixels only (gathered, lo += step * ok rather than masked
# copies), the gamma table read with an index that one float add makes (see _ROUND). Jobs
# (rows of one frame) go to torch.get_num_threads() threads; numpy releases the GIL in its
# loops, but the threads contend for it between calls, hence blocks larger than the L2 cache
# would suggest. bench/bench_compose.py measures it against the torch code.

_JOB_PX = 1 << 18  # pixels (rows of one frame) per thread job
_BLOCK_PX = 1 << 16  # pixels per pass of the elementwise operations
_BISECT_PX = 1 << 16  # out-of-gamut pixels bisected together (at most)

_F32 = np.float32
_LOW, _HIGH = _F32(-_GAMUT_TOL), _F32(1 + _GAMUT_TOL)  # gamut bounds on linear values
# The gamma table is read with an index that one float add makes: v + _ROUND in float32, for
# v = linear * 65535 in (-_INDEX_OFFSET, 2**23 - _INDEX_OFFSET), is 2**23 + _INDEX_OFFSET +
# round-half-even(v) (as torch.round: the spacing is 1 there and the offset even), so its
# low bits are the index; the table has room for the values within _GAMUT_TOL of [0, 1].
_INDEX_OFFSET = 1024  # > 65535 * _GAMUT_TOL
_ROUND = _F32(2**23 + _INDEX_OFFSET)
_INDEX_BITS = (1 << 17) - 1  # 2**23 is a multiple of 2**17 and 65535 + 2 * 1024 < 2**17

# Python floats as the float32 that torch makes of them next to a float32 tensor.
_C16, _C116, _C0, _C1 = _F32(16.0), _F32(116.0), _F32(0.0), _F32(1.0)
_CF_EPS, _CKAPPA, _C16_116, _C65535 = _F32(_F_EPS), _F32(_KAPPA), _F32(16 / 116), _F32(65535)


def _column(*values: float) -> np.ndarray:
    """float32 column (len(values), 1), to broadcast one value over each row of a stack."""
    return np.array(values, np.float32).reshape(-1, 1)


_CAB_DIV = _column(500.0, -200.0)  # rows X, Z: fx = fy + a / 500, fz = fy + b / -200 (exact)
_CWHITE_XZ = _column(_WHITE_D65[0], _WHITE_D65[2])  # white Y is 1: no multiply


@lru_cache(maxsize=1)
def _mix_columns() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The columns X, Y, Z of `_rgb_from_xyz` as float32 (3, 1): R, G, B = cx X + cy Y + cz Z."""
    m = _rgb_from_xyz()
    return tuple(_column(*(row[j] for row in m)) for j in range(3))  # type: ignore[return-value]


@lru_cache(maxsize=1)
def _code_lut() -> np.ndarray:
    """(2**17,) uint8: entry 1024 + k is the sRGB level of linear k / 65535 (`_gamma_lut`),
    below 1024 level 0, above 1024 + 65535 level 255 (the reference clamps to [0, 1])."""
    table = _gamma_lut(torch.device("cpu")).numpy()
    k = np.arange(_INDEX_BITS + 1) - _INDEX_OFFSET
    return table[np.clip(k, 0, 65535)]


_Pool = dict[tuple[str, int, type], np.ndarray]  # scratch buffers by (name, rows, dtype)


class _Scratch:
    """Scratch arrays for n pixels, (n,) or (rows, n), as attributes: views of the buffers of
    a pool, which a thread reuses from job to job of a call (new arrays for every block would
    be page-faulted in every time)."""

    _LAYOUT = (  # name, rows (0: (n,)), dtype
        ("fy", 0, np.float32), ("y", 0, np.float32), ("y_terms", 3, np.float32),
        ("t", 2, np.float32), ("xz", 2, np.float32), ("cube", 2, np.float32),
        ("mask", 2, np.bool_), ("rgb", 3, np.float32), ("tmp", 3, np.float32),
        ("low", 0, np.float32), ("high", 0, np.float32), ("ok", 0, np.bool_),
        ("high_ok", 0, np.bool_), ("mid", 0, np.float32), ("scale", 0, np.float32),
        ("index", 3, np.intp), ("codes", 3, np.uint8),
    )
    fy: np.ndarray
    y: np.ndarray
    y_terms: np.ndarray
    t: np.ndarray
    xz: np.ndarray
    cube: np.ndarray
    mask: np.ndarray
    rgb: np.ndarray
    tmp: np.ndarray
    low: np.ndarray
    high: np.ndarray
    ok: np.ndarray
    high_ok: np.ndarray
    mid: np.ndarray
    scale: np.ndarray
    index: np.ndarray
    codes: np.ndarray

    def __init__(self, n: int, pool: _Pool) -> None:
        self.n = n
        for name, rows, dtype in self._LAYOUT:
            size = max(rows, 1) * n
            buffer = pool.get((name, rows, dtype))
            if buffer is None or buffer.size < size:
                buffer = pool[(name, rows, dtype)] = np.empty(size, dtype)
            setattr(self, name, buffer[:size].reshape((rows, n) if rows else n))


def _inv_f_np(t: np.ndarray, out: np.ndarray, s: _Scratch) -> np.ndarray:
    """out = Lab's inverse f of t, as `lab_to_linear`: t**3 above _F_EPS, else (t - 16/116) /
    _KAPPA (float32 (n,) or (2, n); out is not t). Each row computes only the branches that
    its values take."""
    mask, cube = (s.mask, s.cube) if t.ndim == 2 else (s.mask[0], s.cube[0])
    np.greater(t, _CF_EPS, out=mask)
    if t.ndim == 1:
        _inv_f_branches(t, out, mask, cube, np.count_nonzero(mask))
        return out
    n_cube = [np.count_nonzero(row) for row in mask]
    if n_cube[0] == n_cube[1] and n_cube[0] in (0, t.shape[1]):  # one call for both rows
        _inv_f_branches(t, out, mask, cube, 2 * n_cube[0])
    else:
        for row, n in enumerate(n_cube):
            _inv_f_branches(t[row], out[row], mask[row], cube[row], n)
    return out


def _inv_f_branches(
    t: np.ndarray, out: np.ndarray, mask: np.ndarray, cube: np.ndarray, n_cube: int
) -> None:
    """`_inv_f_np` of t where mask (t > _F_EPS) holds n_cube times; cube is scratch."""
    if n_cube == mask.size:
        np.multiply(t, t, out=out)
        np.multiply(out, t, out=out)
        return
    np.subtract(t, _C16_116, out=out)
    np.divide(out, _CKAPPA, out=out)
    if n_cube:
        np.multiply(t, t, out=cube)
        np.multiply(cube, t, out=cube)
        np.copyto(out, cube, where=mask)


def _xz_np(
    fy: np.ndarray, ab: np.ndarray, s: _Scratch, scale: np.ndarray | None = None
) -> np.ndarray:
    """fy = f(Y) (n,) and ab (2, n), times scale (n,) if given -> X and Z (2, n), white-scaled,
    as `lab_to_linear` (Z's f clamped at 0), in s.xz."""
    t = s.t
    if scale is None:
        np.divide(ab, _CAB_DIV, out=t)
    else:
        np.divide(np.multiply(ab, scale, out=t), _CAB_DIV, out=t)
    np.add(fy, t, out=t)  # (fx, fz)
    np.maximum(t[1], _C0, out=t[1])
    return np.multiply(_inv_f_np(t, s.xz, s), _CWHITE_XZ, out=s.xz)


def _mix_np(xz: np.ndarray, y_terms: np.ndarray, s: _Scratch) -> np.ndarray:
    """X, Z (2, n) and y_terms = cy Y (3, n) -> linear R, G, B (3, n) = (cx X + cy Y) + cz Z,
    in s.rgb."""
    cx, _, cz = _mix_columns()
    rgb = np.add(np.multiply(xz[0], cx, out=s.rgb), y_terms, out=s.rgb)
    return np.add(rgb, np.multiply(xz[1], cz, out=s.tmp), out=rgb)


def _in_gamut_np(rgb: np.ndarray, s: _Scratch) -> np.ndarray:
    """Linear R, G, B (3, n) -> bool (n,) in s.ok: every channel in [-_GAMUT_TOL,
    1 + _GAMUT_TOL] (the complement of `_outside`)."""
    np.greater_equal(np.minimum.reduce(rgb, axis=0, out=s.low), _LOW, out=s.ok)
    np.less_equal(np.maximum.reduce(rgb, axis=0, out=s.high), _HIGH, out=s.high_ok)
    return np.logical_and(s.ok, s.high_ok, out=s.ok)


def _lightness_np(L: np.ndarray, s: _Scratch) -> tuple[np.ndarray, np.ndarray]:
    """L (n,) -> (fy = (L + 16) / 116, cy Y (3, n): the Y terms of R, G, B), in scratch."""
    fy = np.divide(np.add(L, _C16, out=s.fy), _C116, out=s.fy)
    y = _inv_f_np(fy, s.y, s)
    return fy, np.multiply(y, _mix_columns()[1], out=s.y_terms)


def _linear_np(L: np.ndarray, ab: np.ndarray, s: _Scratch) -> tuple[np.ndarray, np.ndarray]:
    """L (n,) and ab (2, n) float32 -> (linear R, G, B (3, n) unclipped, as `lab_to_linear`;
    bool (n,) in gamut), in scratch."""
    fy, y_terms = _lightness_np(L, s)
    rgb = _mix_np(_xz_np(fy, ab, s), y_terms, s)
    return rgb, _in_gamut_np(rgb, s)


def _bisect_np(L: np.ndarray, ab: np.ndarray, s: _Scratch) -> np.ndarray:
    """Out-of-gamut pixels: L (n,), ab (2, n) float32 -> linear R, G, B (3, n) in [0, 1] with
    ab scaled by the k / 256 that the bisection of `linear_in_gamut` finds, in s.rgb."""
    fy, y_terms = _lightness_np(L, s)
    lo, mid = s.scale, s.mid  # lo = k / 256 exactly (its hi is lo + 2 * step)
    lo.fill(0.0)
    for i in range(1, _GAMUT_STEPS + 1):
        step = _F32(0.5**i)
        np.add(lo, step, out=mid)
        ok = _in_gamut_np(_mix_np(_xz_np(fy, ab, s, scale=mid), y_terms, s), s)
        np.add(lo, np.multiply(ok, step, out=mid), out=lo)  # lo = mid where in gamut
    rgb = _mix_np(_xz_np(fy, ab, s, scale=lo), y_terms, s)
    # lo = 0 can still be out for L outside [0, 100]: clamped, as the reference does
    return np.clip(rgb, _C0, _C1, out=rgb)


def _codes_np(rgb: np.ndarray, s: _Scratch) -> np.ndarray:
    """Linear values within the gamut tolerance (float32 (3, n), clobbered) -> uint8 sRGB
    (3, n) in s.codes, as the reference's `_gamma_lut`[round(clamp(v, 0, 1) * 65535)]."""
    np.add(np.multiply(rgb, _C65535, out=rgb), _ROUND, out=rgb)
    index = np.bitwise_and(rgb.view(np.int32), _INDEX_BITS, out=s.index)  # np.take wants intp
    return np.take(_code_lut(), index, out=s.codes, mode="clip")


def _compose_rows_np(L: np.ndarray, ab: np.ndarray, out: np.ndarray, pools: list[_Pool]) -> None:
    """One job: L (rows, W) and ab (2, rows, W) float32 (any strides) -> out (rows, W, 3)
    uint8 sRGB, with a pool of scratch buffers taken from pools and given back."""
    try:
        pool = pools.pop()  # list.pop and append are atomic
    except IndexError:
        pool = {}
    try:
        _compose_rows_with(L, ab, out, pool)
    finally:
        pools.append(pool)


def _compose_rows_with(L: np.ndarray, ab: np.ndarray, out: np.ndarray, pool: _Pool) -> None:
    """`_compose_rows_np` with the scratch buffers of pool: blocks of rows through
    `_linear_np` and `_codes_np`, then the out-of-gamut pixels of all blocks through
    `_bisect_np`."""
    rows, width = L.shape
    step = max(1, _BLOCK_PX // width)
    bad = []  # flat indices of the out-of-gamut pixels, per block
    for r in range(0, rows, step):
        block = slice(r, r + step)
        L_block, ab_block = L[block].reshape(-1), ab[:, block].reshape(2, -1)
        s = _Scratch(L_block.size, pool)
        rgb, ok = _linear_np(L_block, ab_block, s)
        if np.count_nonzero(ok) < ok.size:
            bad.append(np.flatnonzero(np.logical_not(ok, out=ok)) + r * width)
        _interleave(_codes_np(rgb, s), out[block])
    if bad:
        index = np.concatenate(bad)
        L_bad, ab_bad = np.take(L, index), np.take(ab.reshape(2, -1), index, axis=1)
        _fix_out_of_gamut_np(index, L_bad, ab_bad, out.reshape(-1), pool)


def _interleave(planes: np.ndarray, out: np.ndarray) -> None:
    """uint8 planes (3, rows * W) -> out (rows, W, 3), contiguous, by cv2.merge (numpy's
    strided copy is several times slower)."""
    merged = cv2.merge([plane.reshape(out.shape[:2]) for plane in planes], out)
    if merged.ctypes.data != out.ctypes.data:  # cv2 made a new array instead of filling out
        out[...] = merged


def _fix_out_of_gamut_np(
    index: np.ndarray, L: np.ndarray, ab: np.ndarray, out: np.ndarray, pool: _Pool
) -> None:
    """Bisect the out-of-gamut pixels (flat pixel index and L: (n,), ab (2, n)) in chunks of at
    most _BISECT_PX and write their uint8 sRGB into out (N * 3,), interleaved RGB."""
    chunks = -(-index.size // _BISECT_PX)
    size = -(-index.size // chunks)  # equal chunks: no small, overhead-bound remainder
    for start in range(0, index.size, size):
        part = slice(start, start + size)
        s = _Scratch(L[part].size, pool)
        codes = _codes_np(_bisect_np(L[part], ab[:, part], s), s)
        first = index[part] * 3
        for c in range(3):
            out[first + c] = codes[c]


def _lab_to_srgb_u8_numpy(L: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """`lab_to_srgb_u8` for CPU tensors, in numpy: L (B, 1, H, W), ab (B, 2, H, W) -> uint8
    sRGB (B, H, W, 3), the same bytes as `_lab_to_srgb_u8_reference`."""
    Ln = L.detach().float().numpy()
    abn = ab.detach().float().numpy()
    B, _, H, W = Ln.shape
    out = np.empty((B, H, W, 3), np.uint8)
    if out.size == 0:
        return torch.from_numpy(out)
    rows = max(1, _JOB_PX // W)
    jobs = [(i, slice(r, r + rows)) for i in range(B) for r in range(0, H, rows)]
    pools: list[_Pool] = []

    def run(job: tuple[int, slice]) -> None:
        i, rs = job
        _compose_rows_np(Ln[i, 0, rs], abn[i, :, rs], out[i, rs], pools)

    workers = min(torch.get_num_threads(), len(jobs))
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(run, jobs))
    else:
        for job in jobs:
            run(job)
    return torch.from_numpy(out)
