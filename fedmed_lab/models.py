"""Models with analytic loss and gradient; parameters are one flat vector.

Both models are stateless: a model object carries only its hyperparameters, and
every method takes the parameter vector explicitly, which is what travels
between a site and the coordinator.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_non_negative_float, check_positive_int


def _check_data(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2:
        raise ValueError(f"X must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y must have shape ({X.shape[0]},) to match X, got shape {y.shape}")
    return X, y


@dataclass(frozen=True)
class LinearRegression:
    """Linear regression with mean squared error, ``L(w) = mean((X w - y)^2)``.

    Parameters are the ``d`` weights, without an intercept, as in the chapter 1
    experiment. The gradient is ``(2 / n) X^T (X w - y)``.
    """

    def num_parameters(self, num_features: int) -> int:
        return check_positive_int(num_features, "num_features")

    def initial_parameters(self, num_features: int) -> np.ndarray:
        return np.zeros(self.num_parameters(num_features))

    def predict(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=float) @ params

    def loss(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        X, y = _check_data(X, y)
        residual = X @ params - y
        return float(np.mean(residual**2))

    def gradient(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, y = _check_data(X, y)
        residual = X @ params - y
        return (2.0 / X.shape[0]) * (X.T @ residual)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Compute the logistic function without overflow for large ``|z|``."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    exp_z = np.exp(z[~positive])
    out[~positive] = exp_z / (1.0 + exp_z)
    return out


@dataclass(frozen=True)
class LogisticRegression:
    """Logistic regression with intercept and binary cross-entropy.

    The parameter vector has ``d + 1`` entries: the ``d`` weights, then the
    intercept. ``l2`` adds ``(l2 / 2) * ||weights||^2`` (the intercept is not
    penalised). The gradient of the mean cross-entropy is
    ``X^T (p - y) / n`` for the weights and ``mean(p - y)`` for the intercept.
    """

    l2: float = 0.0

    def __post_init__(self) -> None:
        check_non_negative_float(self.l2, "l2")

    def num_parameters(self, num_features: int) -> int:
        return check_positive_int(num_features, "num_features") + 1

    def initial_parameters(self, num_features: int) -> np.ndarray:
        return np.zeros(self.num_parameters(num_features))

    def decision_function(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if params.shape != (X.shape[1] + 1,):
            raise ValueError(
                f"params must have shape ({X.shape[1] + 1},) for {X.shape[1]} features plus the intercept, "
                f"got shape {params.shape}"
            )
        return X @ params[:-1] + params[-1]

    def predict_proba(self, params: np.ndarray, X: np.ndarray) -> np.ndarray:
        """Return the predicted probability of the positive class, shape ``(n_samples,)``."""
        return sigmoid(self.decision_function(params, X))

    def loss(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        X, y = _check_data(X, y)
        z = self.decision_function(params, X)
        # log(1 + exp(z)) - y z is the cross-entropy written in a form that never takes log(0).
        cross_entropy = np.logaddexp(0.0, z) - y * z
        penalty = 0.5 * self.l2 * float(params[:-1] @ params[:-1])
        return float(np.mean(cross_entropy)) + penalty

    def gradient(self, params: np.ndarray, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        X, y = _check_data(X, y)
        error = self.predict_proba(params, X) - y
        grad = np.empty_like(params, dtype=float)
        grad[:-1] = X.T @ error / X.shape[0] + self.l2 * params[:-1]
        grad[-1] = float(np.mean(error))
        return grad
