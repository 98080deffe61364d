"""The study's U-Nets (2D, and a residual 3D one), built by name, each naming its own layer groups.

``unet2d_residual`` is the paper's network as in its public code (PROTOCOL.md, PUBLIC-CODE.md): 16/32/64/128
channels, 3 pre-activation residual blocks per stage, pre-activated stride-2 2×2 convolutions down, 2×2 transposed
convolutions up, skips through a 1×1 conv **summed** into the decoder, a pre-activated 1×1 conv + BatchNorm output
(logits), bias-free convolutions except the 1×1s. ``unet_vanilla`` is the classic U-Net (5 levels, Conv→BN→ReLU
pairs, max-pooling, concatenated skips). ``unet3d_residual`` is the residual U-Net with 3D convolutions (3×3×3,
2×2×2 down/up), trained on patches of the volume and predicting by sliding windows (the 3D-CNN study's question:
does the answer hold for a 3D network?). Every model says how many spatial dimensions it convolves (``dims``).

Layer groups are a property of the model (``model.layer_groups()``), so strategies never match parameter
names by string: ``first`` = the first 3×3 conv + first residual block, ``last`` = the last residual block +
the 1×1 output conv (the paper's fairness condition: the two have nearly equal parameter counts — 4,816 vs 4,721
as in the MICCAI 2021 code), ``output`` = the output head alone (DART20's code), ``encoder``/``decoder``.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from mrishift.models import architectures

# re-exported: the library's callers ask mrishift.models.networks
from mrishift.models.architectures import LAYER_GROUPS, NORMALIZED, SPOTTUNE, default_levels, dims, size_suffix, stride  # noqa: F401

_MODELS: dict[str, Callable[..., nn.Module]] = {}


def _register(name: str):
    def wrap(cls):
        _MODELS[name] = cls
        return cls

    return wrap


def build(name: str, **options) -> nn.Module:
    """Build a registered model by name, e.g. ``build("unet2d_residual", width=1.0)``."""
    if name not in _MODELS:
        raise ValueError(f"unknown model {name!r}; known: {sorted(_MODELS)}")
    return _MODELS[name](**options)


def names() -> list[str]:
    return sorted(_MODELS)


def _check_levels(levels: int) -> int:
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"a U-Net needs at least 2 resolution levels (one downsampling), got {levels!r}")
    return levels


def _parameter_names(model: nn.Module, modules: list[nn.Module]) -> list[str]:
    wanted = {id(p) for m in modules for p in m.parameters()}
    return [name for name, p in model.named_parameters() if id(p) in wanted]


def memory_format(model: nn.Module) -> torch.memory_format:
    """The channels-last layout of a model's dimensionality (``torch.channels_last`` is for 4-d tensors only)."""
    return torch.channels_last_3d if getattr(model, "dims", 2) == 3 else torch.channels_last


_LAYERS = {2: (nn.Conv2d, nn.BatchNorm2d, nn.ConvTranspose2d), 3: (nn.Conv3d, nn.BatchNorm3d, nn.ConvTranspose3d)}


def _pre_activation(cin: int, cout: int, kernel: int, stride: int = 1, bias: bool = False,
                    dims: int = 2) -> nn.Sequential:
    """BN → ReLU → Conv, the public code's ``PreActivation2d`` (``3d`` with ``dims=3``)."""
    conv, norm, _ = _LAYERS[dims]
    return nn.Sequential(norm(cin), nn.ReLU(inplace=True),
                         conv(cin, cout, kernel, stride=stride, padding=kernel // 2 if stride == 1 else 0, bias=bias))


class PreActResBlock(nn.Module):
    """x + PreAct(PreAct(x)), bias-free 3×3 (3×3×3) convolutions (dpipe's ``ResBlock2d``/``3d``)."""

    def __init__(self, channels: int, dims: int = 2):
        super().__init__()
        self.body = nn.Sequential(_pre_activation(channels, channels, 3, dims=dims),
                                  _pre_activation(channels, channels, 3, dims=dims))

    def forward(self, x):
        return x + self.body(x)


def _stage(channels: int, blocks: int, dims: int = 2) -> nn.Sequential:
    return nn.Sequential(*(PreActResBlock(channels, dims) for _ in range(blocks)))


class ResidualUNet(nn.Module):
    """The paper's residual U-Net as in its public code (neuro-ml/domain_shift_anatomy, yishayahu/MMTL ``UNet2D``);
    ``width`` multiplies every channel count (1.0 = 16/32/64/128, 1,561,491 parameters).

    init: bias-free 3×3 conv + 3 residual blocks; down: pre-activated bias-free 2×2 stride-2 conv + 3 blocks;
    up: bias-free 2×2 transposed conv, summed with a 1×1 (biased) projection of the skip, then 3 blocks;
    output: pre-activated 1×1 conv (biased) + BatchNorm(1), giving logits. ``levels`` (4) resolution levels, the
    channels doubling at each (a depth axis of the study: 3 = 16/32/64, 5 = 16…256)."""

    levels = 4  # the default; input sides must be multiples of 2 ** (levels - 1)
    dims = 2

    def __init__(self, in_channels: int = 1, width: float = 1.0, blocks_per_stage: int = 3, levels: int = 4):
        super().__init__()
        self.levels = n = _check_levels(levels)
        d = self.dims
        conv, norm, transposed = _LAYERS[d]
        ch = [max(1, round(16 * 2 ** i * width)) for i in range(n)]
        self.init = conv(in_channels, ch[0], 3, padding=1, bias=False)
        self.encoder = nn.ModuleList(_stage(c, blocks_per_stage, d) for c in ch[:-1])
        self.down = nn.ModuleList(_pre_activation(ch[i], ch[i + 1], 2, stride=2, dims=d) for i in range(n - 1))
        self.bottleneck = _stage(ch[-1], blocks_per_stage, d)
        self.up = nn.ModuleList(transposed(ch[i + 1], ch[i], 2, stride=2, bias=False) for i in reversed(range(n - 1)))
        self.skip = nn.ModuleList(conv(c, c, 1) for c in reversed(ch[:-1]))
        self.decoder = nn.ModuleList(_stage(c, blocks_per_stage, d) for c in reversed(ch[:-1]))
        self.stride = 2 ** (n - 1)  # what every input side must be a multiple of
        self.head = _pre_activation(ch[0], 1, 1, bias=True, dims=d)
        self.output_norm = norm(1)
        self.window: tuple[int, ...] | None = None  # 3D: the sliding window it predicts with (its training patch)

    def forward(self, x):
        x = self.init(x)
        skips = []
        for stage, down in zip(self.encoder, self.down):
            x = stage(x)
            skips.append(x)
            x = down(x)
        x = self.bottleneck(x)
        for up, skip, stage, features in zip(self.up, self.skip, self.decoder, reversed(skips)):
            x = stage(up(x) + skip(features))
        return self.output_norm(self.head(x))

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The network's blocks from input to output, by name (each residual block on its own; every parameter in
        exactly one)."""
        named = [("init", self.init)]
        for level, (stage, down) in enumerate(zip(self.encoder, self.down)):
            named += [(f"encoder{level}.{i}", block) for i, block in enumerate(stage)] + [(f"down{level}", down)]
        named += [(f"bottleneck.{i}", block) for i, block in enumerate(self.bottleneck)]
        for level, (up, skip, stage) in enumerate(zip(self.up, self.skip, self.decoder)):
            named += [(f"up{level}", up), (f"skip{level}", skip)]
            named += [(f"decoder{level}.{i}", block) for i, block in enumerate(stage)]
        return named + [("head", self.head), ("output_norm", self.output_norm)]

    def layer_groups(self) -> dict[str, list[str]]:
        """``first``: the first 3×3 conv + first residual block (the public code's ``init_path.0/1``); ``last``: the
        last residual block + the pre-activated 1×1 output conv (``out_path.2/3``; the final BatchNorm stays frozen,
        as there); ``last2``: the last two convolutions, each with the BatchNorm in front of it (the last residual
        block's second 3×3 conv and the 1×1 output conv: the transfer-learning study's "top two layers");
        ``output``: the output head alone (1×1 conv + final BatchNorm, the nearest counterpart of the DART20 code's
        ``out_path``)."""
        encoder = [self.init, *self.encoder, *self.down, self.bottleneck]
        decoder = [*self.up, *self.skip, *self.decoder, self.head, self.output_norm]
        return {
            "first": _parameter_names(self, [self.init, self.encoder[0][0]]),
            "last": _parameter_names(self, [self.decoder[-1][-1], self.head]),
            "last2": _parameter_names(self, [self.decoder[-1][-1].body[1], self.head]),
            "output": _parameter_names(self, [self.head, self.output_norm]),
            "encoder": _parameter_names(self, encoder),
            "decoder": _parameter_names(self, decoder),
        }


@_register("unet2d_residual")
class ResidualUNet2D(ResidualUNet):
    __doc__ = ResidualUNet.__doc__


@_register("unet3d_residual")
class ResidualUNet3D(ResidualUNet):
    """The residual U-Net in 3D: the same stages, blocks and channels with 3×3×3 convolutions and 2×2×2 down/up
    sampling (width 1.0: 4,578,483 parameters), on (B, 1, x, y, z) patches; ``first``/``last`` as the 2D network's
    (14,320 vs 13,937 parameters at width 1.0). It predicts a volume by sliding windows of ``window`` voxels (set
    from its training patch when a run saves it; None: the whole volume at once)."""

    dims = 3


def _conv_bn_relu(cin: int, cout: int) -> nn.Sequential:
    """Two bias-free Conv→BN→ReLU (the public code's ``PostActivation2d`` pairs)."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


@_register("unet_vanilla")
class VanillaUNet(nn.Module):
    """Ronneberger's U-Net as in the DART20 code: 5 levels (64…1024 × width), max-pooling, concatenated skips, a
    bias-free 1×1 output conv + BatchNorm(1). ``levels`` changes the depth, the channels doubling at each."""

    levels = 5  # the default; input sides must be multiples of 2 ** (levels - 1)
    dims = 2

    def __init__(self, in_channels: int = 1, width: float = 1.0, levels: int = 5):
        super().__init__()
        self.levels = n = _check_levels(levels)
        ch = [max(1, round(64 * 2 ** i * width)) for i in range(n)]
        self.input_block = _conv_bn_relu(in_channels, ch[0])
        self.encoder = nn.ModuleList(_conv_bn_relu(ch[i], ch[i + 1]) for i in range(n - 1))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in reversed(range(n - 1)))
        self.decoder = nn.ModuleList(_conv_bn_relu(2 * ch[i], ch[i]) for i in reversed(range(1, n - 1)))
        self.stride = 2 ** (n - 1)
        self.output_block = nn.Sequential(_conv_bn_relu(2 * ch[0], ch[0]), nn.Conv2d(ch[0], 1, 1, bias=False),
                                          nn.BatchNorm2d(1))

    def forward(self, x):
        x = self.input_block(x)
        skips = [x]
        for stage in self.encoder:
            x = stage(self.pool(x))
            skips.append(x)
        skips.pop()
        for up, stage in zip(self.up, [*self.decoder, self.output_block]):
            x = stage(torch.cat([up(x), skips.pop()], dim=1))
        return x

    def blocks(self) -> list[tuple[str, nn.Module]]:
        """The network's blocks from input to output, by name (every parameter in exactly one)."""
        named = [("input", self.input_block)] + [(f"encoder{i}", stage) for i, stage in enumerate(self.encoder)]
        for level, (up, stage) in enumerate(zip(self.up, [*self.decoder, self.output_block[0]])):
            named += [(f"up{level}", up), (f"decoder{level}", stage)]
        return named + [("output", self.output_block[1:])]

    def layer_groups(self) -> dict[str, list[str]]:
        """As the residual U-Net's; ``last2``: the last two convolutions with their BatchNorms (post-activation:
        the output block's second 3×3 conv + BN, the 1×1 conv + BN(1))."""
        return {
            "first": _parameter_names(self, [self.input_block]),
            "last": _parameter_names(self, [self.output_block]),
            "last2": _parameter_names(self, [self.output_block[0][3:], self.output_block[1:]]),
            "output": _parameter_names(self, [self.output_block[1:]]),
            "encoder": _parameter_names(self, [self.input_block, *self.encoder]),
            "decoder": _parameter_names(self, [*self.up, *self.decoder, self.output_block]),
        }


class Normalizer(nn.Module):
    """x + f(x), f = three 3×3 convolutions (16 filters, ReLU between, 1 output channel): a network with a receptive
    field of 7×7 that can only remap intensities locally, not move structures (the test-time BN-statistics paper,
    after Karani et al.). The last convolution starts at zero, so a new normalizer is the identity."""

    def __init__(self, channels: int = 1, filters: int = 16, dims: int = 2):
        super().__init__()
        conv = _LAYERS[dims][0]
        self.body = nn.Sequential(conv(channels, filters, 3, padding=1), nn.ReLU(inplace=True),
                                  conv(filters, filters, 3, padding=1), nn.ReLU(inplace=True),
                                  conv(filters, channels, 3, padding=1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x):
        return x + self.body(x)


def _with_normalizer(base: type[nn.Module]) -> type[nn.Module]:
    """``base`` with a ``Normalizer`` in front, trained jointly with it on the source (the network's parameters are
    ``network.*``, the normalizer's ``normalizer.*``); its layer groups are the base's, the normalizer counted in
    ``encoder`` and on its own as ``normalizer``."""

    class WithNormalizer(nn.Module):
        levels, dims = base.levels, base.dims

        def __init__(self, in_channels: int = 1, **options):
            super().__init__()
            self.normalizer = Normalizer(in_channels, dims=base.dims)
            self.network = base(in_channels=in_channels, **options)
            self.stride, self.levels = self.network.stride, self.network.levels

        @property
        def window(self):
            return getattr(self.network, "window", None)

        @window.setter
        def window(self, value):
            self.network.window = value

        def forward(self, x):
            return self.network(self.normalizer(x))

        def blocks(self) -> list[tuple[str, nn.Module]]:
            return [("normalizer", self.normalizer), *self.network.blocks()]

        def layer_groups(self) -> dict[str, list[str]]:
            groups = {k: [f"network.{n}" for n in v] for k, v in self.network.layer_groups().items()}
            normalizer = [f"normalizer.{n}" for n, _ in self.normalizer.named_parameters()]
            return {**groups, "encoder": normalizer + groups["encoder"], "normalizer": normalizer}

    WithNormalizer.__name__ = WithNormalizer.__qualname__ = f"{base.__name__}WithNormalizer"
    return WithNormalizer


for _name, _base in list(_MODELS.items()):
    _MODELS[_name + NORMALIZED] = _with_normalizer(_base)


def base_name(arch: str) -> str:
    """The network a variant is built on: ``unet2d_residual`` for ``unet2d_residual_spottune``."""
    return arch.removesuffix(SPOTTUNE)


class _BasicBlock(nn.Module):
    """ResNet's basic block (two 3×3 conv + BN, a 1×1 projection when the shape changes)."""

    def __init__(self, cin: int, cout: int, stride: int, dims: int = 2):
        super().__init__()
        conv, norm, _ = _LAYERS[dims]
        self.body = nn.Sequential(conv(cin, cout, 3, stride, 1, bias=False), norm(cout), nn.ReLU(inplace=True),
                                  conv(cout, cout, 3, 1, 1, bias=False), norm(cout))
        self.shortcut = (nn.Sequential(conv(cin, cout, 1, stride, bias=False), norm(cout))
                         if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        return torch.relu(self.body(x) + self.shortcut(x))


class PolicyNetwork(nn.Module):
    """SpotTune's agent as in the SpotTUnet code: a 3×3 conv (32) and three stride-2 basic blocks (64, 128, 256),
    average-pooled, a linear layer to two logits per gated block (index 0: the frozen block, 1: the fine-tuned one)."""

    def __init__(self, n_blocks: int, in_channels: int = 1, dims: int = 2):
        super().__init__()
        self.n_blocks = n_blocks
        conv, norm, _ = _LAYERS[dims]
        pool = nn.AdaptiveAvgPool3d if dims == 3 else nn.AdaptiveAvgPool2d
        self.body = nn.Sequential(conv(in_channels, 32, 3, padding=1, bias=False), norm(32), nn.ReLU(inplace=True),
                                  _BasicBlock(32, 64, 2, dims), _BasicBlock(64, 128, 2, dims),
                                  _BasicBlock(128, 256, 2, dims), pool(1), nn.Flatten())
        self.logits = nn.Linear(256, 2 * n_blocks)

    def forward(self, x):
        return self.logits(self.body(x)).view(-1, self.n_blocks, 2)


class _Gate:
    """Forward hook of one block of a SpotTune network: the sample-wise mix of the block's output (fine-tuned copy)
    and its frozen counterpart's on the same input, by the gates of the network's current forward pass."""

    def __init__(self, network: nn.Module, index: int, frozen_block: nn.Module):
        self.network, self.index, self.frozen_block = network, index, frozen_block

    def __call__(self, module, args, output):
        gates = self.network.gates
        if gates is None:
            return None
        g = gates[:, self.index].view(-1, *[1] * (output.dim() - 1)).to(output.dtype)
        return g * output + (1 - g) * self.frozen_block(*args)


def _with_spottune(base: type[nn.Module]) -> type[nn.Module]:
    """``base`` as SpotTune trains it (Guo et al. 2019; the SpotTUnet code): every block of ``blocks()`` runs, per
    slice, either as fine-tuned (the network's own parameters, under the base's names, so its weights compare with
    the source model's) or as its frozen copy (``frozen.*``), as a policy network (``policy.*``) decides from the
    input slice: hard Gumbel-softmax choices (straight-through) at ``temperature`` in training, the argmax without
    noise in eval mode. ``gates`` holds the last pass's choices (B, blocks): 1 = fine-tuned."""

    class SpotTune(base):
        def __init__(self, in_channels: int = 1, **options):
            super().__init__(in_channels=in_channels, **options)
            self.frozen = base(in_channels=in_channels, **options).requires_grad_(False)
            blocks = super().blocks()
            self.policy = PolicyNetwork(len(blocks), in_channels, dims=base.dims)
            self.temperature = 0.1
            self.gates: torch.Tensor | None = None
            for index, ((_, block), (_, frozen_block)) in enumerate(zip(blocks, self.frozen.blocks(), strict=True)):
                block.register_forward_hook(_Gate(self, index, frozen_block))

        def forward(self, x):
            logits = self.policy(x)
            if self.training:
                choice = nn.functional.gumbel_softmax(logits, tau=self.temperature, hard=True)
            else:
                choice = nn.functional.one_hot(logits.argmax(-1), 2).to(logits.dtype)
            self.gates = choice[..., 1]
            return super().forward(x)

    SpotTune.__name__ = SpotTune.__qualname__ = f"{base.__name__}SpotTune"
    return SpotTune


for _name, _base in [(n, b) for n, b in _MODELS.items() if not n.endswith(NORMALIZED)]:
    _MODELS[_name + SPOTTUNE] = _with_spottune(_base)


# The workflow plans with mrishift.models.architectures (no torch); every class registered here must agree with it.
if names() != architectures.names() or any((cls.dims, cls.levels) != (dims(n), default_levels(n))
                                           for n, cls in _MODELS.items()):
    raise RuntimeError("mrishift.models.networks and mrishift.models.architectures disagree on the registered "
                       "networks, their dimensions or their default levels")


def count(model: nn.Module, parameter_names: list[str]) -> int:
    params = dict(model.named_parameters())
    return sum(params[n].numel() for n in parameter_names)
