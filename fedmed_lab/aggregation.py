"""Aggregation rules as pure functions, and the chapter 1 diagnostics.

Sample-weighted FedAvg (McMahan et al., AISTATS 2017, arXiv:1602.05629) weights
site k by n_k / N. Because the pooled loss is L(w) = sum_k (n_k / N) L_k(w),
the weighted average of per-site losses or gradients equals the pooled one
exactly; the unweighted mean gives every site one vote and optimises a
different objective whenever the n_k differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_site_sizes
from fedmed_lab.sites import ModelUpdate


def _stack(vectors: Sequence[np.ndarray]) -> np.ndarray:
    if len(vectors) == 0:
        raise ValueError("cannot aggregate zero updates; record the round as empty instead of averaging nothing")
    stacked = np.asarray([np.asarray(v, dtype=float) for v in vectors])
    if stacked.ndim < 2:
        raise ValueError(f"each update must be a 1-D vector, got shape {np.shape(vectors[0])}")
    return stacked


def sample_weights(num_examples: Sequence[int]) -> np.ndarray:
    """Return the FedAvg weights ``n_k / N`` for the given site sizes."""
    sizes = check_site_sizes(num_examples, "num_examples")
    return sizes / sizes.sum()


def weighted_average(vectors: Sequence[np.ndarray], num_examples: Sequence[int]) -> np.ndarray:
    """Average ``vectors`` with weights ``n_k / N``.

    Parameters
    ----------
    vectors : sequence of arrays of shape (p,)
        One vector per site (parameters, gradients or losses).
    num_examples : sequence of int
        The site sizes ``n_k``, all positive.

    Returns
    -------
    ndarray of shape (p,)
    """
    stacked = _stack(vectors)
    if len(num_examples) != stacked.shape[0]:
        raise ValueError(f"got {stacked.shape[0]} vectors but {len(num_examples)} site sizes; pass one n_k per vector")
    return sample_weights(num_examples) @ stacked


def unweighted_average(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Average ``vectors`` with one vote per site (the rule that is wrong for unequal n_k)."""
    return _stack(vectors).mean(axis=0)


def fedavg(updates: Sequence[ModelUpdate]) -> np.ndarray:
    """Aggregate model updates with sample-weighted FedAvg, weights ``n_k / N``."""
    return weighted_average([u.parameters for u in updates], [u.num_examples for u in updates])


def unweighted_fedavg(updates: Sequence[ModelUpdate]) -> np.ndarray:
    """Aggregate model updates with the unweighted mean, ignoring ``n_k``."""
    return unweighted_average([u.parameters for u in updates])


def relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    """Return ``||estimate - reference|| / ||reference||`` (Euclidean norm)."""
    reference = np.asarray(reference, dtype=float)
    norm = float(np.linalg.norm(reference))
    if norm == 0.0:
        raise ValueError("reference has norm 0, so a relative error is undefined; compare absolute errors instead")
    return float(np.linalg.norm(np.asarray(estimate, dtype=float) - reference)) / norm


@dataclass(frozen=True)
class AggregationDiagnostics:
    """Pooled, sample-weighted and unweighted loss and gradient at one parameter vector."""

    num_examples: tuple[int, ...]
    weights: tuple[float, ...]
    pooled_loss: float
    weighted_loss: float
    unweighted_loss: float
    pooled_gradient: np.ndarray
    weighted_gradient: np.ndarray
    unweighted_gradient: np.ndarray

    @property
    def weighted_gradient_error(self) -> float:
        return relative_error(self.weighted_gradient, self.pooled_gradient)

    @property
    def unweighted_gradient_error(self) -> float:
        return relative_error(self.unweighted_gradient, self.pooled_gradient)


def aggregation_diagnostics(datasets, model, params: np.ndarray) -> AggregationDiagnostics:
    """Compare pooled, sample-weighted and unweighted loss and gradient at ``params``.

    ``datasets`` is a sequence of ``(X_k, y_k)`` pairs. The pooled values stack
    every site's records, the computation a data lake would allow and the law
    forbids; the course computes it only as the reference.
    """
    losses = [model.loss(params, X, y) for X, y in datasets]
    gradients = [model.gradient(params, X, y) for X, y in datasets]
    sizes = [int(np.shape(X)[0]) for X, _ in datasets]

    X_pooled = np.vstack([X for X, _ in datasets])
    y_pooled = np.concatenate([y for _, y in datasets])

    return AggregationDiagnostics(
        num_examples=tuple(sizes),
        weights=tuple(float(v) for v in sample_weights(sizes)),
        pooled_loss=model.loss(params, X_pooled, y_pooled),
        weighted_loss=float(weighted_average([[v] for v in losses], sizes)[0]),
        unweighted_loss=float(np.mean(losses)),
        pooled_gradient=model.gradient(params, X_pooled, y_pooled),
        weighted_gradient=weighted_average(gradients, sizes),
        unweighted_gradient=unweighted_average(gradients),
    )
