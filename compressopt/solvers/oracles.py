"""Loss oracles for small problems without a deep-learning framework.

Array-API implementations (numpy, or torch tensors on any device) of losses whose L step can
be solved exactly or to high accuracy, for testing coordinators against brute force and
convex solvers and for users who compress linear models. Parameters are a one-entry mapping
``{name: w}`` with ``w`` of shape (n,).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from compressopt._array import Array, array_namespace, check_finite
from compressopt.errors import ShapeMismatchError, UnsupportedDTypeError
from compressopt.tree import Params

__all__ = ["LeastSquares", "LogisticRegression"]


def _check_design(A: Array, b: Array) -> None:
    check_finite(A, "A")
    check_finite(b, "b")
    if len(A.shape) != 2 or tuple(b.shape) != (A.shape[0],):
        raise ShapeMismatchError(
            "expected A of shape (m, n) and b of shape (m,), "
            f"got {tuple(A.shape)} and {tuple(b.shape)}"
        )


def _param(w: Params, name: str, design: Array, what: str = "w") -> Array:
    """``w[name]``, checked: the one name of the oracle, shape ``(n,)``, the design's dtype.

    Raises
    ------
    TypeError
        `w` is not a mapping.
    ShapeMismatchError
        `w` does not hold exactly the oracle's one parameter name, or it has another shape.
    UnsupportedDTypeError
        Its dtype is not the design matrix's.
    """
    if not isinstance(w, Mapping):
        raise TypeError(f"{what} must be a mapping name -> array, got {type(w).__name__}")
    if set(w) != {name}:
        raise ShapeMismatchError(
            f"{what} must hold exactly the oracle's parameter {name!r}, got names "
            f"{sorted(map(str, w))} (set the oracle's name= or rename the parameter)")
    x = w[name]
    n = design.shape[1]
    if tuple(getattr(x, "shape", ())) != (n,):
        raise ShapeMismatchError(f"{what}[{name!r}] must have shape ({n},), got "
                                 f"{tuple(getattr(x, 'shape', ()))}")
    if x.dtype != design.dtype:
        raise UnsupportedDTypeError(f"{what}[{name!r}] has dtype {x.dtype}, the oracle's data "
                                    f"{design.dtype}: use one dtype")
    return x


@dataclass(frozen=True, eq=False)
class LeastSquares:
    """L(w) = ½ ||A w - b||², with an exact L step.

    The L step solves the normal equations ``(AᵀA + μI) v = Aᵀb + μ c`` (n × n, O(n³) per
    call; ``AᵀA`` and ``Aᵀb`` are formed once).

    Parameters
    ----------
    A : array (m, n), b : array (m,)
        Real floating, finite, one library and device.
    name : key of the parameter in the mapping.

    Raises
    ------
    ShapeMismatchError, NonFiniteError, UnsupportedDTypeError
    """

    A: Array
    b: Array
    name: str = "w"

    def __post_init__(self) -> None:
        _check_design(self.A, self.b)

    @cached_property
    def _gram(self) -> tuple[Array, Array]:
        xp = array_namespace(self.A)
        return self.A.T @ self.A, xp.matmul(self.A.T, self.b)

    def _w(self, w: Params) -> Array:
        return _param(w, self.name, self.A)

    def check_params(self, w: Params) -> None:
        """Raise unless `w` is ``{name: array of shape (n,)}`` in A's dtype (see ``_param``);
        the coordinators call it before any work."""
        _param(w, self.name, self.A)

    def value(self, w: Params) -> float:
        xp = array_namespace(self.A)
        r = self.A @ self._w(w) - self.b
        return 0.5 * float(xp.sum(r * r))

    def grad(self, w: Params) -> dict[str, Array]:
        return {self.name: self.A.T @ (self.A @ self._w(w) - self.b)}

    def lstep(self, w: Params, center: Params, mu: float, *, step: int = 0) -> dict[str, Array]:
        xp = array_namespace(self.A)
        G, Atb = self._gram
        n = G.shape[0]
        M = G + mu * xp.eye(n, dtype=G.dtype, device=G.device)
        rhs = Atb + mu * _param(center, self.name, self.A, "center")
        return {self.name: xp.linalg.solve(M, rhs[:, None])[:, 0]}

    def retrain(self, w: Params, mask: Params, *, steps: int | None = None) -> dict[str, Array]:
        """Exact least squares on the support: ``min ||A v - b||² s.t. v = 0 off mask``.

        Solves ``(D AᵀA D + I - D) v = D Aᵀb`` with ``D = diag(mask)`` (no data-dependent
        shapes; O(n³)). `w` and `steps` are not needed (the solve is exact).
        """
        xp = array_namespace(self.A)
        G, Atb = self._gram
        d = xp.astype(mask[self.name], G.dtype)
        M = d[:, None] * G * d[None, :] + xp.eye(G.shape[0], dtype=G.dtype, device=G.device)
        M = M - xp.eye(G.shape[0], dtype=G.dtype, device=G.device) * d[None, :]
        return {self.name: xp.linalg.solve(M, (d * Atb)[:, None])[:, 0]}


@dataclass(frozen=True, eq=False)
class LogisticRegression:
    """Mean logistic loss ``L(w) = (1/m) Σ_i log(1 + exp(-y_i x_iᵀ w)) + (l2/2)||w||²``.

    Labels ``y`` in {-1, +1}. The L step minimizes ``L(v) + (μ/2)||v - c||²`` by Newton's
    method with backtracking (strongly convex for μ + l2 > 0) to a gradient norm below `tol`
    or `max_newton` iterations; each Newton step solves an n × n system. ``retrain`` runs the
    same Newton iteration on the support of a mask.

    Raises
    ------
    ShapeMismatchError, NonFiniteError, UnsupportedDTypeError
    ValueError
        Labels other than -1 and +1.
    """

    X: Array
    y: Array
    l2: float = 0.0
    name: str = "w"
    tol: float = 1e-10
    max_newton: int = 50

    def __post_init__(self) -> None:
        _check_design(self.X, self.y)
        xp = array_namespace(self.y)
        if not bool(xp.all((self.y == 1) | (self.y == -1))):
            raise ValueError("labels y must be -1 or +1")

    def _parts(self, v: Array) -> tuple[Array, Array, Array]:
        xp = array_namespace(self.X)
        m = self.X.shape[0]
        z = self.y * (self.X @ v)
        loss = xp.sum(xp.logaddexp(xp.zeros_like(z), -z)) / m
        p = xp.exp(-xp.logaddexp(xp.zeros_like(z), z))  # sigmoid(-z), stable
        g = -(self.X.T @ (self.y * p)) / m
        return loss, g, p

    def check_params(self, w: Params) -> None:
        """Raise unless `w` is ``{name: array of shape (n,)}`` in X's dtype (see ``_param``);
        the coordinators call it before any work."""
        _param(w, self.name, self.X)

    def value(self, w: Params) -> float:
        v = _param(w, self.name, self.X)
        loss, _, _ = self._parts(v)
        xp = array_namespace(v)
        return float(loss) + 0.5 * self.l2 * float(xp.sum(v * v))

    def grad(self, w: Params) -> dict[str, Array]:
        v = _param(w, self.name, self.X)
        _, g, _ = self._parts(v)
        return {self.name: g + self.l2 * v}

    def lstep(self, w: Params, center: Params, mu: float, *, step: int = 0) -> dict[str, Array]:
        return {self.name: self._newton(_param(w, self.name, self.X),
                                        _param(center, self.name, self.X, "center"), mu, None)}

    def retrain(self, w: Params, mask: Params, *, steps: int | None = None) -> dict[str, Array]:
        """Minimize L(v) with ``v = 0`` off `mask` by Newton's method restricted to the support."""
        xp = array_namespace(self.X)
        d = xp.astype(mask[self.name], self.X.dtype)
        return {self.name: self._newton(w[self.name] * d, w[self.name] * 0, 0.0, d)}

    def _newton(self, v: Array, c: Array, mu: float, d: Array | None) -> Array:
        """Newton's method on ``L(v) + (mu/2)||v - c||²``, over the support ``d`` if given."""
        xp = array_namespace(self.X)
        m, n = self.X.shape
        reg = mu + self.l2
        eye = xp.eye(n, dtype=self.X.dtype, device=self.X.device)

        def obj(u: Array) -> tuple[float, Array, Array]:
            loss, g, p = self._parts(u)
            e = u - c
            f = float(loss) + 0.5 * self.l2 * float(xp.sum(u * u)) + 0.5 * mu * float(xp.sum(e * e))
            g = g + self.l2 * u + mu * e
            return f, (g if d is None else g * d), p

        f, g, p = obj(v)
        for _ in range(self.max_newton):
            if math.sqrt(float(xp.sum(g * g))) <= self.tol:
                break
            h = p * (1 - p) / m  # Hessian of the mean logistic loss: Xᵀ diag(h) X
            H = self.X.T @ (h[:, None] * self.X) + reg * eye
            if d is not None:  # restrict to the support: identity on the fixed zeros
                H = d[:, None] * H * d[None, :] + eye - eye * d[None, :]
            step = -xp.linalg.solve(H, g[:, None])[:, 0]
            t, slope = 1.0, float(xp.sum(g * step))
            while True:  # Armijo backtracking
                f_new, g_new, p_new = obj(v + t * step)
                if f_new <= f + 1e-4 * t * slope or t < 1e-12:
                    break
                t /= 2
            v, f, g, p = v + t * step, f_new, g_new, p_new
        return v
