"""Gradient inversion: what one site's update reveals about its patients.

Three attacks, from exact to approximate:

- **Ratio attack.** For logistic regression with intercept, the gradient of
  one record's cross-entropy is ``(p - y) x`` for the weights and ``p - y``
  for the intercept, so ``x = grad_w / grad_b`` exactly, and the sign of
  ``grad_b`` gives the label (``p - y < 0`` exactly when ``y = 1``). Phong,
  Aono, Hayashi, Wang and Moriai ("Privacy-Preserving Deep Learning via
  Additively Homomorphic Encryption", IEEE TIFS 2018) pointed out this
  ratio for any neuron with a bias; iDLG (Zhao, Mopuri and Bilen, 2020,
  arXiv:2001.02610) reads the label from a gradient sign.
- **Batch ratio.** For a mean gradient over n records the same ratio is the
  error-weighted mean ``sum_i e_i x_i / sum_i e_i`` with ``e_i = p_i - y_i``.
  When every ``e_i`` is equal (zero weights, as in a first round, and one
  label for the whole batch) it is the plain mean of the records.
- **Gradient matching.** For a small two-layer network without a hidden
  bias there is no such ratio; the attacker searches for records whose
  gradient matches the observed one ("Deep Leakage from Gradients", Zhu,
  Liu and Han, NeurIPS 2019, arXiv:1906.08935), here with L-BFGS and
  the analytic derivative of the matching loss.

A scalar loss, by contrast, is one number: for a single record it fixes only
the logit ``w . x + b``, one linear constraint on d unknowns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize

from fedmed_lab._checks import check_non_negative_float, check_positive_int, check_rng
from fedmed_lab.models import LogisticRegression, sigmoid


# ---------------------------------------------------------------------------
# Logistic regression: exact reconstruction from the weight/intercept ratio.
# ---------------------------------------------------------------------------

def record_gradient(params: np.ndarray, x: np.ndarray, y: float, *, l2: float = 0.0) -> np.ndarray:
    """Return the gradient of one record's cross-entropy, shape (d + 1,): weights, then intercept."""
    x = np.asarray(x, dtype=float)
    if x.ndim != 1:
        raise ValueError(f"x must be one record of shape (d,), got shape {x.shape}")
    return LogisticRegression(l2=l2).gradient(np.asarray(params, dtype=float), x[None, :], np.array([float(y)]))


def _split_gradient(gradient: np.ndarray) -> tuple[np.ndarray, float]:
    gradient = np.asarray(gradient, dtype=float)
    if gradient.ndim != 1 or gradient.size < 2:
        raise ValueError(f"gradient must be a vector of d weights plus the intercept, got shape {gradient.shape}")
    return gradient[:-1], float(gradient[-1])


def reconstruct_label(gradient: np.ndarray) -> int:
    """Return the label of a single-record update: 1 when the intercept gradient ``p - y`` is negative.

    Raises ValueError when the intercept gradient is exactly 0, which a finite
    logit cannot produce.
    """
    _, intercept_gradient = _split_gradient(gradient)
    if intercept_gradient == 0.0:
        raise ValueError("the intercept gradient is 0, so p == y and the label cannot be read from its sign")
    return 1 if intercept_gradient < 0.0 else 0


def reconstruct_record(gradient: np.ndarray, *, params: np.ndarray | None = None, l2: float = 0.0) -> np.ndarray:
    """Recover the features of the one record behind a logistic-regression gradient.

    Parameters
    ----------
    gradient : array of shape (d + 1,)
        The update's gradient: d weight entries, then the intercept entry.
    params : array of shape (d + 1,), optional
        The broadcast parameters; needed only when ``l2 > 0``, to remove the
        penalty ``l2 * w`` from the weight gradient first.
    l2 : float
        The L2 coefficient the site used (the coordinator sets it).

    Returns
    -------
    ndarray of shape (d,)
        ``grad_w / grad_b``; exact up to floating-point rounding.

    Raises
    ------
    ValueError
        When the intercept gradient is 0 or ``l2 > 0`` without ``params``.
    """
    weight_gradient, intercept_gradient = _split_gradient(gradient)
    l2 = check_non_negative_float(l2, "l2")
    if l2 > 0.0:
        if params is None:
            raise ValueError("l2 > 0 adds l2 * w to the weight gradient; pass params so it can be removed")
        weight_gradient = weight_gradient - l2 * np.asarray(params, dtype=float)[:-1]
    if intercept_gradient == 0.0:
        raise ValueError("the intercept gradient is 0, so the ratio grad_w / grad_b is undefined")
    return weight_gradient / intercept_gradient


def batch_ratio(gradient: np.ndarray) -> np.ndarray:
    """Return ``grad_w / grad_b`` of a mean gradient: the error-weighted mean of the batch's records."""
    return reconstruct_record(gradient)


@dataclass(frozen=True)
class BatchLeakage:
    """Leakage of one batch's mean gradient for each batch size n_k; every field has shape (len(batch_sizes),).

    Attributes
    ----------
    batch_sizes : ndarray of int
        The n_k values.
    ratio_error : ndarray
        Largest distance, over trials, between ``grad_w / grad_b`` and the
        batch mean: 0 to rounding, since the ratio is the mean exactly.
    reconstruction_rms : ndarray
        Root mean squared distance between that estimate and each patient's
        own record: the attacker's error in recovering one patient.
    influence : ndarray
        Mean distance the estimate moves when one patient is left out of
        the batch: the signal a membership test has to detect.
    """

    batch_sizes: np.ndarray
    ratio_error: np.ndarray
    reconstruction_rms: np.ndarray
    influence: np.ndarray


def batch_leakage(batch_sizes, *, num_features: int, num_trials: int, rng: np.random.Generator,
                  label: int = 0) -> BatchLeakage:
    """Measure what the ratio attack learns from one mean-gradient update, for each batch size.

    Every trial draws n_k standard normal records that share ``label`` and
    takes the mean gradient at zero parameters (a first round). Then every
    ``p_i - y_i`` is the same, so ``grad_w / grad_b`` is the batch mean
    exactly. That mean is the attacker's estimate of each patient.
    """
    check_rng(rng)
    num_features = check_positive_int(num_features, "num_features")
    num_trials = check_positive_int(num_trials, "num_trials")
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    model = LogisticRegression()
    params = np.zeros(num_features + 1)
    sizes = np.array([check_positive_int(n, "batch size") for n in batch_sizes])

    ratio_error, rms, influence = [], [], []
    for n in sizes:
        worst_ratio, squared, moved = 0.0, [], []
        for _ in range(num_trials):
            X = rng.standard_normal((n, num_features))
            y = np.full(n, float(label))
            estimate = batch_ratio(model.gradient(params, X, y))
            worst_ratio = max(worst_ratio, float(np.max(np.abs(estimate - X.mean(axis=0)))))
            squared.append(float(np.mean(np.sum((X - estimate) ** 2, axis=1))))
            if n > 1:
                without_first = batch_ratio(model.gradient(params, X[1:], y[1:]))
                moved.append(float(np.linalg.norm(estimate - without_first)))
        ratio_error.append(worst_ratio)
        rms.append(math.sqrt(float(np.mean(squared))))
        # With one record, leaving it out leaves no update at all: count the whole record as the move.
        influence.append(float(np.mean(moved)) if moved else math.sqrt(num_features))
    return BatchLeakage(sizes, np.array(ratio_error), np.array(rms), np.array(influence))


# ---------------------------------------------------------------------------
# What a scalar loss reveals: one linear constraint on the record.
# ---------------------------------------------------------------------------

def logit_from_loss(loss: float, label: int) -> float:
    """Invert one record's cross-entropy ``log(1 + exp(z)) - y z`` for the logit z, given the label."""
    if not loss > 0.0:
        raise ValueError(f"a cross-entropy with a finite logit is > 0, got loss={loss!r}")
    if label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    # log(expm1(loss)) is the logit that gives this loss for label 0; label 1 mirrors it.
    magnitude = math.log(math.expm1(loss))
    return -magnitude if label == 1 else magnitude


def reconstruct_from_loss(loss: float, label: int, params: np.ndarray, prior_mean: np.ndarray) -> np.ndarray:
    """Return the best guess of a record from its scalar loss: the prior mean moved onto ``w . x + b = z``.

    Under a standard normal prior around ``prior_mean`` this projection is the
    posterior mean; the other d - 1 directions stay at the prior.
    """
    params = np.asarray(params, dtype=float)
    weights, intercept = params[:-1], float(params[-1])
    norm_squared = float(weights @ weights)
    if norm_squared == 0.0:
        raise ValueError("all weights are 0, so the loss carries no information about the features")
    prior_mean = np.asarray(prior_mean, dtype=float)
    target_logit = logit_from_loss(loss, label)
    return prior_mean + weights * (target_logit - intercept - weights @ prior_mean) / norm_squared


@dataclass(frozen=True)
class LeakageComparison:
    """Mean squared reconstruction error of one record from three observations."""

    nothing: float
    loss: float
    gradient: float


def compare_loss_and_gradient(*, num_features: int, num_trials: int, rng: np.random.Generator) -> LeakageComparison:
    """Reconstruct standard normal records from nothing, from their loss, and from their gradient.

    The parameters are drawn once (standard normal); the label is known to the
    attacker in the loss case. Expected values: ``d`` for nothing, ``d - 1``
    for the loss (one direction fixed) and 0 for the gradient.
    """
    check_rng(rng)
    num_features = check_positive_int(num_features, "num_features")
    num_trials = check_positive_int(num_trials, "num_trials")
    params = rng.standard_normal(num_features + 1)
    prior = np.zeros(num_features)
    model = LogisticRegression()

    errors = {"nothing": [], "loss": [], "gradient": []}
    for _ in range(num_trials):
        x = rng.standard_normal(num_features)
        y = float(rng.random() < model.predict_proba(params, x[None, :])[0])
        loss = model.loss(params, x[None, :], np.array([y]))
        errors["nothing"].append(float(x @ x))
        errors["loss"].append(float(np.sum((reconstruct_from_loss(loss, int(y), params, prior) - x) ** 2)))
        gradient = record_gradient(params, x, y)
        errors["gradient"].append(float(np.sum((reconstruct_record(gradient) - x) ** 2)))
    return LeakageComparison(**{key: float(np.mean(values)) for key, values in errors.items()})


# ---------------------------------------------------------------------------
# Gradient matching against a two-layer network.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TwoLayerNetwork:
    """``p = sigmoid(v . tanh(W x) + c)``: d inputs, h tanh units without bias, one logistic output.

    The hidden layer has no bias, so no gradient entry divides out a record
    the way the logistic-regression intercept does.
    """

    W: np.ndarray
    v: np.ndarray
    c: float

    @classmethod
    def random(cls, num_features: int, num_hidden: int, rng: np.random.Generator) -> TwoLayerNetwork:
        """Draw weights with standard deviation 1 / sqrt(fan-in)."""
        check_rng(rng)
        W = rng.standard_normal((num_hidden, num_features)) / math.sqrt(num_features)
        v = rng.standard_normal(num_hidden) / math.sqrt(num_hidden)
        return cls(W, v, 0.0)

    @property
    def num_parameters(self) -> int:
        return int(self.W.size + self.v.size + 1)

    def gradient(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Return the mean cross-entropy gradient over the batch, flattened as (W, v, c)."""
        hidden = np.tanh(X @ self.W.T)
        error = sigmoid(hidden @ self.v + self.c) - y
        backprop = error[:, None] * self.v * (1.0 - hidden**2)
        n = X.shape[0]
        return np.concatenate([(backprop.T @ X).ravel() / n, hidden.T @ error / n, [error.mean()]])

    def matching_loss(self, X: np.ndarray, y: np.ndarray, target: np.ndarray) -> tuple[float, np.ndarray]:
        """Return ``||gradient(X, y) - target||^2`` and its derivative with respect to X, shape (n, d)."""
        n = X.shape[0]
        h = self.W.shape[0]
        residual = self.gradient(X, y) - target
        r_W = residual[: self.W.size].reshape(self.W.shape)
        r_v = residual[self.W.size: self.W.size + h]
        r_c = residual[-1]

        hidden = np.tanh(X @ self.W.T)
        slope = 1.0 - hidden**2
        p = sigmoid(hidden @ self.v + self.c)
        error = p - y
        projected = X @ r_W.T

        # s_i = residual . g_i = e_i * Q_i, with Q_i collecting every term the error multiplies.
        Q = hidden @ r_v + r_c + (self.v * slope * projected).sum(axis=1)

        # d e_i / d x_i = p (1 - p) W^T (v * slope).
        d_error = (p * (1 - p))[:, None] * ((self.v * slope) @ self.W)
        # d Q_i / d x_i: through tanh in the v-term, through slope, and through r_W x directly.
        d_Q = ((r_v * slope) @ self.W
               + ((self.v * -2.0 * hidden * slope) * projected) @ self.W
               + (self.v * slope) @ r_W)

        derivative = (2.0 / n) * (Q[:, None] * d_error + error[:, None] * d_Q)
        return float(residual @ residual), derivative


def match_gradient(network: TwoLayerNetwork, target: np.ndarray, labels: np.ndarray, *, num_features: int,
                   rng: np.random.Generator, restarts: int = 2, max_iterations: int = 100) -> np.ndarray:
    """Search for records whose gradient equals ``target`` with L-BFGS, keeping the best of ``restarts``.

    The attacker is given the network and the labels. For one record the
    sign of the output-bias gradient gives the label, as in iDLG. Starts are
    standard normal draws from ``rng``.

    Returns
    -------
    ndarray of shape (len(labels), num_features)
    """
    check_rng(rng)
    labels = np.asarray(labels, dtype=float)
    n = labels.size
    best_value, best_X = math.inf, None

    def objective(flat: np.ndarray) -> tuple[float, np.ndarray]:
        value, derivative = network.matching_loss(flat.reshape(n, num_features), labels, target)
        return value, derivative.ravel()

    for _ in range(check_positive_int(restarts, "restarts")):
        start = rng.standard_normal(n * num_features)
        result = optimize.minimize(objective, start, jac=True, method="L-BFGS-B",
                                   options={"maxiter": max_iterations, "gtol": 1e-12, "ftol": 1e-15})
        if result.fun < best_value:
            best_value, best_X = float(result.fun), result.x.reshape(n, num_features)
        # A near-zero matching loss is an exact fit; further restarts cannot improve it.
        if best_value < 1e-14:
            break
    return best_X


def matched_record_errors(estimate: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Return each record's relative error ``||x_hat - x|| / ||x||`` after the best one-to-one matching."""
    records = np.asarray(records, dtype=float)
    distances = np.linalg.norm(records[:, None, :] - np.asarray(estimate)[None, :, :], axis=2)
    rows, columns = optimize.linear_sum_assignment(distances)
    return distances[rows, columns] / np.linalg.norm(records[rows], axis=1)


def matching_success_rate(batch_sizes, *, num_features: int, num_hidden: int, num_trials: int,
                          rng: np.random.Generator, threshold: float = 0.05, restarts: int = 2) -> np.ndarray:
    """Estimate the fraction of records that gradient matching recovers, for each batch size.

    A record counts as recovered when its relative error after matching
    (:func:`matched_record_errors`) is below ``threshold``. Each trial draws
    a fresh network, a batch of standard normal records and labels from the
    network.

    Returns
    -------
    ndarray of shape (len(batch_sizes),), values in [0, 1]
    """
    check_rng(rng)
    rates = []
    for n in batch_sizes:
        n = check_positive_int(n, "batch size")
        recovered = 0
        for _ in range(check_positive_int(num_trials, "num_trials")):
            network = TwoLayerNetwork.random(num_features, num_hidden, rng)
            X = rng.standard_normal((n, num_features))
            hidden = np.tanh(X @ network.W.T)
            y = (rng.random(n) < sigmoid(hidden @ network.v + network.c)).astype(float)
            estimate = match_gradient(network, network.gradient(X, y), y, num_features=num_features, rng=rng,
                                      restarts=restarts)
            recovered += int(np.sum(matched_record_errors(estimate, X) < threshold))
        rates.append(recovered / (n * num_trials))
    return np.array(rates)


# ---------------------------------------------------------------------------
# The chapter's explorer: one batch, its ratio estimate and the truth.
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class RatioDemo:
    """One batch seen through the ratio attack at zero parameters (a first round)."""

    records: np.ndarray
    labels: np.ndarray
    estimate: np.ndarray
    distance_to_mean: float
    distance_to_first_patient: float


def ratio_attack_demo(batch_size: int, positive_fraction: float, *, rng: np.random.Generator,
                      num_features: int = 2) -> RatioDemo:
    """Draw a batch, compute its mean gradient at zero parameters, and apply the ratio attack.

    ``round(positive_fraction * batch_size)`` records get label 1. With one
    label for the whole batch the estimate is the batch mean exactly; with
    both labels present it is ``(p sum x - sum_{y=1} x) / (p n - n_1)``
    with p = 1/2, which leaves the data cloud as the two classes balance.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction!r}")
    check_rng(rng)
    X = rng.standard_normal((batch_size, num_features))
    num_positive = int(round(positive_fraction * batch_size))
    y = np.zeros(batch_size)
    y[:num_positive] = 1.0

    gradient = LogisticRegression().gradient(np.zeros(num_features + 1), X, y)
    if gradient[-1] == 0.0:
        estimate = np.full(num_features, np.nan)
    else:
        estimate = batch_ratio(gradient)
    return RatioDemo(
        records=X,
        labels=y,
        estimate=estimate,
        distance_to_mean=float(np.linalg.norm(estimate - X.mean(axis=0))),
        distance_to_first_patient=float(np.linalg.norm(estimate - X[0])),
    )
