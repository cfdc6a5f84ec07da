"""Load the UCI Heart Disease data of its four hospitals as federation sites.

The data is the UCI Machine Learning Repository's "Heart Disease" set
(Detrano et al., American Journal of Cardiology 64, 1989). It comes from four
institutions: Cleveland Clinic, the Hungarian Institute of Cardiology in
Budapest, the University Hospitals of Zurich and Basel, and the VA Medical
Center in Long Beach. Each ``processed.<site>.data`` file holds one patient per line, 14
comma-separated columns, ``?`` for a missing value; the last column is the
diagnosis 0-4, and any value above 0 counts as disease here. The course does
not ship or download the files: the learner names the folder that holds them.

Missing-value policy (applied by :func:`load_heart_disease`):

1. A zero in ``chol`` (serum cholesterol) or ``trestbps`` (resting blood
   pressure) is physiologically impossible and is read as missing. The
   Switzerland file, for example, reports cholesterol 0 for every patient.
2. Each site computes the fraction of missing values per column on its own
   records and sends only those fractions. A column missing in more than
   ``max_missing_fraction`` of the records at any one site is dropped at every
   site, because the federation needs one common feature set and a column
   that one site barely measures cannot be imputed there.
3. Each site splits its records into train and test stratified by outcome,
   so a small site with few healthy (or few ill) patients still has both
   classes in its test split.
4. In every kept column that has a missing value at any site, the site fills
   the gaps with its own training-split median (the most frequent level for a
   categorical column) and the model gets a 0/1 missingness indicator, so a
   missing reading may carry information of its own.
5. Categorical columns are one-hot encoded against their first level.
6. Features are standardised with a mean and standard deviation pooled from
   per-site counts, sums and sums of squares of the training splits: only
   those aggregates travel, never a record.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedmed_lab._checks import check_probability, check_rng
from fedmed_lab.data import SiteData

COLUMNS: tuple[str, ...] = (
    "age", "sex", "cp", "trestbps", "chol", "fbs", "restecg",
    "thalach", "exang", "oldpeak", "slope", "ca", "thal", "num",
)
FEATURE_COLUMNS: tuple[str, ...] = COLUMNS[:-1]

# Site id and file name of each hospital, in the order the course uses.
SITE_FILES: dict[str, str] = {
    "cleveland": "processed.cleveland.data",
    "hungarian": "processed.hungarian.data",
    "switzerland": "processed.switzerland.data",
    "va_long_beach": "processed.va.data",
}

# Categorical columns and their levels; the first level is the reference.
CATEGORICAL_LEVELS: dict[str, tuple[float, ...]] = {
    "cp": (1.0, 2.0, 3.0, 4.0),
    "restecg": (0.0, 1.0, 2.0),
    "slope": (1.0, 2.0, 3.0),
    "thal": (3.0, 6.0, 7.0),
}

# Columns where a recorded 0 means "not measured".
ZERO_MEANS_MISSING: tuple[str, ...] = ("trestbps", "chol")


class HeartDiseaseFormatError(ValueError):
    """A line of a ``processed.<site>.data`` file that cannot be read."""


def read_heart_disease_file(path: str | Path) -> np.ndarray:
    """Read one ``processed.<site>.data`` file into a float array.

    Parameters
    ----------
    path : str or Path
        The file; blank lines are skipped.

    Returns
    -------
    ndarray of shape (n_patients, 14)
        The 14 columns of :data:`COLUMNS`, NaN where the file has ``?``.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    HeartDiseaseFormatError
        When a line does not have 14 fields, a field is neither a number nor
        ``?``, the diagnosis is missing or outside 0-4, or the file contains no
        record; the message names the file and the line number.
    """
    path = Path(path)
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                rows.append(_parse_line(line, path, line_number))
    if not rows:
        raise HeartDiseaseFormatError(f"{path}: no records found; expected lines of {len(COLUMNS)} comma-separated values")
    return np.array(rows, dtype=float)


def _parse_line(line: str, path: Path, line_number: int) -> list[float]:
    fields = [field.strip() for field in line.strip().split(",")]
    if len(fields) != len(COLUMNS):
        raise HeartDiseaseFormatError(
            f"{path}, line {line_number}: expected {len(COLUMNS)} comma-separated values, got {len(fields)}"
        )

    values = []
    for column, field in zip(COLUMNS, fields):
        if field == "?":
            values.append(math.nan)
            continue
        try:
            value = float(field)
        except ValueError:
            raise HeartDiseaseFormatError(
                f"{path}, line {line_number}: column {column!r} has {field!r}, expected a number or '?'"
            ) from None
        if not math.isfinite(value):
            raise HeartDiseaseFormatError(f"{path}, line {line_number}: column {column!r} has {field!r}, expected a finite number")
        values.append(value)

    diagnosis = values[-1]
    if math.isnan(diagnosis) or diagnosis not in (0.0, 1.0, 2.0, 3.0, 4.0):
        raise HeartDiseaseFormatError(
            f"{path}, line {line_number}: diagnosis 'num' must be one of 0, 1, 2, 3, 4, got {fields[-1]!r}"
        )
    return values


def mark_missing(raw: np.ndarray) -> np.ndarray:
    """Return a copy of ``raw`` with the impossible zeros of :data:`ZERO_MEANS_MISSING` set to NaN."""
    marked = np.array(raw, dtype=float, copy=True)
    for column in ZERO_MEANS_MISSING:
        index = COLUMNS.index(column)
        marked[marked[:, index] == 0.0, index] = math.nan
    return marked


def missing_fractions(raw: np.ndarray) -> dict[str, float]:
    """Return the fraction of missing values in each feature column (what a site reports)."""
    return {column: float(np.mean(np.isnan(raw[:, i]))) for i, column in enumerate(FEATURE_COLUMNS)}


@dataclass(frozen=True)
class HeartDiseaseFederation:
    """The loaded sites and the decisions the missing-value policy took.

    Attributes
    ----------
    sites : list of SiteData
        One per hospital, standardised, with train and test splits; use
        ``site.to_hospital()`` for a :class:`~fedmed_lab.sites.Hospital`.
    feature_names : tuple of str
        Names of the model's input columns, in order.
    dropped_columns : dict of str to str
        Each dropped column and the reason (which site misses how much).
    missing : dict of str to dict of str to float
        Per site, the missing fraction of each of the 13 raw feature columns.
    """

    sites: list[SiteData]
    feature_names: tuple[str, ...]
    dropped_columns: dict[str, str]
    missing: dict[str, dict[str, float]]


def choose_columns(missing: dict[str, dict[str, float]], max_missing_fraction: float) -> tuple[list[str], dict[str, str]]:
    """Keep the feature columns that no site misses in more than ``max_missing_fraction`` of its records.

    Returns the kept columns in :data:`FEATURE_COLUMNS` order and a reason for each dropped one.
    """
    kept, dropped = [], {}
    for column in FEATURE_COLUMNS:
        worst_site = max(missing, key=lambda site: missing[site][column])
        worst = missing[worst_site][column]
        if worst > max_missing_fraction:
            dropped[column] = f"{worst:.0%} missing at {worst_site}"
        else:
            kept.append(column)
    return kept, dropped


def _fill_value(train_column: np.ndarray, column: str) -> float:
    present = train_column[~np.isnan(train_column)]
    if present.size == 0:
        # Every training record lacks the value: fall back to the reference level or zero.
        return CATEGORICAL_LEVELS[column][0] if column in CATEGORICAL_LEVELS else 0.0
    if column in CATEGORICAL_LEVELS:
        levels, counts = np.unique(present, return_counts=True)
        return float(levels[np.argmax(counts)])
    return float(np.median(present))


def encode_site(raw: np.ndarray, train: np.ndarray, columns: Sequence[str],
                indicator_columns: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Impute, one-hot encode and add missingness indicators at one site.

    Parameters
    ----------
    raw : ndarray of shape (n, 14)
        The site's records, NaN where missing.
    train : ndarray of int
        Row indices of the training split; fill values come from these rows only.
    columns : sequence of str
        Feature columns to keep, from :data:`FEATURE_COLUMNS`.
    indicator_columns : sequence of str
        Columns that get a 0/1 missingness indicator.

    Returns
    -------
    X : ndarray of shape (n, m)
        The encoded records (not yet standardised).
    names : list of str
        The ``m`` column names.
    """
    fill = {c: _fill_value(raw[train, COLUMNS.index(c)], c) for c in columns}
    blocks, names = [], []
    for column in columns:
        values = raw[:, COLUMNS.index(column)]
        filled = np.where(np.isnan(values), fill[column], values)
        if column in CATEGORICAL_LEVELS:
            for level in CATEGORICAL_LEVELS[column][1:]:
                blocks.append((filled == level).astype(float))
                names.append(f"{column}={level:g}")
        else:
            blocks.append(filled)
            names.append(column)
    for column in indicator_columns:
        blocks.append(np.isnan(raw[:, COLUMNS.index(column)]).astype(float))
        names.append(f"{column}_missing")
    return np.column_stack(blocks), names


def stratified_split(y: np.ndarray, test_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into train and test, holding out ``test_fraction`` of each outcome class.

    A class with at least two members puts at least one in each split, so a
    site's test split has both classes whenever the site does and its AUROC is
    defined. A class with one member stays in training. Draws one permutation
    per class, negatives first.

    Returns
    -------
    train, test : ndarrays of int
        Sorted row indices.

    Raises
    ------
    ValueError
        When either split would be empty.
    """
    test = []
    for label in (0.0, 1.0):
        members = np.flatnonzero(y == label)
        members = members[rng.permutation(members.size)]
        count = int(round(test_fraction * members.size))
        count = min(max(count, 1), members.size - 1) if members.size >= 2 else 0
        test.extend(members[:count].tolist())
    test = np.sort(np.array(test, dtype=int))
    train = np.setdiff1d(np.arange(y.size), test)
    if test.size == 0 or train.size == 0:
        raise ValueError(
            f"cannot split {y.size} records with {int(y.sum())} positives into non-empty train and test splits; "
            "a site needs at least two records of one class"
        )
    return train, test


def pooled_mean_and_std(counts: Sequence[int], sums: Sequence[np.ndarray],
                        sums_of_squares: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Combine per-site count, sum and sum of squares into the pooled mean and standard deviation.

    A column with zero pooled variance gets standard deviation 1, so
    standardising leaves it centred instead of dividing by zero.
    """
    total = float(np.sum(counts))
    mean = np.sum(sums, axis=0) / total
    variance = np.maximum(np.sum(sums_of_squares, axis=0) / total - mean**2, 0.0)
    std = np.sqrt(variance)
    return mean, np.where(std > 0.0, std, 1.0)


def load_heart_disease(folder: str | Path, rng: np.random.Generator, *, test_fraction: float = 0.3,
                       max_missing_fraction: float = 0.5, sites: Sequence[str] | None = None) -> HeartDiseaseFederation:
    """Read the four hospitals' files from ``folder`` and apply the missing-value policy.

    Parameters
    ----------
    folder : str or Path
        Folder holding the ``processed.<site>.data`` files named in :data:`SITE_FILES`.
    rng : numpy.random.Generator
        Draws each site's train/test split (:func:`stratified_split`), site by site.
    test_fraction : float
        Fraction of each outcome class held out as the site's test split.
    max_missing_fraction : float in [0, 1]
        A column missing above this fraction at any site is dropped everywhere.
    sites : sequence of str, optional
        Site ids from :data:`SITE_FILES` to load; default all four.

    Raises
    ------
    FileNotFoundError
        When ``folder`` or one of the files is missing.
    HeartDiseaseFormatError
        When a file has a malformed line (the message names file and line).
    ValueError
        For an unknown site id or an invalid fraction, or when every column is dropped.
    """
    check_rng(rng)
    check_probability(test_fraction, "test_fraction")
    check_probability(max_missing_fraction, "max_missing_fraction")
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"heart disease folder {str(folder)!r} not found; download the UCI Heart Disease files "
            f"{', '.join(SITE_FILES.values())} yourself and pass the folder that holds them"
        )
    site_ids = list(SITE_FILES) if sites is None else list(sites)
    unknown = [site for site in site_ids if site not in SITE_FILES]
    if unknown or not site_ids:
        raise ValueError(f"sites must be a non-empty selection of {list(SITE_FILES)}, got {list(site_ids)}")

    raw = {}
    for site in site_ids:
        path = folder / SITE_FILES[site]
        if not path.is_file():
            raise FileNotFoundError(f"{SITE_FILES[site]} not found in {str(folder)!r}; the {site} site needs it")
        raw[site] = mark_missing(read_heart_disease_file(path))

    # Each site reports only its per-column missing fractions.
    missing = {site: missing_fractions(records) for site, records in raw.items()}
    columns, dropped = choose_columns(missing, max_missing_fraction)
    if not columns:
        raise ValueError(
            f"every feature column is missing above max_missing_fraction={max_missing_fraction} at some site; raise it"
        )
    indicator_columns = [c for c in columns if any(missing[site][c] > 0.0 for site in site_ids)]

    # Each site splits, imputes from its own training split and encodes.
    encoded = {}
    for site in site_ids:
        records = raw[site]
        y = (records[:, -1] > 0).astype(float)
        try:
            train, test = stratified_split(y, test_fraction, rng)
        except ValueError as error:
            raise ValueError(f"{SITE_FILES[site]}: {error}") from None
        X, names = encode_site(records, train, columns, indicator_columns)
        encoded[site] = (X[train], y[train], X[test], y[test])

    # Standardise with pooled statistics built from per-site aggregates.
    mean, std = pooled_mean_and_std(
        [encoded[s][0].shape[0] for s in site_ids],
        [encoded[s][0].sum(axis=0) for s in site_ids],
        [(encoded[s][0] ** 2).sum(axis=0) for s in site_ids],
    )
    site_data = [
        SiteData(site, (X_train - mean) / std, y_train, (X_test - mean) / std, y_test)
        for site, (X_train, y_train, X_test, y_test) in encoded.items()
    ]
    return HeartDiseaseFederation(site_data, tuple(names), dropped, missing)
