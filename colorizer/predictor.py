"""The predictor: a loaded network and how to run it, full-resolution L in, ab or RGB out.

The grey content is never altered: every output pixel keeps the input's own full-resolution
L; only ab comes from the network. The network sees the image resized so that its shorter
side is ``work_size`` (never upscaled; both sides rounded to multiples of 8) and predicts ab
at 1/4 of that; ab is decoded with the annealed mean at ``temperature``, upsampled
bilinearly to the full resolution and joined with the original L (`colorizer.lab`'s gamut
mapping keeps L when composing uint8 sRGB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from colorizer.bins import DEFAULT_TEMPERATURE, annealed_mean
from colorizer.checkpoint import DEFAULT_WORK_SIZE, decode_settings, load_model
from colorizer.device import resolve_device
from colorizer.lab import grey_u8_to_L, lab_to_srgb_u8, rgb_u8_to_L
from colorizer.model import ColorizationNet, ModelConfig


def work_shape(height: int, width: int, work_size: int) -> tuple[int, int]:
    """Network input size for a (height, width) image: shorter side ``work_size`` (never
    upscaled), aspect kept, both sides rounded to multiples of 8 (at least 8)."""
    scale = min(1.0, work_size / min(height, width))
    return (max(8, round(height * scale / 8) * 8), max(8, round(width * scale / 8) * 8))


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
        dev = resolve_device(device)
        model, cfg, payload = load_model(path, dev, expect_arch=arch)
        own_temperature, own_size = decode_settings(payload)
        return cls(
            model, cfg, dev,
            temperature=own_temperature if temperature is None else temperature,
            work_size=own_size if work_size is None else work_size,
        )

    def grey_to_L(self, grey: torch.Tensor) -> torch.Tensor:
        """uint8 grey (B, H, W) -> L (B, 1, H, W) on this device: exact, by a 256-entry table."""
        return grey_u8_to_L(grey.to(self.device))

    def rgb_to_L(self, rgb: torch.Tensor) -> torch.Tensor:
        """uint8 RGB (B, H, W, 3) -> L (B, 1, H, W) on this device."""
        return rgb_u8_to_L(rgb.to(self.device))

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
            L = self.rgb_to_L(torch.from_numpy(np.ascontiguousarray(rgb))[None])
        return self.compose(L, self.predict_ab(L))[0].numpy()
