"""Drift monitoring after deployment, computed from histograms the sites share.

No record leaves a site. Each month a site bins each monitored feature on
bin edges the federation fixed in advance and sends only the counts
(optionally with Laplace noise for differential privacy). The coordinator
compares each month's counts with the site's reference months:

- population stability index (PSI), ``sum_i (q_i - p_i) ln(q_i / p_i)``
  over the bins, with ``p`` the reference and ``q`` the current shares. It
  is the symmetrised Kullback-Leibler divergence (Jeffreys divergence).
  Under no drift, ``PSI / (1/n + 1/m)`` is approximately chi-square with
  ``B - 1`` degrees of freedom for ``B`` occupied bins, which gives a
  threshold for a chosen false-alarm rate;
- the two-sample Kolmogorov-Smirnov statistic ``D``, the largest gap
  between the two empirical CDFs. From histograms the CDFs are known only at
  the bin edges, so the histogram ``D`` never exceeds the ``D`` of the raw
  values and equals it when every bin contains a single distinct value. A
  threshold from the asymptotic Kolmogorov distribution therefore keeps its
  false-alarm rate (or a lower one) on binned data.

Labels arrive months after a prediction, so per-site performance (Brier
score, calibration-in-the-large, AUROC) is known only for months at least
``label_delay`` in the past. A change in prevalence alone leaves the feature
histograms unchanged and shows up only there.

:func:`simulate_deployment` draws the months with
:func:`fedmed_lab.data.make_risk_cohorts`, applying :class:`DriftEvent`
changes (a new referral pattern, a new lab analyser, a prevalence shift) from
their start month.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from fedmed_lab._checks import check_non_negative_int, check_positive_float, check_positive_int, check_rng
from fedmed_lab.data import FEATURE_NAMES, HospitalSpec, make_risk_cohorts
from fedmed_lab.metrics import auroc, brier_score
from fedmed_lab.sites import SiteEvaluation

# Standardised-scale bin edges shared by every site: half a standard
# deviation wide between -3 and 3, plus two open tail bins.
DEFAULT_BIN_EDGES: np.ndarray = np.concatenate([[-np.inf], np.arange(-3.0, 3.01, 0.5), [np.inf]])


def _check_false_alarm_rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < value < 1.0:
        raise ValueError(f"false_alarm_rate must be in (0, 1), got {value!r}; 0.05 is a common choice")
    return float(value)


def _check_counts(counts: object, name: str) -> np.ndarray:
    array = np.asarray(counts, dtype=float)
    if array.ndim != 1 or array.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 bin counts, got shape {array.shape}")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must hold finite non-negative counts, got {array.tolist()}")
    if array.sum() <= 0:
        raise ValueError(f"{name} is empty (all counts are 0); a site must report at least one record")
    return array


def _check_pair(reference_counts: object, current_counts: object) -> tuple[np.ndarray, np.ndarray]:
    reference = _check_counts(reference_counts, "reference_counts")
    current = _check_counts(current_counts, "current_counts")
    if reference.shape != current.shape:
        raise ValueError(
            f"reference_counts and current_counts must use the same bins, got {reference.size} and {current.size} "
            "bins; every site must bin on the shared edges"
        )
    return reference, current


# --- Site side: histograms on shared edges -------------------------------------------------------

def check_bin_edges(edges: object) -> np.ndarray:
    """Return ``edges`` as a float array after checking it is strictly increasing with at least 2 bins."""
    array = np.asarray(edges, dtype=float)
    if array.ndim != 1 or array.size < 3:
        raise ValueError(f"edges must be a 1-D array of at least 3 bin edges (2 bins), got shape {array.shape}")
    if np.any(np.isnan(array)) or np.any(np.diff(array) <= 0):
        raise ValueError(f"edges must be strictly increasing, got {array.tolist()}")
    return array


def histogram_counts(values: object, edges: object) -> np.ndarray:
    """Count ``values`` in the bins ``[e_i, e_{i+1})``; the last bin also contains its right edge.

    Parameters
    ----------
    values : array of shape (n,)
        One feature's values at one site.
    edges : array of shape (B + 1,)
        The shared, strictly increasing bin edges; use ``-inf`` and ``inf`` as
        the outer edges so no value falls outside.

    Returns
    -------
    ndarray of shape (B,), int64

    Raises
    ------
    ValueError
        When a value lies outside ``[edges[0], edges[-1]]`` or is NaN, because a
        dropped record would bias every drift measure.
    """
    edges = check_bin_edges(edges)
    values = np.asarray(values, dtype=float).ravel()
    outside = (values < edges[0]) | (values > edges[-1]) | np.isnan(values)
    if np.any(outside):
        raise ValueError(
            f"{int(outside.sum())} values lie outside the bin edges [{edges[0]}, {edges[-1]}] or are NaN, "
            f"for example {float(values[outside][0])}; use -inf and inf as the outer edges"
        )
    counts, _ = np.histogram(values, bins=edges)
    return counts.astype(np.int64)


def privatize_counts(counts: object, *, epsilon: float, rng: np.random.Generator) -> np.ndarray:
    """Add Laplace noise of scale ``1 / epsilon`` to each bin count, then clip at 0.

    Adding or removing one patient changes one count by 1, so the histogram
    has L1 sensitivity 1 and the Laplace mechanism with scale ``1 / epsilon``
    is ``epsilon``-differentially private for one release (Dwork, McSherry,
    Nissim and Smith, TCC 2006). Clipping is post-processing and keeps the
    guarantee. Releases about the same patients add up (basic composition):
    histograms of ten features of one month cost ``10 * epsilon``. Months
    with disjoint patients compose in parallel and cost nothing extra, but a
    patient who returns in a later month is counted again.

    Returns
    -------
    ndarray of the shape of ``counts``, float
    """
    check_positive_float(epsilon, "epsilon")
    check_rng(rng)
    counts = np.asarray(counts, dtype=float)
    noisy = counts + rng.laplace(0.0, 1.0 / epsilon, size=counts.shape)
    return np.clip(noisy, 0.0, None)


# --- Coordinator side: drift measures from counts -------------------------------------------------

def population_stability_index(reference_counts: object, current_counts: object, *,
                               pseudocount: float = 0.5) -> float:
    """Compute PSI ``sum_i (q_i - p_i) ln(q_i / p_i)`` between two histograms on the same bins.

    Bins empty in both histograms are dropped first, so unused tail bins do
    not change the result. Then ``pseudocount`` is added to every remaining
    bin of both histograms before normalising, so a bin empty in only one
    of them gives a finite value. PSI is 0 for identical shares and
    symmetric in its arguments.

    Parameters
    ----------
    reference_counts, current_counts : arrays of shape (B,)
        Non-negative counts; noisy (float) counts are accepted.
    pseudocount : float
        Added to each bin; must be positive.
    """
    reference, current = _check_pair(reference_counts, current_counts)
    check_positive_float(pseudocount, "pseudocount")
    occupied = (reference > 0) | (current > 0)
    p = reference[occupied] + pseudocount
    q = current[occupied] + pseudocount
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((q - p) * np.log(q / p)))


def ks_statistic(reference_counts: object, current_counts: object) -> float:
    """Compute the Kolmogorov-Smirnov ``D`` from two histograms on the same bins.

    ``D = max_i |F_ref(e_i) - F_cur(e_i)|`` over the inner bin edges. It is a
    lower bound on ``D`` of the raw values, with equality when every bin
    contains one distinct value (integer data on half-integer edges).
    """
    reference, current = _check_pair(reference_counts, current_counts)
    gaps = np.abs(np.cumsum(reference) / reference.sum() - np.cumsum(current) / current.sum())
    return float(gaps.max())


def kolmogorov_sf(x: float) -> float:
    """Return ``P(K > x)`` for the Kolmogorov distribution, the limit law of ``sqrt(n_e) D``.

    Uses ``2 sum_k (-1)^(k-1) exp(-2 k^2 x^2)`` for ``x >= 1`` and the theta-
    function form ``1 - sqrt(2 pi) / x sum_k exp(-(2k-1)^2 pi^2 / (8 x^2))``
    below, each of which converges within a few terms in its range.
    """
    x = float(x)
    if x <= 0.0:
        return 1.0
    if x >= 1.0:
        return float(min(1.0, 2.0 * sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * x * x) for k in range(1, 101))))
    cdf = math.sqrt(2.0 * math.pi) / x * sum(
        math.exp(-((2 * k - 1) ** 2) * math.pi**2 / (8.0 * x * x)) for k in range(1, 101)
    )
    return float(1.0 - cdf)


@functools.lru_cache(maxsize=256)
def kolmogorov_isf(probability: float) -> float:
    """Return ``x`` with ``kolmogorov_sf(x) == probability``, by bisection to 1e-12."""
    probability = _check_false_alarm_rate(probability)
    low, high = 0.1, 10.0
    while high - low > 1e-12:
        middle = 0.5 * (low + high)
        if kolmogorov_sf(middle) > probability:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def ks_threshold(n_reference: float, n_current: float, *, false_alarm_rate: float) -> float:
    """Return the ``D`` above which two samples of these sizes differ at ``false_alarm_rate``.

    ``D_crit = x_alpha * sqrt((n + m) / (n m))`` with ``x_alpha`` the upper
    ``alpha`` quantile of the Kolmogorov distribution. The rate is asymptotic
    for continuous data and conservative for histogram ``D``.
    """
    n = check_positive_float(n_reference, "n_reference")
    m = check_positive_float(n_current, "n_current")
    return kolmogorov_isf(false_alarm_rate) * math.sqrt((n + m) / (n * m))


@functools.lru_cache(maxsize=256)
def chi_square_isf(probability: float, degrees_of_freedom: int) -> float:
    """Return the upper ``probability`` quantile of chi-square by the Wilson-Hilferty approximation.

    ``k (1 - 2/(9k) + z sqrt(2/(9k)))^3`` with ``z`` the standard normal
    quantile; the relative error is below 2 % for ``k >= 3`` and
    probabilities down to 0.001.
    """
    probability = _check_false_alarm_rate(probability)
    k = check_positive_int(degrees_of_freedom, "degrees_of_freedom")
    z = NormalDist().inv_cdf(1.0 - probability)
    return k * (1.0 - 2.0 / (9.0 * k) + z * math.sqrt(2.0 / (9.0 * k))) ** 3


def psi_threshold(n_reference: float, n_current: float, num_bins: int, *, false_alarm_rate: float) -> float:
    """Return the PSI above which two samples of these sizes differ at ``false_alarm_rate``.

    Under no drift ``PSI ~ (1/n + 1/m) chi2(B - 1)`` approximately, for
    ``B = num_bins`` occupied bins. The approximation is loose when expected
    counts per bin are below about 5, so measure the rate on stable months.
    """
    n = check_positive_float(n_reference, "n_reference")
    m = check_positive_float(n_current, "n_current")
    bins = check_positive_int(num_bins, "num_bins")
    if bins < 2:
        raise ValueError(f"num_bins must be at least 2 occupied bins, got {bins}")
    return (1.0 / n + 1.0 / m) * chi_square_isf(false_alarm_rate, bins - 1)


def measured_false_alarm_rate(alerts: object) -> tuple[float, float]:
    """Return the share of alerts over stable periods and its binomial standard error.

    The standard error is ``sqrt(max(p * (1 - p), 1 / m) / m)`` for a share ``p``
    of ``m`` periods. The floor on ``p * (1 - p)`` keeps it above zero when no
    period, or every period, raised an alert. A share of 0 is then reported
    with the error of one alert in ``m`` periods, ``1 / m``, because the
    unfloored formula would return 0 and claim certainty.

    Parameters
    ----------
    alerts : array of bool
        One entry per stable site-month (or per stable period and seed).

    Returns
    -------
    tuple of float
        ``(share, standard_error)``.

    Raises
    ------
    ValueError
        If ``alerts`` is empty.
    """
    alerts = np.asarray(alerts, dtype=bool).ravel()
    if alerts.size == 0:
        raise ValueError("alerts is empty; pass at least one stable period")
    rate = float(alerts.mean())
    return rate, math.sqrt(max(rate * (1.0 - rate), 1.0 / alerts.size) / alerts.size)


# --- Simulated deployment -------------------------------------------------------------------------

@dataclass(frozen=True)
class DriftEvent:
    """A change at one site from ``start_month`` on.

    Attributes
    ----------
    site_id : str
        The site that changes.
    start_month : int
        First month (0-based) with the change.
    case_mix : float
        Added to the site's mean latent severity (a new referral pattern).
    lab_bias : float
        Added to the lactate and creatinine offset, in reference standard
        deviations (a new, differently calibrated lab analyser).
    prevalence : float or None
        The site's new outcome rate, or None to keep it.
    label : str
        A short description for plots and tables.
    """

    site_id: str
    start_month: int
    case_mix: float = 0.0
    lab_bias: float = 0.0
    prevalence: float | None = None
    label: str = ""

    def __post_init__(self) -> None:
        check_non_negative_int(self.start_month, "start_month")
        if self.prevalence is not None and not 0.0 < self.prevalence < 1.0:
            raise ValueError(f"prevalence of the event at {self.site_id!r} must be in (0, 1), got {self.prevalence!r}")

    def apply(self, spec: HospitalSpec) -> HospitalSpec:
        """Return ``spec`` with this event's changes."""
        return dataclasses.replace(
            spec,
            case_mix=spec.case_mix + self.case_mix,
            lab_bias=spec.lab_bias + self.lab_bias,
            prevalence=spec.prevalence if self.prevalence is None else self.prevalence,
        )


class DeployedSite:
    """A hospital in deployment that keeps each month's records and shares only summaries.

    Public methods return bin counts (:meth:`feature_histogram`) or a
    :class:`~fedmed_lab.sites.SiteEvaluation` (:meth:`evaluate`), never records.

    Parameters
    ----------
    site_id : str
        The site's id.
    monthly_records : sequence of (X, y) pairs
        One pair per month, ``X`` standardised features of shape (n_t, d).
    label_delay : int
        Months until a month's outcomes are known.
    """

    def __init__(self, site_id: str, monthly_records: Sequence[tuple[np.ndarray, np.ndarray]], *, label_delay: int):
        self.site_id = site_id
        self.__months = tuple((np.array(X, dtype=float), np.array(y, dtype=float)) for X, y in monthly_records)
        self.label_delay = check_non_negative_int(label_delay, "label_delay")

    @property
    def num_months(self) -> int:
        return len(self.__months)

    def monthly_volume(self, month: int) -> int:
        """Return the number of patients seen in ``month`` (a count, which may leave the site)."""
        return int(self.__months[self._check_month(month)][0].shape[0])

    def _check_month(self, month: int) -> int:
        check_non_negative_int(month, "month")
        if month >= len(self.__months):
            raise ValueError(f"site {self.site_id!r} has months 0 to {len(self.__months) - 1}, got month {month}")
        return month

    def feature_histogram(self, months: int | Sequence[int], feature: str, edges: object, *,
                          epsilon: float | None = None, rng: np.random.Generator | None = None) -> np.ndarray:
        """Return the counts of one feature over ``months`` on the shared ``edges``.

        With ``epsilon`` the counts carry Laplace noise (see
        :func:`privatize_counts`) drawn from ``rng``.
        """
        if feature not in FEATURE_NAMES:
            raise ValueError(f"unknown feature {feature!r}; choose one of {list(FEATURE_NAMES)}")
        months = [months] if isinstance(months, numbers.Integral) else list(months)
        column = FEATURE_NAMES.index(feature)
        values = np.concatenate([self.__months[self._check_month(t)][0][:, column] for t in months])
        counts = histogram_counts(values, edges)
        if epsilon is None:
            return counts
        if rng is None:
            raise ValueError("epsilon was given without rng; pass rng=numpy.random.default_rng(seed) for the noise")
        return privatize_counts(counts, epsilon=epsilon, rng=rng)

    def evaluate(self, month: int, parameters: np.ndarray, model, *, current_month: int) -> SiteEvaluation | None:
        """Score ``parameters`` on ``month``'s patients, or return None while their labels are pending.

        Labels of ``month`` are known from ``month + label_delay`` on. The
        metrics are the Brier score, calibration-in-the-large (mean predicted
        risk minus observed rate), the observed rate and, when both outcomes
        occur, AUROC (NaN otherwise).
        """
        self._check_month(month)
        if current_month < month + self.label_delay:
            return None
        X, y = self.__months[month]
        risk = model.predict_proba(parameters, X)
        both_classes = 0.0 < y.mean() < 1.0
        metrics = {
            "brier": brier_score(y, risk),
            "calibration_in_the_large": float(risk.mean() - y.mean()),
            "prevalence": float(y.mean()),
            "auroc": auroc(y, risk) if both_classes else float("nan"),
        }
        return SiteEvaluation(site_id=self.site_id, num_examples=int(y.size), metrics=metrics)

    def __repr__(self) -> str:
        return f"DeployedSite({self.site_id!r}, months={self.num_months}, label_delay={self.label_delay})"


def monthly_spec(spec: HospitalSpec, events: Sequence[DriftEvent], month: int, num_patients: int) -> HospitalSpec:
    """Return the spec that generates ``month`` at this site: every event started by then applied in order."""
    current = dataclasses.replace(spec, num_patients=num_patients, concept_shift=0.0)
    for event in events:
        if event.site_id == spec.name and event.start_month <= month:
            current = event.apply(current)
    return current


def simulate_deployment(specs: Sequence[HospitalSpec], *, months: int, rng: np.random.Generator,
                        events: Sequence[DriftEvent] = (), patients_per_month: Mapping[str, int] | None = None,
                        label_delay: int = 3) -> list[DeployedSite]:
    """Draw ``months`` months of patients at each site, with the drift ``events`` applied.

    Each site-month is one call of :func:`fedmed_lab.data.make_risk_cohorts`
    on the site's spec with the started events applied (and its
    ``concept_shift`` set to 0, so the outcome model stays fixed unless an
    event changes the prevalence). Draw order: month by month, site by site.

    Parameters
    ----------
    specs : sequence of HospitalSpec
        The federation.
    months : int
        Months to simulate.
    rng : numpy.random.Generator
        The only source of randomness.
    events : sequence of DriftEvent
        Changes with their start months; each must name a site in ``specs``.
    patients_per_month : mapping of site id to int, optional
        Monthly volume; by default ``num_patients // 12``, at least 20.
    label_delay : int
        Months until outcomes are known.
    """
    check_rng(rng)
    check_positive_int(months, "months")
    names = [spec.name for spec in specs]
    unknown = sorted({event.site_id for event in events}.difference(names))
    if unknown:
        raise ValueError(f"drift events name unknown sites {unknown}; known sites are {names}")
    volumes = {spec.name: max(20, spec.num_patients // 12) for spec in specs}
    volumes.update(patients_per_month or {})

    records: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in names}
    for month in range(months):
        month_specs = [monthly_spec(spec, events, month, volumes[spec.name]) for spec in specs]
        for cohort in make_risk_cohorts(month_specs, rng):
            X = np.vstack([cohort.X_train, cohort.X_test])
            y = np.concatenate([cohort.y_train, cohort.y_test])
            records[cohort.name].append((X, y))
    return [DeployedSite(name, records[name], label_delay=label_delay) for name in names]


# --- Monitoring over time -------------------------------------------------------------------------

@dataclass(frozen=True)
class DriftTimeline:
    """Drift measures per site, month and feature, as the coordinator computes them.

    Arrays have shape ``(num_sites, num_months, num_features)``; months inside
    the reference window hold NaN and never alert.
    """

    site_ids: tuple[str, ...]
    features: tuple[str, ...]
    reference_months: int
    false_alarm_rate: float
    psi: np.ndarray
    ks: np.ndarray
    psi_thresholds: np.ndarray
    ks_thresholds: np.ndarray

    @property
    def ks_alerts(self) -> np.ndarray:
        """Alerts per site and month, shape (num_sites, num_months): any feature's ``D`` above threshold."""
        return np.any(np.nan_to_num(self.ks - self.ks_thresholds, nan=-1.0) > 0, axis=2)

    @property
    def psi_alerts(self) -> np.ndarray:
        """Alerts per site and month from the calibrated PSI thresholds."""
        return np.any(np.nan_to_num(self.psi - self.psi_thresholds, nan=-1.0) > 0, axis=2)

    def ks_ratio(self) -> np.ndarray:
        """Return the largest ``D / threshold`` over features, shape (num_sites, num_months); NaN before monitoring."""
        ratio = np.full(self.ks.shape[:2], np.nan)
        monitored = slice(self.reference_months, None)
        ratio[:, monitored] = np.max(self.ks[:, monitored] / self.ks_thresholds[:, monitored], axis=2)
        return ratio

    def rule_of_thumb_alerts(self, cutoff: float = 0.25) -> np.ndarray:
        """Alerts per site and month from a fixed PSI cutoff that ignores sample size."""
        return np.any(np.nan_to_num(self.psi, nan=-1.0) > cutoff, axis=2)

    def first_alert(self, site_id: str, alerts: np.ndarray | None = None) -> int | None:
        """Return the first month with an alert at ``site_id`` (KS alerts by default), or None."""
        alerts = self.ks_alerts if alerts is None else alerts
        months = np.flatnonzero(alerts[self.site_ids.index(site_id)])
        return int(months[0]) if months.size else None


def monitor_deployment(sites: Sequence[DeployedSite], *, features: Sequence[str] = FEATURE_NAMES,
                       edges: object = DEFAULT_BIN_EDGES, reference_months: int = 3,
                       false_alarm_rate: float = 0.05, epsilon: float | None = None,
                       rng: np.random.Generator | None = None) -> DriftTimeline:
    """Compute PSI and KS for every site, month and feature against the site's reference months.

    Each site sends the counts of its first ``reference_months`` months
    pooled, then one histogram per month. ``false_alarm_rate`` is the
    family-wise rate per site-month: each of the ``F`` features is tested at
    ``false_alarm_rate / F`` (Bonferroni), so the chance of any false alert
    in a stable site-month is at most ``false_alarm_rate`` (asymptotically for
    KS; approximately for PSI).

    With ``epsilon`` every histogram carries Laplace noise; the thresholds
    then ignore the noise, so measure their rate on stable months.
    """
    edges = check_bin_edges(edges)
    rate = _check_false_alarm_rate(false_alarm_rate)
    check_positive_int(reference_months, "reference_months")
    features = tuple(features)
    num_months = min(site.num_months for site in sites)
    if reference_months >= num_months:
        raise ValueError(f"reference_months must be below the {num_months} simulated months, got {reference_months}")
    per_test_rate = rate / len(features)

    shape = (len(sites), num_months, len(features))
    psi, ks, psi_limit, ks_limit = (np.full(shape, np.nan) for _ in range(4))
    for s, site in enumerate(sites):
        for f, feature in enumerate(features):
            reference = site.feature_histogram(range(reference_months), feature, edges, epsilon=epsilon, rng=rng)
            for month in range(reference_months, num_months):
                current = site.feature_histogram(month, feature, edges, epsilon=epsilon, rng=rng)
                psi[s, month, f] = population_stability_index(reference, current)
                ks[s, month, f] = ks_statistic(reference, current)
                occupied = int(np.count_nonzero((reference > 0) | (current > 0)))
                psi_limit[s, month, f] = psi_threshold(reference.sum(), current.sum(), max(occupied, 2),
                                                       false_alarm_rate=per_test_rate)
                ks_limit[s, month, f] = ks_threshold(reference.sum(), current.sum(), false_alarm_rate=per_test_rate)
    return DriftTimeline(tuple(site.site_id for site in sites), features, reference_months, rate,
                         psi, ks, psi_limit, ks_limit)


def stable_mask(site_ids: Sequence[str], num_months: int, events: Sequence[DriftEvent], *,
                reference_months: int) -> np.ndarray:
    """Return a (num_sites, num_months) mask of monitored months before any event at the site."""
    mask = np.zeros((len(site_ids), num_months), dtype=bool)
    for s, site_id in enumerate(site_ids):
        starts = [event.start_month for event in events if event.site_id == site_id]
        mask[s, reference_months:min(starts, default=num_months)] = True
    return mask


def performance_timeline(sites: Sequence[DeployedSite], parameters: np.ndarray, model, *, current_month: int,
                         metric: str = "calibration_in_the_large") -> np.ndarray:
    """Return one metric per site and month, shape (num_sites, num_months); NaN while labels are pending."""
    num_months = min(site.num_months for site in sites)
    values = np.full((len(sites), num_months), np.nan)
    for s, site in enumerate(sites):
        for month in range(num_months):
            evaluation = site.evaluate(month, parameters, model, current_month=current_month)
            if evaluation is not None:
                values[s, month] = evaluation.metrics[metric]
    return values


def drift_strength_scan(lab_bias: float, *, seed: int, months: int = 18, start_month: int = 9,
                        reference_months: int = 3, patients_per_month: int = 150,
                        false_alarm_rate: float = 0.05) -> DriftTimeline:
    """Monitor one site whose new lab analyser adds ``lab_bias`` from ``start_month``; the widget's computation.

    The site is a community hospital (case mix 0, prevalence 0.12) seeing
    ``patients_per_month`` patients; only lactate and creatinine are
    monitored. ``lab_bias`` 0 gives a stable site.
    """
    spec = HospitalSpec("community", 12 * patients_per_month, prevalence=0.12)
    events = [DriftEvent("community", start_month, lab_bias=float(lab_bias), label="new lab analyser")]
    sites = simulate_deployment([spec], months=months, rng=np.random.default_rng(seed), events=events,
                                patients_per_month={"community": patients_per_month})
    return monitor_deployment(sites, features=("lactate", "creatinine"), reference_months=reference_months,
                              false_alarm_rate=false_alarm_rate)
