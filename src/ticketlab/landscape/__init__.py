"""The landscape of Theorem 1: the Hessian of the empirical risk on the mask, its extreme
eigenvalues, the convex radius around W*, and the exact population (N = infinity) reference.

Model and risk: g(x; W) = (1/K) sum_j relu(w_j . x), f(W) = 1/(2N) sum_n (g(x_n; W) - y_n)^2, over the
p kept coordinates of the mask M (W = M (.) W). Writing s_nj = 1{w_j . x_n > 0} and e_n = g(x_n; W) - y_n,

    d2f / dw_j dw_k = 1/(N K^2) sum_n s_nj s_nk x_n x_n^T  +  [j = k] 1/(N K) sum_n e_n delta(w_j . x_n) x_n x_n^T.

The second (kink) term is a sum of Dirac masses on the hyperplanes w_j . x_n = 0: it is zero almost
everywhere, infinite on the kinks, and negative wherever a kink has a negative residual, so with finite
N the ReLU risk is, strictly, convex on no ball around W*. Two Hessians are offered (docs/landscape.md):

* ``generalized`` (bandwidth = 0): the almost-everywhere Hessian, i.e. the Gauss-Newton matrix
  J^T J / N with relu' = 1{z > 0} (relu'(0) = 0, as autograd and ``engine.gradient``). It is the object
  Theorem 1 bounds; it is positive semi-definite everywhere, so on its own it never ends a convex ball.
* ``smoothed`` (bandwidth h > 0): adds the kink term with delta(w_j . x) replaced by a Gaussian of
  width h in the normalized pre-activation u = w_j . x / |w_j| (which is N(0, 1) under the data), i.e.
  delta(w_j . x) ~ phi(u / h) / (h |w_j|). As N -> infinity then h -> 0 it tends to the Hessian of the
  population risk, which *does* lose convexity at a finite distance from W*; at finite N it counts the
  negative curvature of the kinks seen at resolution h. This one defines the convex radius by default.

Eigenvalues: dense ``eigvalsh`` of the p x p matrix when p <= ``dense_max``; otherwise Lanczos
(``scipy.sparse.linalg.eigsh``) on Hessian-vector products in closed form, O(N d K) each, never
forming the matrix.

The package splits along its three ideas: ``empirical`` (the Hessian of the empirical risk and its
extreme eigenvalues), ``population`` (the exact N = infinity Hessian) and ``study`` (points around W*,
the convex radius, and the per-trial driver ``analyze_trials``). Everything is importable from here.
"""
from __future__ import annotations

from ..population import population_risk  # re-exported: the exact N = infinity risk and gradient
from .empirical import DENSE_MAX, extreme_eigenvalues, hessian_on_mask, hvp_on_mask, kept_index
from .population import pair_block, population_extremes, population_hessian, population_hessian_at, population_hvp
from .study import LANDSCAPE_STREAM, analyze, analyze_trials, check_radius_grid, convex_radius, perturbations

__all__ = [
    "DENSE_MAX", "LANDSCAPE_STREAM", "analyze", "analyze_trials", "check_radius_grid", "convex_radius",
    "extreme_eigenvalues", "hessian_on_mask", "hvp_on_mask", "kept_index", "pair_block", "perturbations",
    "population_hessian", "population_extremes", "population_hessian_at", "population_hvp", "population_risk",
]
