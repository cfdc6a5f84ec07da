"""Data generators: the chapter 1 linear experiment and a clinical risk-cohort generator.

Every generator takes a :class:`numpy.random.Generator` and draws from it in a
documented order, so a seed reproduces a federation draw for draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import (
    check_non_negative_float,
    check_positive_float,
    check_probability,
    check_rng,
    check_site_sizes,
)
from fedmed_lab.models import sigmoid
from fedmed_lab.sites import Hospital


@dataclass(frozen=True)
class LinearExperiment:
    """The chapter 1 draw: the evaluation point ``w`` and each site's ``(X_k, y_k)``."""

    w: np.ndarray
    datasets: tuple[tuple[np.ndarray, np.ndarray], ...]

    @property
    def num_examples(self) -> list[int]:
        return [int(X.shape[0]) for X, _ in self.datasets]


def make_linear_sites(site_sizes: Sequence[int], rng: np.random.Generator, *, num_features: int = 4,
                      shift_scale: float = 0.3, noise_scale: float = 0.1) -> LinearExperiment:
    """Draw the chapter 1 linear experiment.

    Draw order, which reproduces the source chapter's numbers with
    ``numpy.random.default_rng(0)``: first ``w`` (``num_features`` standard
    normals); then, site by site, ``X_k`` (``n_k x d`` standard normals), a
    shift (``d`` standard normals times ``shift_scale``) and
    ``y_k = X_k (w + shift) + noise_scale * (n_k standard normals)``.

    Parameters
    ----------
    site_sizes : sequence of int
        n_k for each site, all positive.
    rng : numpy.random.Generator
        The only source of randomness.
    """
    sizes = check_site_sizes(site_sizes)
    check_rng(rng)
    check_non_negative_float(shift_scale, "shift_scale")
    check_non_negative_float(noise_scale, "noise_scale")

    w = rng.standard_normal(num_features)
    datasets = []
    for n_k in sizes:
        X_k = rng.standard_normal((int(n_k), num_features))
        shift = rng.standard_normal(num_features) * shift_scale
        y_k = X_k @ (w + shift) + noise_scale * rng.standard_normal(int(n_k))
        datasets.append((X_k, y_k))
    return LinearExperiment(w=w, datasets=tuple(datasets))


# The risk-cohort features, their units, and the reference mean and standard
# deviation used to standardise them. Reference values are fixed published-style
# constants, not statistics of the pooled data, because no site may see the pool.
FEATURES: tuple[tuple[str, str, float, float], ...] = (
    ("age", "years", 62.0, 16.0),
    ("heart_rate", "beats/min", 88.0, 18.0),
    ("systolic_bp", "mmHg", 124.0, 20.0),
    ("respiratory_rate", "breaths/min", 19.0, 4.5),
    ("temperature", "degC", 37.1, 0.8),
    ("lactate", "mmol/L", 1.8, 1.0),
    ("wbc", "10^9/L", 9.5, 3.8),
    ("creatinine", "mg/dL", 1.1, 0.45),
    ("comorbidity_index", "count", 2.5, 1.8),
    ("prior_admissions", "count", 1.0, 1.2),
)
FEATURE_NAMES: tuple[str, ...] = tuple(name for name, *_ in FEATURES)

# How each standardised feature moves with the latent severity of a patient,
# and the reference log-odds coefficient of each on the outcome.
_SEVERITY_LOADING = np.array([0.45, 0.55, -0.45, 0.55, 0.35, 0.6, 0.45, 0.4, 0.5, 0.45])
_REFERENCE_COEFFICIENTS = np.array([0.35, 0.45, -0.35, 0.5, 0.2, 0.7, 0.3, 0.35, 0.4, 0.45])
_LACTATE = FEATURE_NAMES.index("lactate")
_CREATININE = FEATURE_NAMES.index("creatinine")


@dataclass(frozen=True)
class HospitalSpec:
    """How one hospital's cohort differs from the reference population.

    Attributes
    ----------
    name : str
        Site id.
    num_patients : int
        Patients at the site (train and test together).
    case_mix : float
        Mean latent severity in standard deviations (covariate shift): an
        academic referral centre treats sicker patients than a rural clinic.
    prevalence : float
        Target outcome rate in (0, 1) (label shift), reached by adjusting the
        intercept of the outcome model at this site.
    concept_shift : float
        Standard deviation of a site-specific perturbation of the outcome
        coefficients (the feature-outcome relation differs).
    lab_bias : float
        Additive offset, in reference standard deviations, on the lactate and
        creatinine readings (a miscalibrated lab analyser).
    speed : float
        Relative compute speed, records per unit time.
    """

    name: str
    num_patients: int
    case_mix: float = 0.0
    prevalence: float = 0.15
    concept_shift: float = 0.0
    lab_bias: float = 0.0
    speed: float = 1.0

    def __post_init__(self) -> None:
        check_site_sizes([self.num_patients], f"num_patients of {self.name!r}")
        if not 0.0 < self.prevalence < 1.0:
            raise ValueError(f"prevalence of {self.name!r} must be in (0, 1), got {self.prevalence!r}")
        check_non_negative_float(self.concept_shift, f"concept_shift of {self.name!r}")
        check_positive_float(self.speed, f"speed of {self.name!r}")


@dataclass(frozen=True)
class SiteData:
    """One hospital's standardised records, split into train and test.

    ``coefficients`` and ``intercept`` are the generator's true outcome model
    at this site; they are ``None`` for real data, where nobody knows them.
    """

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    coefficients: np.ndarray | None = None
    intercept: float | None = None
    speed: float = 1.0

    def to_hospital(self):
        """Wrap the records in a :class:`~fedmed_lab.sites.Hospital` that keeps them private."""
        return Hospital(self.name, self.X_train, self.y_train, self.X_test, self.y_test, speed=self.speed)


def raw_to_standardised(raw: np.ndarray) -> np.ndarray:
    """Standardise raw clinical values with the fixed reference means and standard deviations."""
    means = np.array([m for *_, m, _ in FEATURES])
    scales = np.array([s for *_, s in FEATURES])
    return (np.asarray(raw, dtype=float) - means) / scales


def standardised_to_raw(z: np.ndarray) -> np.ndarray:
    """Convert standardised values back to clinical units, for plots."""
    means = np.array([m for *_, m, _ in FEATURES])
    scales = np.array([s for *_, s in FEATURES])
    return np.asarray(z, dtype=float) * scales + means


def _intercept_for_prevalence(logits: np.ndarray, prevalence: float) -> float:
    """Find the intercept b with mean(sigmoid(logits + b)) == prevalence, by bisection."""
    low, high = -30.0, 30.0
    for _ in range(80):
        middle = 0.5 * (low + high)
        if sigmoid(logits + middle).mean() < prevalence:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def make_risk_cohorts(specs: Sequence[HospitalSpec], rng: np.random.Generator, *,
                      test_fraction: float = 0.3) -> list[SiteData]:
    """Generate one clinical risk cohort per hospital spec.

    The model behind the data, stated so a learner can question it:

    - each patient has a latent severity ``s ~ Normal(case_mix, 1)``;
    - standardised features are ``s * loading + Normal(0, 0.8)`` per feature,
      so sicker patients have higher heart rate, lactate and so on, and lower
      blood pressure;
    - the lab analyser adds ``lab_bias`` to lactate and creatinine *after*
      the outcome is drawn, so the bias is measurement error, not biology;
    - the outcome is Bernoulli with log-odds ``x . beta_k + b_k``, where
      ``beta_k`` is the reference coefficient vector plus
      ``Normal(0, concept_shift)`` noise and ``b_k`` is set so the site's
      expected rate equals ``prevalence``;
    - a random ``test_fraction`` of each site's patients (at least one, and at
      least one left for training) form its test split.

    Draws, per site in order: severity, feature noise, coefficient
    perturbation, outcomes, split permutation.
    """
    check_rng(rng)
    check_probability(test_fraction, "test_fraction")
    if not specs:
        raise ValueError("specs is empty; pass at least one HospitalSpec")
    names = [spec.name for spec in specs]
    if len(set(names)) != len(names):
        raise ValueError(f"hospital names must be unique, got {names}")

    cohorts = []
    for spec in specs:
        n = spec.num_patients
        if n < 2:
            raise ValueError(f"hospital {spec.name!r} needs at least 2 patients for a train/test split, got {n}")
        severity = rng.normal(spec.case_mix, 1.0, size=n)
        X = severity[:, None] * _SEVERITY_LOADING + rng.normal(0.0, 0.8, size=(n, len(FEATURES)))

        coefficients = _REFERENCE_COEFFICIENTS + rng.normal(0.0, 1.0, size=len(FEATURES)) * spec.concept_shift
        logits = X @ coefficients
        intercept = _intercept_for_prevalence(logits, spec.prevalence)
        y = (rng.random(n) < sigmoid(logits + intercept)).astype(float)

        X[:, [_LACTATE, _CREATININE]] += spec.lab_bias

        num_test = min(max(1, int(round(test_fraction * n))), n - 1)
        order = rng.permutation(n)
        test, train = order[:num_test], order[num_test:]
        cohorts.append(SiteData(spec.name, X[train], y[train], X[test], y[test], coefficients, intercept, spec.speed))
    return cohorts


def default_federation() -> list[HospitalSpec]:
    """Return the course's five-hospital federation, from a rural clinic to an academic centre."""
    return [
        HospitalSpec("rural_clinic", 120, case_mix=-0.4, prevalence=0.06, concept_shift=0.1, speed=0.3),
        HospitalSpec("community_a", 900, case_mix=-0.1, prevalence=0.10, lab_bias=0.5, speed=0.8),
        HospitalSpec("academic_centre", 12000, case_mix=0.5, prevalence=0.22, speed=4.0),
        HospitalSpec("community_b", 1500, case_mix=0.0, prevalence=0.12, concept_shift=0.25, speed=1.0),
        HospitalSpec("regional", 4000, case_mix=0.2, prevalence=0.16, lab_bias=-0.3, speed=2.0),
    ]
