"""The two reference points of a federated run, and the table that compares them with FedAvg.

- Local-only: each site trains on its own records and never talks to anyone.
  It is always allowed, and small sites get little data.
- Pooled: one model trained on every site's records stacked together, the
  centralised model that the law forbids. The course computes it only in
  simulation, as the target FedAvg (McMahan et al., AISTATS 2017,
  arXiv:1602.05629) tries to reach.

Both use the same :class:`~fedmed_lab.training.LocalTrainingConfig` as the
federated run, so a comparison changes one thing at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_positive_int, check_rng
from fedmed_lab.data import SiteData
from fedmed_lab.aggregation import weighted_average
from fedmed_lab.evaluation import HIGHER_IS_BETTER, SiteMetricSummary, summarise_evaluations
from fedmed_lab.rounds import run_federated
from fedmed_lab.sites import Hospital, SiteEvaluation
from fedmed_lab.training import LocalTrainingConfig, local_train


def train_local_only(hospitals: Sequence[Hospital], model, *, local: LocalTrainingConfig,
                     rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Train one model per site on that site's records alone, from zero parameters.

    Parameters
    ----------
    hospitals : sequence of Hospital
        The sites; each trains through :meth:`Hospital.fit`, so no record leaves it.
    model : LogisticRegression or LinearRegression
    local : LocalTrainingConfig
        ``local.epochs`` is the site's whole training budget.
    rng : numpy.random.Generator
        Spawns one child generator per site, in site order.

    Returns
    -------
    dict of str to ndarray of shape (p,)
        Each site's parameters, keyed by site id.
    """
    check_rng(rng)
    if not hospitals:
        raise ValueError("hospitals is empty; pass at least one site")
    initial = model.initial_parameters(hospitals[0].num_features)
    site_rngs = rng.spawn(len(hospitals))
    return {h.site_id: h.fit(initial, model, local, site_rng).parameters for h, site_rng in zip(hospitals, site_rngs)}


def train_pooled(cohorts: Sequence[SiteData], model, *, local: LocalTrainingConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """Train one model on the stacked training splits of every site: the data lake nobody may build.

    ``local.epochs`` passes over the pooled records, from zero parameters.
    Returns the parameter vector of shape (p,).
    """
    check_rng(rng)
    if not cohorts:
        raise ValueError("cohorts is empty; pass at least one site")
    X = np.vstack([c.X_train for c in cohorts])
    y = np.concatenate([c.y_train for c in cohorts])
    return local_train(model, model.initial_parameters(X.shape[1]), X, y, local, rng)


def train_fedavg(hospitals: Sequence[Hospital], model, *, rounds: int, local: LocalTrainingConfig,
                 rng: np.random.Generator) -> np.ndarray:
    """Run ``rounds`` rounds of FedAvg with full participation and return the final global parameters."""
    return run_federated(hospitals, model, rounds=rounds, local=local, rng=rng).final_parameters


@dataclass(frozen=True)
class ComparisonTable:
    """One metric of several methods at every site, each site scoring on its own test split.

    Attributes
    ----------
    metric : str
        The compared metric, for example ``"auroc"``.
    site_ids : tuple of str
        Sites in federation order.
    num_test_examples : tuple of int
        Each site's test-split size.
    evaluations : dict of str to list of SiteEvaluation
        Per method, one evaluation per site in ``site_ids`` order.
    """

    metric: str
    site_ids: tuple[str, ...]
    num_test_examples: tuple[int, ...]
    evaluations: dict[str, list[SiteEvaluation]]

    @property
    def methods(self) -> list[str]:
        return list(self.evaluations)

    def value(self, method: str, site_id: str) -> float:
        """Return ``method``'s metric at ``site_id``."""
        return self.evaluations[method][self.site_ids.index(site_id)].metrics[self.metric]

    def summary(self, method: str) -> SiteMetricSummary:
        """Return weighted mean, worst site and spread of ``method``'s metric."""
        return summarise_evaluations(self.evaluations[method], self.metric)

    def winner(self, site_id: str, methods: Sequence[str]) -> str:
        """Return which of ``methods`` scores best at ``site_id``."""
        values = [self.value(m, site_id) for m in methods]
        best = int(np.argmax(values)) if self.metric in HIGHER_IS_BETTER else int(np.argmin(values))
        return methods[best]

    def format(self, digits: int = 3) -> str:
        """Format sites as rows and methods as columns, then the weighted mean and the worst site."""
        width = max(len("weighted mean"), *(len(s) for s in self.site_ids)) + 2
        column = max(10, *(len(m) + 2 for m in self.methods))
        lines = [f"{self.metric:<{width}}{'n_test':>8}" + "".join(f"{m:>{column}}" for m in self.methods)]
        for site_id, n in zip(self.site_ids, self.num_test_examples):
            cells = "".join(f"{self.value(m, site_id):>{column}.{digits}f}" for m in self.methods)
            lines.append(f"{site_id:<{width}}{n:>8}" + cells)
        summaries = [self.summary(m) for m in self.methods]
        lines.append(f"{'weighted mean':<{width}}{sum(self.num_test_examples):>8}"
                     + "".join(f"{s.weighted_mean:>{column}.{digits}f}" for s in summaries))
        lines.append(f"{'worst site':<{width}}{'':>8}" + "".join(f"{s.worst:>{column}.{digits}f}" for s in summaries))
        return "\n".join(lines)


def compare_methods(hospitals: Sequence[Hospital], model,
                    parameters: Mapping[str, np.ndarray | Mapping[str, np.ndarray]], *,
                    metric: str = "auroc") -> ComparisonTable:
    """Evaluate several methods' parameters at every site and tabulate one metric.

    Parameters
    ----------
    hospitals : sequence of Hospital
        Each site evaluates on its own test split.
    model : LogisticRegression
    parameters : mapping of str to array or to mapping of str to array
        Per method, either one global parameter vector, or a vector per site
        id (local-only training, where every site has its own model).
    metric : str
        Which reported metric to tabulate.

    Raises
    ------
    ValueError
        When a per-site mapping lacks one of the sites.
    """
    site_ids = tuple(h.site_id for h in hospitals)
    evaluations = {}
    for method, params in parameters.items():
        if isinstance(params, Mapping):
            missing = [s for s in site_ids if s not in params]
            if missing:
                raise ValueError(f"method {method!r} has no parameters for sites {missing}; pass one vector per site")
            evaluations[method] = [h.evaluate(params[h.site_id], model) for h in hospitals]
        else:
            evaluations[method] = [h.evaluate(params, model) for h in hospitals]
    return ComparisonTable(metric, site_ids, tuple(h.num_test_examples for h in hospitals), evaluations)


def round_bytes(*, num_parameters: int, num_sites: int, num_metrics: int = 1) -> tuple[int, int]:
    """Return the bytes sent down and up in one full-participation round.

    Down: each site receives the ``num_parameters`` float64 parameters.
    Up: each site returns its parameters, its count n_k (8 bytes) and
    ``num_metrics`` float64 metrics, as :attr:`ModelUpdate.nbytes` counts them.
    """
    p = check_positive_int(num_parameters, "num_parameters")
    k = check_positive_int(num_sites, "num_sites")
    if isinstance(num_metrics, bool) or not isinstance(num_metrics, int) or num_metrics < 0:
        raise ValueError(f"num_metrics must be a non-negative integer, got {num_metrics!r}")
    return k * 8 * p, k * (8 * p + 8 + 8 * num_metrics)


def rounds_to_target(losses: Sequence[float], target: float) -> int | None:
    """Return the first round (counting from 1) whose loss is at or below ``target``, or None if none is."""
    for server_round, loss in enumerate(losses, start=1):
        if loss <= target:
            return server_round
    return None


def federated_training_loss(hospitals: Sequence[Hospital], parameters: np.ndarray, model) -> float:
    """Return the pooled training loss ``sum_k (n_k / N) L_k(w)`` of ``parameters``, from per-site scalar losses.

    Each site reports only its loss L_k and its count n_k, yet the result equals
    the loss on the stacked records, because the pooled loss decomposes exactly.
    """
    losses = np.array([h.local_loss_and_gradient(parameters, model)[0] for h in hospitals])
    return float(weighted_average(losses[:, None], [h.num_examples for h in hospitals])[0])


@dataclass(frozen=True)
class ConvergenceRun:
    """One federated run of the local-epochs and learning-rate study.

    Attributes
    ----------
    epochs, learning_rate
        The local training settings E and eta.
    global_losses : ndarray of shape (rounds,)
        Pooled training loss of the global model after each round.
    local_losses : ndarray of shape (rounds,)
        Sample-weighted loss the sites report for their own locally trained
        models; with many local epochs it falls below ``global_losses``,
        because each local model fits its own site better than the average does.
    rounds_to_target : int or None
        First round whose global loss reaches the target.
    bytes_per_round : int
        Bytes sent down and up per round.
    """

    epochs: int
    learning_rate: float
    global_losses: np.ndarray
    local_losses: np.ndarray
    rounds_to_target: int | None
    bytes_per_round: int

    @property
    def bytes_to_target(self) -> int | None:
        """Bytes that crossed the boundary until the target loss was reached, or None."""
        return None if self.rounds_to_target is None else self.rounds_to_target * self.bytes_per_round


def convergence_run(hospitals: Sequence[Hospital], model, *, epochs: int, learning_rate: float, rounds: int,
                    target_loss: float, rng: np.random.Generator) -> ConvergenceRun:
    """Run full-batch FedAvg with ``epochs`` local epochs and ``learning_rate``; record loss and communication.

    After every round the global model's pooled training loss is computed from
    per-site scalar losses (:func:`federated_training_loss`), and the first round
    at or below ``target_loss`` is recorded.
    """
    local = LocalTrainingConfig(epochs=epochs, learning_rate=learning_rate)
    history = run_federated(hospitals, model, rounds=rounds, local=local, rng=rng)
    global_losses = np.array([federated_training_loss(hospitals, r.parameters, model) for r in history.rounds])
    first = history.rounds[0]
    return ConvergenceRun(
        epochs=epochs,
        learning_rate=learning_rate,
        global_losses=global_losses,
        local_losses=history.train_losses(),
        rounds_to_target=rounds_to_target(global_losses, target_loss),
        bytes_per_round=first.bytes_down + first.bytes_up,
    )
