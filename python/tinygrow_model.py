"""Rebuilds a TinyGrow model in PyTorch.

A TinyGrow run folder holds model.json (the architecture: blocks, their kinds and current widths,
the input shape, the classes) and model.pt (the weights and BatchNorm buffers as a PyTorch state
dict). This file (copied into every run folder) turns them back into a torch.nn.Module:

    import torch, sys
    sys.path.insert(0, "runs/<run-id>")
    from tinygrow_model import load
    model = load("runs/<run-id>")          # eval mode, on the CPU
    logits = model(images)                 # images: [N, C, H, W] (or [N, features])

or from a shell: python3 runs/<run-id>/tinygrow_model.py runs/<run-id>   (prints the model).

The module paths below are the state dict's names (TinyGrow's PyTorchExport.stateNames writes
them); load_state_dict(strict=True) checks every name and shape. Needs only torch (1.13 or newer).
"""
import json
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "selu": nn.SELU, "gelu": nn.GELU, "identity": nn.Identity}


def _activation(name):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (known: {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


def _conv_size(size, kernel, stride, padding, dilation):
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def _padding(layer):
    return layer["Padding"] if layer["Padding"] >= 0 else layer["Dilation"] * (layer["Kernel"] - 1) // 2


class MlpBlock(nn.Module):
    """"mlp": dense → σ → dense → … → dense (one output per class)."""

    def __init__(self, spec, in_shape, classes):
        super().__init__()
        hidden = spec["Layers"]
        width = 1
        for d in in_shape:
            width *= d
        layers, self.activations = [], nn.ModuleList()
        for layer in hidden:
            layers.append(nn.Linear(width, layer["Width"], bias=layer["Bias"]))
            self.activations.append(_activation(layer["Activation"]))
            width = layer["Width"]
        layers.append(nn.Linear(width, classes, bias=spec["OutputBias"]))
        self.layers = nn.ModuleList(layers)
        self.out_shape = [classes]

    def forward(self, x):
        if x.dim() > 2:
            x = x.flatten(1)
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.activations):
                x = self.activations[i](x)
        return x


class ConvStage(nn.Module):
    """conv → (BatchNorm) → σ → pool (none, max2, avg2)."""

    def __init__(self, layer, in_channels):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, layer["Width"], layer["Kernel"], stride=layer["Stride"],
                              padding=_padding(layer), dilation=layer["Dilation"],
                              bias=layer["Bias"] and not layer["BatchNorm"])
        if layer["BatchNorm"]:
            self.bn = nn.BatchNorm2d(layer["Width"], eps=1e-5, momentum=0.1)
        self.act = _activation(layer["Activation"])
        self.pool = layer["Pool"]

    def forward(self, x):
        x = self.conv(x)
        if hasattr(self, "bn"):
            x = self.bn(x)
        x = self.act(x)
        if self.pool == "max2":
            x = F.max_pool2d(x, 2)
        elif self.pool == "avg2":
            x = F.avg_pool2d(x, 2)
        return x


class CnnBlock(nn.Module):
    """"cnn": conv stages, a head (gap: global average pool, flatten), dense layers, the output layer."""

    def __init__(self, spec, in_shape, classes):
        super().__init__()
        layers = spec["Layers"]
        n_conv = 0
        while n_conv < len(layers) and layers[n_conv]["Kind"].lower() == "conv":
            n_conv += 1
        c, h, w = in_shape
        stages = []
        for layer in layers[:n_conv]:
            stages.append(ConvStage(layer, c))
            p = _padding(layer)
            h = _conv_size(h, layer["Kernel"], layer["Stride"], p, layer["Dilation"])
            w = _conv_size(w, layer["Kernel"], layer["Stride"], p, layer["Dilation"])
            if layer["Pool"] != "none":
                h, w = h // 2, w // 2
            c = layer["Width"]
        self.stages = nn.ModuleList(stages)
        self.head = spec["Head"]
        width = c if self.head == "gap" else c * h * w
        dense, self.activations = [], nn.ModuleList()
        for layer in layers[n_conv:]:
            dense.append(nn.Linear(width, layer["Width"], bias=layer["Bias"]))
            self.activations.append(_activation(layer["Activation"]))
            width = layer["Width"]
        dense.append(nn.Linear(width, classes, bias=spec["OutputBias"]))
        self.dense = nn.ModuleList(dense)
        self.out_shape = [classes]

    def forward(self, x):
        for stage in self.stages:
            x = stage(x)
        x = x.mean((2, 3)) if self.head == "gap" else x.flatten(1)
        for i, layer in enumerate(self.dense):
            x = layer(x)
            if i < len(self.activations):
                x = self.activations[i](x)
        return x


class ResNetStem(nn.Module):
    """"resnet-stem": conv3×3 → BN → ReLU."""

    def __init__(self, spec, in_shape, classes):
        super().__init__()
        self.conv = nn.Conv2d(in_shape[0], spec["Channels"], 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(spec["Channels"])
        self.out_shape = [spec["Channels"], in_shape[1], in_shape[2]]

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    """"resnet-basic": conv3×3 → BN → ReLU → conv3×3 → BN, + shortcut (identity, or 1×1 conv + BN
    when the shape changes), ReLU. Its inner width (conv1's outputs) is the one TinyGrow grew."""

    def __init__(self, spec, in_shape, classes):
        super().__init__()
        c_in, channels, width, stride = in_shape[0], spec["Channels"], spec["Width"], spec["Stride"]
        self.conv1 = nn.Conv2d(c_in, width, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        if stride != 1 or c_in != channels:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, channels, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(channels))
        else:
            self.downsample = None
        self.out_shape = [channels, _conv_size(in_shape[1], 3, stride, 1, 1), _conv_size(in_shape[2], 3, stride, 1, 1)]

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        main = self.bn2(self.conv2(h))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(main + skip)


class ResNetHead(nn.Module):
    """"resnet-head": global average pool → dense (one output per class)."""

    def __init__(self, spec, in_shape, classes):
        super().__init__()
        self.fc = nn.Linear(in_shape[0], classes, bias=spec["OutputBias"])
        self.out_shape = [classes]

    def forward(self, x):
        return self.fc(x.mean((2, 3)))


BLOCKS = {"mlp": MlpBlock, "cnn": CnnBlock, "resnet-stem": ResNetStem, "resnet-basic": BasicBlock,
          "resnet-head": ResNetHead}


class TinyGrowModel(nn.Module):
    """The blocks of model.json, in order."""

    def __init__(self, architecture):
        super().__init__()
        shape = list(architecture["InputShape"])
        classes = architecture["Classes"]
        blocks = []
        for spec in architecture["Blocks"]:
            if spec["Kind"] not in BLOCKS:
                raise ValueError(f"block kind {spec['Kind']!r} has no PyTorch module here (known: {', '.join(BLOCKS)})")
            block = BLOCKS[spec["Kind"]](spec, shape, classes)
            blocks.append(block)
            shape = block.out_shape
        self.blocks = nn.ModuleList(blocks)
        self.input_shape = list(architecture["InputShape"])
        self.classes = classes

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x


def build(model_json):
    """The model of a model.json file (random weights)."""
    with open(model_json) as f:
        return TinyGrowModel(json.load(f))


def load(run_folder, map_location="cpu"):
    """The trained model of a run folder (model.json + model.pt), in eval mode."""
    model = build(os.path.join(run_folder, "model.json"))
    state = torch.load(os.path.join(run_folder, "model.pt"), map_location=map_location)
    model.load_state_dict(state, strict=True)
    return model.to(map_location).eval()


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    m = load(folder)
    print(m)
    print(f"input shape {m.input_shape}, {m.classes} classes, "
          f"{sum(p.numel() for p in m.parameters())} parameters")
