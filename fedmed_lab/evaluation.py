"""Federated evaluation: each site scores a model on its own test split, the coordinator combines scalars.

No global validation set can exist when records may not leave their site, so
a model is judged by the per-site metrics of
:meth:`~fedmed_lab.sites.Hospital.evaluate`. :func:`summarise_evaluations`
combines them into a sample-weighted mean, the worst site and the spread.
:func:`pooled_test_metrics` computes the one number a data lake would give,
which the course computes only to show what it hides.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_rng
from fedmed_lab.data import HospitalSpec, SiteData, make_risk_cohorts
from fedmed_lab.metrics import combine_site_metrics, evaluate_classifier
from fedmed_lab.sites import Hospital, SiteEvaluation

# Metrics where a larger value is better; for the others (loss, brier, ece) smaller is better.
HIGHER_IS_BETTER = frozenset({"auroc"})


def evaluate_sites(hospitals: Sequence[Hospital], parameters: np.ndarray, model) -> list[SiteEvaluation]:
    """Ask every hospital to score ``parameters`` on its own test split; only scalars come back."""
    return [hospital.evaluate(parameters, model) for hospital in hospitals]


@dataclass(frozen=True)
class SiteMetricSummary:
    """One metric across sites, as the coordinator sees it.

    Attributes
    ----------
    metric : str
        The metric's name, for example ``"auroc"``.
    weighted_mean : float
        Mean weighted by test-split size n_k / N.
    mean : float
        Unweighted mean, one vote per site.
    worst : float
        The worst site's value: the minimum for AUROC, the maximum otherwise.
    worst_site : str
        The id of that site.
    spread : float
        Maximum minus minimum.
    """

    metric: str
    weighted_mean: float
    mean: float
    worst: float
    worst_site: str
    spread: float


def summarise_evaluations(evaluations: Sequence[SiteEvaluation], metric: str) -> SiteMetricSummary:
    """Combine one metric of the sites' evaluations into weighted mean, worst site and spread.

    Raises
    ------
    ValueError
        When ``evaluations`` is empty, a site did not report ``metric``, or a value is NaN.
    """
    if not evaluations:
        raise ValueError("evaluations is empty; ask at least one site to evaluate")
    missing = [e.site_id for e in evaluations if metric not in e.metrics]
    if missing:
        raise ValueError(f"metric {metric!r} was not reported by {missing}; reported metrics are {sorted(evaluations[0].metrics)}")
    values = np.array([e.metrics[metric] for e in evaluations])
    if np.any(np.isnan(values)):
        undefined = [e.site_id for e, v in zip(evaluations, values) if np.isnan(v)]
        raise ValueError(f"metric {metric!r} is NaN at {undefined}; a site needs both classes in its test split")

    combined = combine_site_metrics(values, [e.num_examples for e in evaluations])
    worst_index = int(np.argmin(values)) if metric in HIGHER_IS_BETTER else int(np.argmax(values))
    return SiteMetricSummary(
        metric=metric,
        weighted_mean=combined["weighted_mean"],
        mean=combined["mean"],
        worst=float(values[worst_index]),
        worst_site=evaluations[worst_index].site_id,
        spread=combined["spread"],
    )


def pooled_test_metrics(cohorts: Sequence[SiteData], parameters: np.ndarray, model) -> dict[str, float]:
    """Score ``parameters`` on every site's test split stacked into one: the data-lake metric.

    Only a simulation can compute this, because it needs every site's records in one place.
    """
    X = np.vstack([c.X_test for c in cohorts])
    y = np.concatenate([c.y_test for c in cohorts])
    return evaluate_classifier(y, model.predict_proba(parameters, X))


def replace_site(cohorts: Sequence[SiteData], spec: HospitalSpec, rng: np.random.Generator) -> list[SiteData]:
    """Return ``cohorts`` with the site named ``spec.name`` drawn anew from ``spec``; the others are unchanged.

    Raises
    ------
    ValueError
        When no cohort has the name ``spec.name``.
    """
    check_rng(rng)
    names = [c.name for c in cohorts]
    if spec.name not in names:
        raise ValueError(f"no site named {spec.name!r} to replace; sites are {names}")
    (replacement,) = make_risk_cohorts([spec], rng)
    return [replacement if c.name == spec.name else c for c in cohorts]


@dataclass(frozen=True)
class SiteScenario:
    """Per-site evaluations of a fixed model after one site's cohort changed."""

    evaluations: list[SiteEvaluation]
    summary: SiteMetricSummary
    pooled: dict[str, float]


def site_metric_scenario(cohorts: Sequence[SiteData], spec: HospitalSpec, parameters: np.ndarray, model, *,
                         num_patients: int, prevalence: float, lab_bias: float, concept_shift: float,
                         rng: np.random.Generator) -> SiteScenario:
    """Redraw one site with a new size, prevalence, lab bias and concept shift, then evaluate a fixed model.

    This is the computation behind the chapter 2 widget: ``spec`` is the site's
    base description, the keyword arguments override four of its fields, and
    ``rng`` draws only that site's new cohort.

    Raises
    ------
    ValueError
        For an invalid override (named by :class:`~fedmed_lab.data.HospitalSpec`),
        or when the redrawn site's test split holds one class only.
    """
    changed = dataclasses.replace(spec, num_patients=num_patients, prevalence=prevalence, lab_bias=lab_bias,
                                  concept_shift=concept_shift)
    new_cohorts = replace_site(cohorts, changed, rng)
    hospitals = [c.to_hospital() for c in new_cohorts]
    evaluations = evaluate_sites(hospitals, parameters, model)
    return SiteScenario(
        evaluations=evaluations,
        summary=summarise_evaluations(evaluations, "auroc"),
        pooled=pooled_test_metrics(new_cohorts, parameters, model),
    )
