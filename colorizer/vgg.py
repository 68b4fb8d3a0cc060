"""VGG-16 convolutions up to conv3_3, as a feature extractor for the grey (L) image.

The layer layout and parameter names are torchvision's ``vgg16().features`` (``features.0``
... ``features.14``), so a torchvision ImageNet checkpoint loads by name. Weight files are read
in ``colorizer.weights``.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# torchvision vgg16().features: index of every conv and its (out, in) channels.
VGG16_CONVS: dict[int, tuple[int, int]] = {
    0: (64, 3), 2: (64, 64),  # conv1_1, conv1_2
    5: (128, 64), 7: (128, 128),  # conv2_1, conv2_2
    10: (256, 128), 12: (256, 256), 14: (256, 256),  # conv3_1 .. conv3_3
    17: (512, 256), 19: (512, 512), 21: (512, 512),  # conv4_*
    24: (512, 512), 26: (512, 512), 28: (512, 512),  # conv5_*
}  # fmt: skip
_POOLS = (4, 9)  # max-pools before conv2_1 and conv3_1
_TAPS = (3, 8, 15)  # outputs taken: ReLU after conv1_2, conv2_2, conv3_3
FEATURE_CHANNELS = (64, 128, 256)  # channels of the three taps (resolution H, H/2, H/4)


class VggFeatures(nn.Module):
    """torchvision ``vgg16().features[:16]``: conv1_1 .. conv3_3 with their ReLUs and 2 pools."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(_TAPS[-1] + 1):
            if i in VGG16_CONVS:
                cout, cin = VGG16_CONVS[i]
                layers.append(nn.Conv2d(cin, cout, 3, padding=1))
            elif i in _POOLS:
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.ReLU(inplace=True))
        self.features = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """x: (B, 3, H, W) ImageNet-normalised -> conv1_2 (B, 64, H, W), conv2_2 (B, 128, H/2,
        W/2), conv3_3 (B, 256, H/4, W/4), each after its ReLU."""
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                taps.append(x)
        return taps[0], taps[1], taps[2]


def _imagenet_normalise(x: torch.Tensor) -> torch.Tensor:
    mean = x.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = x.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def grey_input(L: torch.Tensor) -> torch.Tensor:
    """L (B, 1, H, W) in [0, 100] -> VGG input (B, 3, H, W): L/100 on all 3 channels, normalised."""
    return _imagenet_normalise((L / 100.0).expand(-1, 3, -1, -1))


def rgb_input(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB (B, 3, H, W) in [0, 1] -> VGG input (B, 3, H, W), ImageNet mean/std normalised."""
    return _imagenet_normalise(rgb)
