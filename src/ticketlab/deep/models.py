"""The networks of Figures 11-12 and a deep pruned oracle, as plain ``torch.nn.Module``s.

Prunable weights are the ``.weight`` of every ``nn.Linear`` and ``nn.Conv2d`` (not biases, not
batch-norm); ``prunable(model)`` lists them in module order and the last one is the output layer.
Masks live outside the model (see ``deep.train``), so a checkpoint loads into a fresh model of the
same architecture with ``load_state_dict``.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import bad_value

from .spec import INITS, MODELS

#: the hidden widths of ``mlp`` when none are given
MLP_WIDTHS = (64, 32)

__all__ = [
    "prunable", "output_layer", "LeNet300100", "LeNet5", "CifarResNet", "MLP", "build_model", "reinitialize",
    "init_model", "seeded", "MLP_WIDTHS",
]


def _refuse_torch_pruned(model: nn.Module) -> None:
    for name, m in model.named_modules():
        orig = [p[:-5] for p, _ in m.named_parameters(recurse=False) if p.endswith("_orig")]
        if orig:
            where = f"{name}.{orig[0]}" if name else orig[0]
            raise bad_value("model", "must be a module without torch.nn.utils.prune masks", type(model).__name__,
                            hint=f"{where!r} is already pruned by torch.nn.utils.prune (it has {orig[0]}_orig and a "
                            f"mask hook); call torch.nn.utils.prune.remove(module, {orig[0]!r}) first, or pass the "
                            "unpruned module; its mask can be given back with ticketlab.deep.imp.to_torch_prune")


def prunable(model: nn.Module, select: str | None = None) -> dict[str, torch.nn.Parameter]:
    """name -> weight to prune, in module order (the last is the output layer).

    ``select`` None: the ``.weight`` of every Linear/Conv2d. Otherwise comma-separated items, each a
    module type name (``Linear``, ``Conv2d``, any class name in the model: that module's ``weight``)
    or a glob over parameter names (``features.*``, ``fc?.weight``). A module already pruned by
    ``torch.nn.utils.prune`` (``weight_orig``) is refused: its ``weight`` is not a leaf, so masking
    its gradient would silently do nothing.
    """
    _refuse_torch_pruned(model)
    if select is None:
        return {f"{name}.weight" if name else "weight": m.weight for name, m in model.named_modules()
                if isinstance(m, (nn.Linear, nn.Conv2d))}
    import fnmatch

    items = [s.strip() for s in select.split(",") if s.strip()]
    types = {type(m).__name__ for m in model.modules()}
    out = {}
    for name, m in model.named_modules():
        for pname, p in m.named_parameters(recurse=False):
            full = f"{name}.{pname}" if name else pname
            by_type = pname == "weight" and type(m).__name__ in items
            if by_type or any(fnmatch.fnmatchcase(full, it) for it in items if it not in types):
                out[full] = p
    if not out:
        raise bad_value("params", "must select at least one parameter", select,
                        hint=f"module types here: {', '.join(sorted(types))}; names like "
                        f"{', '.join(n for n, _ in list(model.named_parameters())[:3])}")
    return out


def output_layer(model: nn.Module) -> str:
    """The name of the output layer's weight: the last prunable parameter (pruned at its own rate)."""
    return list(prunable(model))[-1]


class LeNet300100(nn.Module):
    """Fully connected 300-100 network (LeCun et al. 1998; LTH's LeNet)."""

    def __init__(self, in_shape=(1, 28, 28), num_classes: int = 10):
        super().__init__()
        n_in = 1
        for s in in_shape:
            n_in *= s
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(n_in, 300), nn.ReLU(), nn.Linear(300, 100), nn.ReLU(),
                                 nn.Linear(100, num_classes))

    def forward(self, x):
        return self.net(x)


class LeNet5(nn.Module):
    """LeNet-5: conv5(6)-pool-conv5(16)-pool-fc120-fc84-fc, ReLU and max-pool.

    conv1 pads by 2 (28x28 -> 28x28, as in the classic net on 32x32); conv2 is unpadded when the map
    is large enough (28x28 input: 16x5x5 = 400 features, the classic size) and padded by 2 on small
    inputs (8x8 digits: 16x2x2 = 64 features).
    """

    def __init__(self, in_shape=(1, 28, 28), num_classes: int = 10):
        super().__init__()
        c, h, w = in_shape
        pad2 = 0 if min(h, w) // 2 >= 10 else 2
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=pad2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        with torch.no_grad():
            n_feat = self.features(torch.zeros(1, c, h, w)).shape[1]
        self.classifier = nn.Sequential(nn.Linear(n_feat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                                        nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, c_in, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c, 1, stride, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in, c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)
        self.conv3 = nn.Conv2d(c, 4 * c, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * c)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != 4 * c:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, 4 * c, 1, stride, bias=False), nn.BatchNorm2d(4 * c))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        return torch.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet for 32x32 inputs: 3x3 stem at stride 1, no max-pool, 1x1-conv projection shortcuts.

    ``resnet20``: 3 stages x 3 basic blocks, 16/32/64 channels (He et al. 2016, Sec. 4.2).
    ``resnet50``: bottleneck stages [3, 4, 6, 3], 64..512 (x4) channels, the usual CIFAR variant.
    """

    def __init__(self, block, stages, widths, in_shape=(3, 32, 32), num_classes: int = 10):
        super().__init__()
        c0 = widths[0]
        self.stem = nn.Sequential(nn.Conv2d(in_shape[0], c0, 3, 1, 1, bias=False), nn.BatchNorm2d(c0), nn.ReLU())
        layers, c_in = [], c0
        for i, (n, c) in enumerate(zip(stages, widths)):
            for j in range(n):
                layers.append(block(c_in, c, 2 if (j == 0 and i > 0) else 1))
                c_in = c * block.expansion
        self.layers = nn.Sequential(*layers)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x):
        return self.fc(self.pool(self.layers(self.stem(x))))


class MLP(nn.Module):
    """ReLU MLP widths[0] -> ... -> widths[-1]; the deep oracle's teacher and student."""

    def __init__(self, widths, bias: bool = False):
        super().__init__()
        mods = []
        for i in range(len(widths) - 1):
            mods.append(nn.Linear(widths[i], widths[i + 1], bias=bias))
            if i < len(widths) - 2:
                mods.append(nn.ReLU())
        self.net = nn.Sequential(*mods)

    def forward(self, x):
        return self.net(x.flatten(1))


def build_model(name: str, in_shape=(1, 28, 28), num_classes: int = 10, widths=None) -> nn.Module:
    """A fresh model by name (``MODELS``); ``in_shape`` (C, H, W) and ``num_classes`` from the data.

    For ``mlp``, ``widths`` are the hidden widths (input and output widths come from the data).
    Weights are PyTorch's default init drawn from the global RNG: seed through ``init_model``.
    """
    in_shape = tuple(in_shape)
    if name == "lenet300":
        return LeNet300100(in_shape, num_classes)
    if name == "lenet5":
        if len(in_shape) != 3:
            raise bad_value("model", f"must fit the input shape {in_shape}", name, hint="lenet5 needs images (C, H, W)")
        return LeNet5(in_shape, num_classes)
    if name in ("resnet20", "resnet50"):
        if len(in_shape) != 3 or min(in_shape[1:]) < 8:
            raise bad_value("model", f"must fit the input shape {in_shape}", name,
                            hint=f"{name} needs images (C, H, W), H, W >= 8")
        if name == "resnet20":
            return CifarResNet(_Basic, (3, 3, 3), (16, 32, 64), in_shape, num_classes)
        return CifarResNet(_Bottleneck, (3, 4, 6, 3), (64, 128, 256, 512), in_shape, num_classes)
    if name == "mlp":
        n_in = 1
        for s in in_shape:
            n_in *= s
        return MLP([n_in, *(widths or MLP_WIDTHS), num_classes])
    raise bad_value("model", f"must be one of {', '.join(MODELS)}", name)



def reinitialize(model: nn.Module, init: str) -> nn.Module:
    """Apply ``init`` in place from the global RNG: 'pytorch' keeps the modules' own default init;
    'kaiming_normal' redraws every Linear/Conv2d weight from N(0, 2 / fan_in) (He et al. 2015, OpenLTH's
    default), biases and batch-norm keeping PyTorch's init."""
    if init not in INITS:
        raise bad_value("init", f"must be one of {', '.join(INITS)}", init)
    if init == "kaiming_normal":
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, (nn.Linear, nn.Conv2d)):
                    nn.init.kaiming_normal_(m.weight)
    return model


def init_model(name: str, seed: int, init: str = "pytorch", **kw) -> nn.Module:
    """``build_model`` with its weights drawn under ``torch.random.fork_rng`` seeded by ``seed``
    (``init``: see ``reinitialize``).

    Built on the CPU in float32 so the same seed gives the same weights on every device; move it
    with ``.to(device, dtype)`` afterwards. The global RNG is left as it was.
    """
    return seeded(lambda: build_model(name, **kw), seed, init)


def seeded(factory, seed: int, init: str = "pytorch") -> nn.Module:
    """``factory()`` (any callable returning an nn.Module) with its init drawn from ``seed``, on the CPU,
    leaving the global RNG as it was; then ``reinitialize(model, init)`` under the same seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = factory()
        if not isinstance(model, nn.Module):
            raise bad_value("factory", "must return an nn.Module", factory, hint=f"it returned {type(model).__name__}")
        return reinitialize(model, init)
