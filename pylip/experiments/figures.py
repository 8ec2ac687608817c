"""Figures of an example run: the fitted curves (the paper's Fig. 1 and 2) and the courses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

STYLE = {
    "nominal": dict(color="tab:blue", label="nominal NN"),
    "L2": dict(color="tab:orange", label="L2-NN"),
    "Lip": dict(color="tab:green", label="Lipschitz-NN (W)"),
    "Lip2": dict(color="tab:red", linestyle="--", label=r"Lipschitz-NN ($\bar W$)"),
}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_fits(result: Any, path: Path) -> Path:
    """Targets and the four nets' outputs over the inputs (Fig. 1 / Fig. 2)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(result.input, result.target, "o", color="0.6", markersize=3, label="targets")
    if result.clean is not None:
        ax.plot(result.input, result.clean, color="0.3", linewidth=1, label=r"$\sin(x) + 0.5$")
    for name, net in result.nets.items():
        ax.plot(result.input, net.prediction, linewidth=1.6, **STYLE[name])
    mode = "enforced Lipschitz bound" if result.hyper.ind_Lip == 2 else "Lipschitz regularisation"
    ax.set(xlabel="x", ylabel="y", title=f"{result.example}: nominal, L2 and Lipschitz NN ({mode})")
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_courses(result: Any, path: Path) -> Path:
    """Training MSE and certified Lipschitz bound per 1,000 SGD steps, all phases."""
    plt = _pyplot()
    fig, (ax_mse, ax_L) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    offset = 0
    for phase, suffix, color in (("nominal", "", "tab:blue"), ("L2", "_L2", "tab:orange"),
                                 ("ADMM", "_Lip", "tab:green")):
        mse = np.asarray(result.courses[f"MSE_course{suffix}"], dtype=float)
        L = np.asarray(result.courses[f"L_course{suffix}"], dtype=float)
        steps = offset + np.arange(mse.size)
        ax_mse.plot(steps, mse, color=color, label=phase)
        shown = np.isfinite(L)
        ax_L.plot(steps[shown], L[shown], color=color, label=phase)
        offset += mse.size
    if result.hyper.ind_Lip == 2:
        ax_L.axhline(result.L_des, color="k", linestyle=":", linewidth=1, label=r"$L_{des}$")
    ax_mse.set(ylabel="training MSE", yscale="log", title=f"{result.example}: training courses")
    ax_L.set(
        ylabel="certified Lipschitz bound",
        xlabel="logged point (every 1,000 SGD steps of each training call; phases in sequence)",
    )
    ax_mse.legend(fontsize=8)
    ax_L.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_tradeoff(result: Any, path: Path) -> Path:
    """Robust accuracy against the l2 radius, one curve per net: certified solid, attacked dashed.

    ``result`` is a :class:`pylip.digits.DigitsResult` (or anything with
    ``nets`` carrying ``name``, ``layer_sizes``, ``clean_accuracy``,
    ``bound`` and the ``certified_accuracy`` / ``attacked_accuracy`` mappings
    from radius to accuracy). One panel per architecture (``64-32-10``, ...);
    every curve starts at ``eps = 0`` with the clean accuracy.
    """
    plt = _pyplot()
    shapes = list(dict.fromkeys(tuple(net.layer_sizes) for net in result.nets))
    fig, axes = plt.subplots(1, len(shapes), figsize=(6.2 * len(shapes), 4.6), sharey=True, squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, shape in zip(axes[0], shapes):
        for i, net in enumerate(n for n in result.nets if tuple(n.layer_sizes) == shape):
            radii = sorted(net.certified_accuracy)
            eps = [0.0, *radii]
            color = colors[i % len(colors)]
            ax.plot(eps, [net.clean_accuracy, *(net.certified_accuracy[e] for e in radii)], "-o",
                    color=color, markersize=3.5, label=f"{net.name} (L = {net.bound:.3g})")
            ax.plot(eps, [net.clean_accuracy, *(net.attacked_accuracy[e] for e in radii)], "--",
                    color=color, linewidth=1.2)
        ax.set(xlabel=r"$\ell_2$ radius $\varepsilon$ (pixels in [0, 1])",
               title="-".join(map(str, shape)), ylim=(-0.02, 1.02))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="upper right")
    axes[0][0].set_ylabel("test accuracy: certified (solid), under PGD (dashed)")
    fig.suptitle("digits: certified robust accuracy (sqrt(2) L eps margin) vs. l2 PGD attack", fontsize=11)
    return _save(fig, path)
