"""The multi-layer Lipschitz step's LMI with ``T`` fixed, as its structured solvers see it.

With ``T = diag(t)`` fixed, the step (10b) of :class:`pylip.deep_admm.DeepLipschitzStep`
(divided by ``rho``) reads

    min  c s + 1/2 sum_k ||W_k - G_k||^2   s.t.  S(s, W) := -M(s, W) - eps I >= 0,

``s = L^2``, ``G_k = W_k + Y_k/rho``, ``c = mu/rho`` (regularize, eq. 9) or ``s = L_des^2``
fixed and no ``c s`` (enforce, eq. 12). ``S`` is block tridiagonal over the layers: its
diagonal is ``D(s) = diag((s - eps) 1_{n_0}, 2 t - eps, (1 - eps) 1_{n_y})`` and its block
``(k+1, k)`` is ``-diag(coef_k) W_k`` with ``coef_k = beta t_{k+1}`` (1 for the output layer).
:class:`StepLmi` holds that structure for :mod:`pylip.admm.deep_fast_step` and
:mod:`pylip.admm.deep_dual_step`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import numpy as np

from ..validation import as_step_multiplier, as_step_settings

Lmi = TypeVar("Lmi", bound="StepLmi")


class StepLmi:
    """The step's targets, its LMI's blocks and coefficients, and its objective."""

    def __init__(
        self,
        targets: Sequence[np.ndarray],
        t: np.ndarray,
        beta: float,
        margin: float,
        mu_over_rho: float | None,
        squared_bound: float | None,
    ) -> None:
        self.targets = [np.asarray(g, dtype=np.float64) for g in targets]
        sizes = [self.targets[0].shape[1], *(g.shape[0] for g in self.targets)]
        self.sizes = sizes
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.blocks = [slice(int(self.offsets[k]), int(self.offsets[k + 1])) for k in range(len(sizes))]
        self.size = int(self.offsets[-1])
        hidden = np.asarray(t, dtype=np.float64)
        cuts = np.cumsum(sizes[1:-1])[:-1]
        self.coefficients = [beta * part for part in np.split(hidden, cuts)] + [np.ones(sizes[-1])]
        self.fixed_diagonal = np.concatenate([2.0 * hidden, np.ones(sizes[-1])]) - margin
        self.beta = beta
        self.margin = margin
        self.cap = mu_over_rho  # None in the enforce mode
        self.squared_bound = squared_bound
        self.n_in = sizes[0]

    @classmethod
    def checked(
        cls: type[Lmi],
        targets: Sequence[np.ndarray],
        t: np.ndarray,
        mode: str,
        beta: float,
        mu_over_rho: float | None,
        squared_bound: float | None,
        margin: float,
    ) -> Lmi:
        """The structure of a step whose settings are checked (:func:`pylip.validation.as_step_settings`)."""
        beta, margin, cap, squared = as_step_settings(
            mode, beta=beta, margin=margin, mu_over_rho=mu_over_rho, squared_bound=squared_bound
        )
        n_hidden = sum(np.asarray(g).shape[0] for g in targets[:-1])
        return cls(targets, as_step_multiplier(t, n_hidden, margin), beta, margin, cap, squared)

    def objective(self, W: Sequence[np.ndarray], squared: float) -> float:
        proximity = 0.5 * sum(float(np.sum((w - g) ** 2)) for w, g in zip(W, self.targets))
        return proximity + (0.0 if self.cap is None else self.cap * squared)

    def diagonal(self, squared: float) -> np.ndarray:
        """The diagonal ``D(s)`` of ``S``."""
        return np.concatenate([np.full(self.n_in, squared - self.margin), self.fixed_diagonal])

    def slack(self, W: Sequence[np.ndarray], squared: float) -> np.ndarray:
        """``S(s, W)`` as a dense ``N x N`` matrix."""
        S = np.zeros((self.size, self.size))
        S[np.diag_indices(self.size)] = self.diagonal(squared)
        for k, w in enumerate(W):
            block = -self.coefficients[k][:, None] * w
            S[self.blocks[k + 1], self.blocks[k]] = block
            S[self.blocks[k], self.blocks[k + 1]] = block.T
        return S
