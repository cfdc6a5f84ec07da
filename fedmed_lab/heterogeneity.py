"""Statistical heterogeneity: client drift, FedProx and personalization.

Client drift (Karimireddy et al., SCAFFOLD, ICML 2020, arXiv:1910.06378):
with several local epochs each site walks toward its own optimum, so the
fixed point of FedAvg is no longer the pooled optimum once the sites'
losses differ. For linear regression trained with full-batch gradient
descent, E local steps are an affine map of the broadcast parameters,
``w_k = P_k w + c_k``, so FedAvg's fixed point solves the linear system
``(I - sum_k p_k P_k) w = sum_k p_k c_k`` with ``p_k = n_k / N``, and the
drift can be computed exactly (:func:`fedavg_fixed_point`).

FedProx (Li et al., MLSys 2020, arXiv:1812.06127) adds
``(mu / 2) ||w - w_global||^2`` to each local objective, which
:class:`~fedmed_lab.training.LocalTrainingConfig` implements as
``proximal_mu``. A larger mu keeps local models near the broadcast one, so
the drift shrinks, but each round makes less progress.

Personalization here is local fine-tuning: each site continues training the
global model on its own records and keeps the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from fedmed_lab._checks import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    check_rng,
    check_site_sizes,
)
from fedmed_lab.data import HospitalSpec, LinearExperiment
from fedmed_lab.metrics import combine_site_metrics
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig


def make_drift_sites(site_sizes: Sequence[int], rng: np.random.Generator, *, heterogeneity: float,
                     num_features: int = 3, feature_scale: float = 0.3,
                     noise_scale: float = 0.1) -> LinearExperiment:
    """Draw linear-regression sites whose feature scales and true weights differ.

    ``heterogeneity`` h >= 0 sets both kinds of difference: site k's
    features are ``feature_scale`` times standard normals times
    ``exp(h * z_k)`` per column
    (covariate shift, so the curvature X_k^T X_k / n_k differs), and its true
    weights are ``w + h * s_k`` (concept shift). h = 0 gives identically
    distributed sites. The default ``feature_scale`` of 0.3 puts the
    curvature ``2 X_k^T X_k / n_k`` near 0.2 at h = 0, the range in which the
    FedProx grid mu = 0.001 ... 1 makes a visible difference.

    Draw order: ``w`` (``num_features`` standard normals); then per site
    ``z_k``, ``s_k`` (``num_features`` standard normals each), ``X_k``
    (``n_k x d``) and the noise (``n_k``).
    """
    sizes = check_site_sizes(site_sizes)
    check_rng(rng)
    heterogeneity = check_non_negative_float(heterogeneity, "heterogeneity")
    num_features = check_positive_int(num_features, "num_features")
    feature_scale = check_positive_float(feature_scale, "feature_scale")
    check_non_negative_float(noise_scale, "noise_scale")

    w = rng.standard_normal(num_features)
    datasets = []
    for n_k in sizes:
        scale = np.exp(heterogeneity * rng.standard_normal(num_features))
        shift = heterogeneity * rng.standard_normal(num_features)
        X_k = rng.standard_normal((int(n_k), num_features)) * (feature_scale * scale)
        y_k = X_k @ (w + shift) + noise_scale * rng.standard_normal(int(n_k))
        datasets.append((X_k, y_k))
    return LinearExperiment(w=w, datasets=tuple(datasets))


def _weights(datasets) -> np.ndarray:
    sizes = np.array([X.shape[0] for X, _ in datasets], dtype=float)
    return sizes / sizes.sum()


def pooled_least_squares(datasets) -> np.ndarray:
    """Return the pooled least-squares optimum ``argmin_w sum_k n_k L_k(w)``, shape (d,).

    Solves ``(sum_k X_k^T X_k) w = sum_k X_k^T y_k``; only the d x d and d
    sums are needed, never the stacked records.
    """
    gram = sum(X.T @ X for X, _ in datasets)
    moment = sum(X.T @ y for X, y in datasets)
    return np.linalg.solve(gram, moment)


def local_affine_map(X: np.ndarray, y: np.ndarray, *, epochs: int, learning_rate: float,
                     proximal_mu: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(P, c)`` with local training from w ending at ``P w + c``.

    Local training is ``epochs`` full-batch gradient steps on the mean squared
    error plus the FedProx term, as :func:`~fedmed_lab.training.local_train`
    runs them with ``batch_size=None``. One step from w_t, broadcast w, is
    ``w_t - lr (H w_t - g + mu (w_t - w))`` with ``H = 2 X^T X / n`` and
    ``g = 2 X^T y / n``, so P and c follow by composing that affine map.

    Returns
    -------
    P : ndarray of shape (d, d)
    c : ndarray of shape (d,)
    """
    epochs = check_positive_int(epochs, "epochs")
    learning_rate = check_positive_float(learning_rate, "learning_rate")
    proximal_mu = check_non_negative_float(proximal_mu, "proximal_mu")
    n, d = X.shape
    hessian = 2.0 * X.T @ X / n
    moment = 2.0 * X.T @ y / n

    # Gradient descent on a quadratic is stable only when lr * (largest eigenvalue + mu) < 2.
    largest = float(np.linalg.eigvalsh(hessian)[-1]) + proximal_mu
    if learning_rate * largest >= 2.0:
        raise ValueError(
            f"learning_rate {learning_rate} makes local training diverge at this site "
            f"(largest curvature {largest:.4g}); use a learning rate below {2.0 / largest:.4g}"
        )
    step_matrix = np.eye(d) - learning_rate * (hessian + proximal_mu * np.eye(d))

    P, c = np.eye(d), np.zeros(d)
    for _ in range(epochs):
        # w_{t+1} = step_matrix w_t + lr g + lr mu w, written for w_t = P w + c.
        P = step_matrix @ P + learning_rate * proximal_mu * np.eye(d)
        c = step_matrix @ c + learning_rate * moment
    return P, c


def fedavg_fixed_point(datasets, *, epochs: int, learning_rate: float, proximal_mu: float = 0.0) -> np.ndarray:
    """Return the fixed point of sample-weighted FedAvg with full-batch local steps, shape (d,).

    Solves ``(I - sum_k p_k P_k) w = sum_k p_k c_k`` with ``(P_k, c_k)`` from
    :func:`local_affine_map` and ``p_k = n_k / N``. With ``epochs=1`` and
    ``proximal_mu=0`` this is the pooled optimum.

    Raises
    ------
    numpy.linalg.LinAlgError
        When the system is singular (learning rate far too small or zero curvature).
    """
    weights = _weights(datasets)
    d = datasets[0][0].shape[1]
    maps = [local_affine_map(X, y, epochs=epochs, learning_rate=learning_rate, proximal_mu=proximal_mu)
            for X, y in datasets]
    average_P = sum(p * P for p, (P, _) in zip(weights, maps))
    average_c = sum(p * c for p, (_, c) in zip(weights, maps))
    return np.linalg.solve(np.eye(d) - average_P, average_c)


def fedavg_contraction(datasets, *, epochs: int, learning_rate: float, proximal_mu: float = 0.0) -> float:
    """Return the spectral radius of ``sum_k p_k P_k``, the per-round contraction of FedAvg.

    The distance to the fixed point shrinks by about this factor each round,
    so ``-1 / log(radius)`` rounds reduce it by a factor e. A value near 1
    means slow convergence; a larger ``proximal_mu`` pushes it toward 1.
    """
    weights = _weights(datasets)
    average_P = sum(p * local_affine_map(X, y, epochs=epochs, learning_rate=learning_rate,
                                         proximal_mu=proximal_mu)[0] for p, (X, y) in zip(weights, datasets))
    return float(np.max(np.abs(np.linalg.eigvals(average_P))))


def client_drift(datasets, *, epochs: int, learning_rate: float, proximal_mu: float = 0.0) -> float:
    """Return ``||w_fedavg - w_pooled|| / ||w_pooled||`` for the FedAvg fixed point."""
    pooled = pooled_least_squares(datasets)
    fixed_point = fedavg_fixed_point(datasets, epochs=epochs, learning_rate=learning_rate, proximal_mu=proximal_mu)
    return float(np.linalg.norm(fixed_point - pooled) / np.linalg.norm(pooled))


def stable_learning_rate(datasets, *, proximal_mu: float = 0.0) -> float:
    """Return ``min(1, 1 / (largest site curvature + mu))``, a step size every site can take."""
    largest = max(float(np.linalg.eigvalsh(2.0 * X.T @ X / X.shape[0])[-1]) for X, _ in datasets)
    return min(1.0, 1.0 / (largest + check_non_negative_float(proximal_mu, "proximal_mu")))


def drift_grid(site_sizes: Sequence[int], *, heterogeneity: float, proximal_mu: float, epochs: Sequence[int],
               learning_rate: float | None = None, seed: int = 0) -> np.ndarray:
    """Return the client drift for each local epoch count, one draw of :func:`make_drift_sites`.

    The widget function of chapter 5: the draw uses ``default_rng(seed)``,
    so only ``heterogeneity`` and ``proximal_mu`` change the curve. Without
    ``learning_rate`` the step is :func:`stable_learning_rate` at mu = 1, which
    is stable for every mu up to 1 and the same for all of them, so only the
    proximal term differs between curves.

    Returns
    -------
    ndarray of shape (len(epochs),)
    """
    experiment = make_drift_sites(site_sizes, np.random.default_rng(seed), heterogeneity=heterogeneity)
    if learning_rate is None:
        learning_rate = stable_learning_rate(experiment.datasets, proximal_mu=1.0)
    return np.array([client_drift(experiment.datasets, epochs=e, learning_rate=learning_rate,
                                  proximal_mu=proximal_mu) for e in epochs])


def scale_heterogeneity(specs: Sequence[HospitalSpec], strength: float) -> list[HospitalSpec]:
    """Return copies of ``specs`` with case mix, concept shift and lab bias multiplied by ``strength``.

    Prevalence and size are kept, so ``strength=0`` leaves only label shift.
    """
    strength = check_non_negative_float(strength, "strength")
    return [dataclasses.replace(spec, case_mix=spec.case_mix * strength, concept_shift=spec.concept_shift * strength,
                                lab_bias=spec.lab_bias * strength) for spec in specs]


def pooled_logistic_optimum(datasets, *, l2: float, iterations: int = 30) -> np.ndarray:
    """Return the pooled logistic-regression optimum by Newton's method, shape (d + 1,).

    The reference a data lake would allow: ``datasets`` are ``(X_k, y_k)``
    pairs, the parameters are the weights then the intercept, and ``l2``
    penalises the weights as :class:`~fedmed_lab.models.LogisticRegression`
    does. Used only to measure drift; no federated code calls it.
    """
    l2 = check_positive_float(l2, "l2")
    X = np.vstack([np.column_stack([X_k, np.ones(X_k.shape[0])]) for X_k, _ in datasets])
    y = np.concatenate([y_k for _, y_k in datasets])
    penalty = l2 * np.eye(X.shape[1])
    penalty[-1, -1] = 0.0

    params = np.zeros(X.shape[1])
    for _ in range(check_positive_int(iterations, "iterations")):
        prob = 1.0 / (1.0 + np.exp(-(X @ params)))
        gradient = X.T @ (prob - y) / X.shape[0] + penalty @ params
        hessian = (X * (prob * (1.0 - prob))[:, None]).T @ X / X.shape[0] + penalty
        params = params - np.linalg.solve(hessian, gradient)
    return params


def personalize(hospitals: Sequence[Hospital], parameters: np.ndarray, model, config: LocalTrainingConfig,
                rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Fine-tune the global ``parameters`` at each site and return ``{site_id: parameters}``.

    Each site runs ``config`` (its epochs, learning rate and, optionally, a
    FedProx term that keeps it near the global model) on its own records.
    The personalized models stay at their sites: nothing is aggregated.
    """
    check_rng(rng)
    site_rngs = rng.spawn(len(hospitals))
    return {h.site_id: h.fit(parameters, model, config, site_rng).parameters
            for h, site_rng in zip(hospitals, site_rngs)}


def site_metric_summary(hospitals: Sequence[Hospital], model, parameters_by_site: dict[str, np.ndarray],
                        metric: str = "auroc") -> dict[str, float]:
    """Evaluate each site's model on its own test split and summarise ``metric``.

    ``parameters_by_site`` maps each site id to the parameters it uses: the
    same global vector for every site, or its personalized one. Returns
    :func:`~fedmed_lab.metrics.combine_site_metrics` plus one entry per site.
    """
    evaluations = [h.evaluate(parameters_by_site[h.site_id], model) for h in hospitals]
    values = [e.metrics[metric] for e in evaluations]
    summary = combine_site_metrics(values, [e.num_examples for e in evaluations])
    summary.update({e.site_id: float(e.metrics[metric]) for e in evaluations})
    return summary
