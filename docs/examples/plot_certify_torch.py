"""
Certifying a PyTorch model
==========================

``pylip.certify`` takes a feed-forward ``torch.nn.Sequential`` directly: it
reads the float32 weights exactly and the slope sector from the activation
modules (here LeakyReLU with slope 0.1: sector [0.1, 1]). The histogram shows
the Jacobian norms of the model at random inputs, all below the bound.
"""

import matplotlib.pyplot as plt
import numpy as np
import torch

import pylip
from pylip.models import network_from_torch

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(4, 32), torch.nn.LeakyReLU(0.1), torch.nn.Linear(32, 2)
)
certificate = pylip.certify(model)
print(certificate.summary())

# the same bound from the weights themselves
network = network_from_torch(model)
same = pylip.certify(network.weights, alpha=0.1, beta=1.0)
print(f"from the weights: L = {same.bound:.6g} (identical: {same.bound == certificate.bound})")

inputs = torch.randn(500, 4)
norms = [np.linalg.norm(torch.autograd.functional.jacobian(model, x).numpy(), 2) for x in inputs]

fig, ax = plt.subplots(figsize=(6, 4))
ax.hist(norms, bins=30, label="Jacobian norm at random inputs")
ax.axvline(certificate.bound, color="k", linestyle="--", label=f"certified bound {certificate.bound:.3f}")
trivial = certificate.trivial_bound
ax.axvline(trivial, color="r", linestyle=":", label=f"trivial bound {trivial:.3f}")
ax.set_xlabel("spectral norm")
ax.legend()
fig.tight_layout()
