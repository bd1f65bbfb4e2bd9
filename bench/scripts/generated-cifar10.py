#!/usr/bin/python3
"""Writes CIFAR-10-shaped files in the official binary layout (cifar-10-batches-bin/data_batch_1..5.bin,
test_batch.bin: 10,000 records of 1 label byte + 3,072 pixel bytes, R, G then B planes of 32x32) for
timing runs where the real archive cannot be downloaded. Pixels are centred like real images
(per-channel means 125/123/114), smooth (a 4x4 grid of random levels per channel, each spread over an
8x8 blob) plus noise, with a weak label signal (a class pattern added to the blobs), so that the input
covariance is far from the identity and growth has something to find.
Usage: /usr/bin/python3 bench/scripts/generated-cifar10.py ROOT [SIGNAL]   (writes ROOT/cifar10/cifar-10-batches-bin/)
SIGNAL is the spread of the class patterns (default 12, against 40 for the blobs): 40 gives a strong
label signal that a small network learns quickly (issue 23's "network that stays small")."""
import os
import sys

import numpy as np

root = sys.argv[1] if len(sys.argv) > 1 else "/tmp/tinygrow-cifar-generated"
folder = os.path.join(root, "cifar10", "cifar-10-batches-bin")
os.makedirs(folder, exist_ok=True)
rng = np.random.default_rng(1)
means = np.array([125.0, 123.0, 114.0]).reshape(1, 3, 1, 1)
signal = float(sys.argv[2]) if len(sys.argv) > 2 else 12.0
patterns = rng.normal(0.0, signal, size=(10, 3, 4, 4))
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    labels = rng.integers(0, 10, size=10_000)
    grid = rng.normal(0.0, 40.0, size=(10_000, 3, 4, 4)) + patterns[labels]
    blobs = grid.repeat(8, axis=2).repeat(8, axis=3)
    pixels = np.clip(means + blobs + rng.normal(0.0, 15.0, size=(10_000, 3, 32, 32)), 0, 255).astype(np.uint8)
    records = np.concatenate([labels.astype(np.uint8).reshape(-1, 1), pixels.reshape(10_000, 3072)], axis=1)
    records.tofile(os.path.join(folder, name))
print(f"written: {folder}")
