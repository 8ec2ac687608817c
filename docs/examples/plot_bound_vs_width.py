"""
Certified bound, sampled lower bound and trivial bound
======================================================

For random one-hidden-layer tanh networks of growing width, the LipSDP-Neuron
certificate (Theorem 1) lies between the largest Jacobian norm found by
sampling (a lower bound on the Lipschitz constant) and the product of the
weights' spectral norms (the trivial bound).
"""

import matplotlib.pyplot as plt
import numpy as np

import pylip

rng = np.random.default_rng(0)
widths = [2, 4, 8, 16, 32, 64]
certified, sampled, trivial = [], [], []
for width in widths:
    weights = [rng.standard_normal((width, 3)) / np.sqrt(3),
               rng.standard_normal((2, width)) / np.sqrt(width)]
    certificate = pylip.certify(weights)
    certified.append(certificate.bound)
    trivial.append(certificate.trivial_bound)
    sampled.append(pylip.sampled_lower_bound(weights, n_samples=2000, rng=0))
    print(f"width {width:3d}: sampled {sampled[-1]:.4f} <= certified {certified[-1]:.4f} "
          f"<= trivial {trivial[-1]:.4f}  ({certificate.proof_method} proof)")

fig, ax = plt.subplots(figsize=(6, 4))
ax.plot(widths, trivial, "s--", label="trivial bound (product of norms)")
ax.plot(widths, certified, "o-", label="certified (LipSDP-Neuron)")
ax.plot(widths, sampled, "^:", label="sampled lower bound")
ax.set_xscale("log", base=2)
ax.set_xlabel("hidden neurons")
ax.set_ylabel("Lipschitz bound")
ax.legend()
fig.tight_layout()
