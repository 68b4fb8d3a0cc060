"""The colorization networks: Zhang's ECCV16 layout (``eccv16``) and Chen et al.'s (``chen``).

One class, ``ColorizationNet``, built by ``build_model(cfg)``; the two architectures are configs.

ECCV16 (Zhang, Isola, Efros 2016), input L (B, 1, H, W) with H, W multiples of 8:

    model1  conv1_1 3x3 1->64, conv1_2 3x3 s2 64->64, BN           -> (B,  64, H/2, W/2)
    model2  conv2_1 64->128,   conv2_2 s2 128->128,   BN           -> (B, 128, H/4, W/4)
    model3  conv3_1, conv3_2 128/256->256, conv3_3 s2, BN          -> (B, 256, H/8, W/8)
    model4  conv4_1..3 ->512, BN                                   -> (B, 512, H/8, W/8)
    model5  conv5_1..3 512, dilation 2, BN                         -> (B, 512, H/8, W/8)
    model6  conv6_1..3 512, dilation 2, BN                         -> (B, 512, H/8, W/8)
    model7  conv7_1..3 512, BN                                     -> (B, 512, H/8, W/8)
    model8  conv8_1 4x4 transposed s2 512->256, conv8_2, conv8_3, 1x1 256->313
                                                                   -> (B, 313, H/4, W/4) logits
    model_out  the fixed 1x1 313->2 projection of Zhang's release (bin centres / 110), a buffer.

Every conv is followed by a ReLU except model8's last. Parameter names are those of Zhang's
released PyTorch state dict (``model1.0.weight`` ... ``model_out.weight``).

Chen et al. (the paper): two changes.
  1. conv1_1 is two parallel convs on L, 3x3 and 5x5 (``first_layer_channels`` each), whose
     outputs are concatenated (``model1.0.conv3`` / ``model1.0.conv5``).
  2. A VGG-16 fed the grey image (``vgg``, torchvision names) gives conv1_2 (64 ch, H),
     conv2_2 (128 ch, H/2) and conv3_3 (256 ch, H/4) features (after ReLU). Each goes through
     its own BatchNorm (``vgg_bn.0..2``) and is concatenated on the channel axis at the first
     point of the main path that has its resolution:
       conv1_2 (H)   after conv1_1 + ReLU, i.e. into conv1_2 (``model1.2``: 2*c1 + 64 -> 64),
       conv2_2 (H/2) after block 1's BN,   i.e. into conv2_1 (``model2.0``: 64 + 128 -> 128),
       conv3_3 (H/4) after block 2's BN,   i.e. into conv3_1 (``model3.0``: 128 + 256 -> 256).
     These three convs (and the first layer) differ in shape from ECCV16's; all other layers
     are shared and load from Zhang's weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from colorizer.bins import AB_NORM, NUM_BINS, ab_bins
from colorizer.errors import ConfigError, InputError
from colorizer.vgg import FEATURE_CHANNELS, VggFeatures, grey_input

ARCHS = ("chen", "eccv16")
L_CENTRE = 50.0  # Zhang's input normalisation: (L - 50) / 100
L_NORM = 100.0


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build. ``eccv16`` ignores the VGG and first-layer options."""

    arch: str = "chen"
    vgg_trainable: bool = False  # chen: train the fused VGG convs with the rest (else frozen)
    first_layer_channels: int = 32  # chen: output channels of each of the 3x3 and 5x5 convs

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.first_layer_channels < 1:
            raise ConfigError(f"first_layer_channels must be >= 1, got {self.first_layer_channels}")

    @property
    def uses_vgg(self) -> bool:
        return self.arch == "chen"


class MultiScaleConv(nn.Module):
    """Parallel 3x3 and 5x5 convs on the same input, outputs concatenated: (B, 2*c, H, W)."""

    def __init__(self, cin: int, channels: int) -> None:
        super().__init__()
        self.conv3 = nn.Conv2d(cin, channels, 3, padding=1)
        self.conv5 = nn.Conv2d(cin, channels, 5, padding=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((self.conv3(x), self.conv5(x)), dim=1)


class AbProjection(nn.Module):
    """Zhang's ``model_out``: fixed 1x1 conv from 313 probabilities to ab / 110 (a buffer).

    Kept so Zhang's state dict loads unchanged; decoding uses ``bins.annealed_mean``.
    """

    def __init__(self) -> None:
        super().__init__()
        weight = (ab_bins("cpu").T / AB_NORM).reshape(2, NUM_BINS, 1, 1)
        self.register_buffer("weight", weight.clone())

    def forward(self, prob: torch.Tensor) -> torch.Tensor:
        """(B, 313, h, w) probabilities -> (B, 2, h, w) ab / 110."""
        return nn.functional.conv2d(prob, self.weight)


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation)


def _block(
    convs: list[nn.Module], bn_channels: int | None, last_relu: bool = True
) -> nn.Sequential:
    """conv, ReLU, conv, ReLU, ... [BatchNorm]: Zhang's layout, convs at even indices."""
    layers: list[nn.Module] = []
    for i, conv in enumerate(convs):
        layers.append(conv)
        if last_relu or i < len(convs) - 1:
            layers.append(nn.ReLU(inplace=True))
    if bn_channels is not None:
        layers.append(nn.BatchNorm2d(bn_channels))
    return nn.Sequential(*layers)


class ColorizationNet(nn.Module):
    """L (B, 1, H, W) in [0, 100] -> (B, 313, H/4, W/4) logits over the ab bins."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        fuse = FEATURE_CHANNELS if cfg.uses_vgg else (0, 0, 0)  # extra input channels per tap
        if cfg.uses_vgg:
            first: nn.Module = MultiScaleConv(1, cfg.first_layer_channels)
            c1 = 2 * cfg.first_layer_channels
        else:
            first, c1 = _conv(1, 64), 64
        self.model1 = _block([first, _conv(c1 + fuse[0], 64, stride=2)], 64)
        self.model2 = _block([_conv(64 + fuse[1], 128), _conv(128, 128, stride=2)], 128)
        self.model3 = _block(
            [_conv(128 + fuse[2], 256), _conv(256, 256), _conv(256, 256, stride=2)], 256
        )
        self.model4 = _block([_conv(256, 512), _conv(512, 512), _conv(512, 512)], 512)
        self.model5 = _block([_conv(512, 512, dilation=2) for _ in range(3)], 512)
        self.model6 = _block([_conv(512, 512, dilation=2) for _ in range(3)], 512)
        self.model7 = _block([_conv(512, 512) for _ in range(3)], 512)
        up = nn.ConvTranspose2d(512, 256, 4, stride=2, padding=1)
        head = nn.Conv2d(256, NUM_BINS, 1)
        self.model8 = _block([up, _conv(256, 256), _conv(256, 256), head], None, last_relu=False)
        self.model_out = AbProjection()
        self.vgg: VggFeatures | None = None
        self.vgg_bn: nn.ModuleList | None = None
        if cfg.uses_vgg:
            self.vgg = VggFeatures()
            self.vgg.requires_grad_(cfg.vgg_trainable)
            self.vgg_bn = nn.ModuleList(nn.BatchNorm2d(c) for c in FEATURE_CHANNELS)

    def _vgg_taps(self, L: torch.Tensor) -> list[torch.Tensor | None]:
        """Batch-normalised VGG features of the grey image, or Nones for ECCV16."""
        if self.vgg is None or self.vgg_bn is None:
            return [None, None, None]
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.cfg.vgg_trainable):
            taps = self.vgg(grey_input(L))
        return [bn(t) for bn, t in zip(self.vgg_bn, taps, strict=True)]

    def forward(self, L: torch.Tensor) -> torch.Tensor:
        if L.dim() != 4 or L.shape[1] != 1 or L.shape[2] % 8 or L.shape[3] % 8:
            raise InputError(
                f"model input must be L of shape (B, 1, H, W) with H and W multiples of 8; "
                f"got {tuple(L.shape)}"
            )
        v1, v2, v3 = self._vgg_taps(L)
        x = (L - L_CENTRE) / L_NORM
        x = self.model1[1](self.model1[0](x))  # conv1_1 + ReLU: (B, c1, H, W)
        x = _concat(x, v1)  # chen: + conv1_2 features (B, 64, H, W)
        for layer in self.model1[2:]:
            x = layer(x)  # (B, 64, H/2, W/2)
        x = self.model2(_concat(x, v2))  # chen: + conv2_2 (B, 128, H/2, W/2) -> (B, 128, H/4, W/4)
        x = self.model3(_concat(x, v3))  # chen: + conv3_3 (B, 256, H/4, W/4) -> (B, 256, H/8, W/8)
        for block in (self.model4, self.model5, self.model6, self.model7):
            x = block(x)  # (B, 512, H/8, W/8)
        return self.model8(x)  # (B, 313, H/4, W/4) logits


def _concat(x: torch.Tensor, extra: torch.Tensor | None) -> torch.Tensor:
    return x if extra is None else torch.cat((x, extra.to(x.dtype)), dim=1)


def build_model(cfg: ModelConfig) -> ColorizationNet:
    """The network for ``cfg``, randomly initialised (load weights with ``colorizer.weights``)."""
    return ColorizationNet(cfg)
