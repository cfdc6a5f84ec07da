"""Tests for the UCI Heart Disease loader, on small files the tests write themselves."""

from __future__ import annotations

import numpy as np
import pytest

from fedmed_lab.heart_disease import (
    COLUMNS,
    SITE_FILES,
    HeartDiseaseFormatError,
    choose_columns,
    load_heart_disease,
    encode_site,
    stratified_split,
    pooled_mean_and_std,
    read_heart_disease_file,
)
from fedmed_lab.sites import Hospital


def _record(rng: np.random.Generator, *, disease: int, missing: tuple[str, ...] = ()) -> str:
    values = {
        "age": int(rng.integers(35, 75)), "sex": int(rng.integers(0, 2)), "cp": int(rng.integers(1, 5)),
        "trestbps": int(rng.integers(100, 170)), "chol": int(rng.integers(150, 320)), "fbs": int(rng.integers(0, 2)),
        "restecg": int(rng.integers(0, 3)), "thalach": int(rng.integers(90, 190)), "exang": int(rng.integers(0, 2)),
        "oldpeak": round(float(rng.uniform(0, 4)), 1), "slope": int(rng.integers(1, 4)), "ca": int(rng.integers(0, 4)),
        "thal": int(rng.choice([3, 6, 7])), "num": disease,
    }
    return ",".join("?" if column in missing else str(values[column]) for column in COLUMNS)


def _write_site(path, rng, n, *, missing_by_row=None, zero_chol=False):
    lines = []
    for i in range(n):
        missing = (missing_by_row or {}).get(i, ())
        line = _record(rng, disease=int(i % 3 == 0) * int(rng.integers(1, 5)), missing=missing)
        if zero_chol:
            fields = line.split(",")
            fields[COLUMNS.index("chol")] = "0"
            line = ",".join(fields)
        lines.append(line)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def heart_folder(tmp_path):
    rng = np.random.default_rng(7)
    _write_site(tmp_path / SITE_FILES["cleveland"], rng, 40, missing_by_row={3: ("ca",), 8: ("thal",)})
    # Hungarian: 'ca' missing in 30 of 30 records, 'trestbps' in one.
    _write_site(tmp_path / SITE_FILES["hungarian"], rng, 30,
                missing_by_row={i: ("ca",) + (("trestbps",) if i == 2 else ()) for i in range(30)})
    # Switzerland reports cholesterol 0 for everyone.
    _write_site(tmp_path / SITE_FILES["switzerland"], rng, 12, zero_chol=True)
    _write_site(tmp_path / SITE_FILES["va_long_beach"], rng, 20, missing_by_row={0: ("thalach", "exang")})
    return tmp_path


def test_read_file_parses_question_marks_as_nan(tmp_path):
    path = tmp_path / "processed.cleveland.data"
    path.write_text("63.0,1.0,1.0,145.0,233.0,1.0,2.0,150.0,0.0,2.3,3.0,?,6.0,0\n"
                    "\n"
                    "67.0,1.0,4.0,160.0,286.0,0.0,2.0,108.0,1.0,1.5,2.0,3.0,?,2\n", encoding="utf-8")
    raw = read_heart_disease_file(path)
    assert raw.shape == (2, 14)
    assert np.isnan(raw[0, COLUMNS.index("ca")])
    assert np.isnan(raw[1, COLUMNS.index("thal")])
    assert raw[1, -1] == 2.0
    assert raw[0, COLUMNS.index("oldpeak")] == 2.3


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("63,1,1,145,233,1,2,150,0,2.3,3,0,6", "expected 14 comma-separated values, got 13"),
        ("63,1,1,145,abc,1,2,150,0,2.3,3,0,6,0", "column 'chol' has 'abc'"),
        ("63,1,1,145,233,1,2,150,0,2.3,3,0,6,7", "diagnosis 'num' must be one of 0, 1, 2, 3, 4, got '7'"),
        ("63,1,1,145,233,1,2,150,0,2.3,3,0,6,?", "diagnosis 'num' must be one of"),
    ],
)
def test_malformed_row_names_file_and_line(tmp_path, line, message):
    path = tmp_path / "processed.va.data"
    path.write_text("63,1,1,145,233,1,2,150,0,2.3,3,0,6,0\n" + line + "\n", encoding="utf-8")
    with pytest.raises(HeartDiseaseFormatError, match=r"processed\.va\.data, line 2: ") as error:
        read_heart_disease_file(path)
    assert message in str(error.value)


def test_empty_file_is_rejected(tmp_path):
    path = tmp_path / "processed.va.data"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(HeartDiseaseFormatError, match="no records found"):
        read_heart_disease_file(path)


def test_malformed_row_stops_the_loader(heart_folder):
    path = heart_folder / SITE_FILES["switzerland"]
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4] + ",9"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(HeartDiseaseFormatError, match=r"processed\.switzerland\.data, line 5: expected 14"):
        load_heart_disease(heart_folder, np.random.default_rng(0))


def test_missing_folder_and_file_are_named(tmp_path, heart_folder):
    with pytest.raises(FileNotFoundError, match="heart disease folder .* not found"):
        load_heart_disease(tmp_path / "absent", np.random.default_rng(0))
    (heart_folder / SITE_FILES["hungarian"]).unlink()
    with pytest.raises(FileNotFoundError, match=r"processed\.hungarian\.data not found"):
        load_heart_disease(heart_folder, np.random.default_rng(0))


def test_policy_drops_columns_missing_at_one_site(heart_folder):
    federation = load_heart_disease(heart_folder, np.random.default_rng(0), max_missing_fraction=0.5)
    assert set(federation.dropped_columns) == {"ca", "chol"}
    assert federation.dropped_columns["ca"] == "100% missing at hungarian"
    assert federation.dropped_columns["chol"] == "100% missing at switzerland"
    assert federation.missing["hungarian"]["trestbps"] == pytest.approx(1 / 30)
    assert federation.missing["cleveland"]["thal"] == pytest.approx(1 / 40)


def test_policy_adds_indicators_for_imputed_columns(heart_folder):
    federation = load_heart_disease(heart_folder, np.random.default_rng(0))
    names = federation.feature_names
    assert {"trestbps_missing", "thal_missing", "thalach_missing", "exang_missing"} <= set(names)
    assert "age_missing" not in names
    # cp is one-hot against level 1, thal against level 3.
    assert [n for n in names if n.startswith("cp=")] == ["cp=2", "cp=3", "cp=4"]
    assert [n for n in names if n.startswith("thal=")] == ["thal=6", "thal=7"]
    for site in federation.sites:
        assert site.X_train.shape[1] == len(names)
        assert np.all(np.isfinite(site.X_train))
        assert np.all(np.isfinite(site.X_test))


def test_imputation_uses_the_site_training_median():
    raw = np.full((6, 14), 1.0)
    raw[:, COLUMNS.index("age")] = [30.0, 40.0, np.nan, 70.0, 50.0, 99.0]
    raw[:, COLUMNS.index("cp")] = [4.0, 4.0, 2.0, np.nan, 1.0, 2.0]
    train = np.array([0, 1, 2, 3, 4])
    X, names = encode_site(raw, train, ["age", "cp"], ["age", "cp"])
    assert names == ["age", "cp=2", "cp=3", "cp=4", "age_missing", "cp_missing"]

    # The median of the training ages 30, 40, 70, 50 is 45; the test record's 99 is ignored.
    assert X[2, 0] == 45.0
    assert X[:, 4].tolist() == [0.0, 0.0, 1.0, 0.0, 0.0, 0.0]

    # The most frequent training level of cp is 4 (twice), so row 3 becomes cp=4.
    assert X[3, 1:4].tolist() == [0.0, 0.0, 1.0]
    assert X[:, 5].tolist() == [0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert X[4, 1:4].tolist() == [0.0, 0.0, 0.0]


def test_labels_are_disease_above_zero(tmp_path):
    rng = np.random.default_rng(2)
    for site in SITE_FILES:
        _write_site(tmp_path / SITE_FILES[site], rng, 12)
    federation = load_heart_disease(tmp_path, np.random.default_rng(0), test_fraction=0.25)
    raw = read_heart_disease_file(tmp_path / SITE_FILES["va_long_beach"])
    va = federation.sites[3]
    assert va.name == "va_long_beach"
    assert va.y_train.size + va.y_test.size == 12
    assert va.y_test.size == 3
    assert va.y_train.sum() + va.y_test.sum() == float(np.sum(raw[:, -1] > 0))


def test_standardisation_matches_pooled_training_records(heart_folder):
    federation = load_heart_disease(heart_folder, np.random.default_rng(0))
    pooled = np.vstack([site.X_train for site in federation.sites])
    varying = pooled.std(axis=0) > 0
    assert np.allclose(pooled.mean(axis=0), 0.0, atol=1e-12)
    assert np.allclose(pooled.std(axis=0)[varying], 1.0)


def test_pooled_mean_and_std_equal_direct_computation():
    rng = np.random.default_rng(4)
    blocks = [rng.normal(m, s, size=(n, 3)) for m, s, n in [(0, 1, 5), (3, 2, 50), (-1, 0.5, 500)]]
    mean, std = pooled_mean_and_std([b.shape[0] for b in blocks], [b.sum(0) for b in blocks],
                                    [(b**2).sum(0) for b in blocks])
    pooled = np.vstack(blocks)
    assert np.allclose(mean, pooled.mean(axis=0))
    assert np.allclose(std, pooled.std(axis=0))


def test_constant_column_gets_unit_scale():
    mean, std = pooled_mean_and_std([2, 3], [np.array([2.0]), np.array([3.0])], [np.array([2.0]), np.array([3.0])])
    assert mean[0] == 1.0
    assert std[0] == 1.0


def test_choose_columns_threshold_is_strict():
    fractions = {column: 0.0 for column in COLUMNS[:-1]}
    missing = {"a": dict(fractions, ca=0.5), "b": dict(fractions, thal=0.51)}
    kept, dropped = choose_columns(missing, 0.5)
    assert "ca" in kept
    assert dropped == {"thal": "51% missing at b"}


def test_sites_become_hospitals(heart_folder):
    federation = load_heart_disease(heart_folder, np.random.default_rng(0), sites=["cleveland", "va_long_beach"])
    hospitals = [site.to_hospital() for site in federation.sites]
    assert all(isinstance(h, Hospital) for h in hospitals)
    assert [h.site_id for h in hospitals] == ["cleveland", "va_long_beach"]
    assert hospitals[0].num_examples + hospitals[0].num_test_examples == 40


def test_invalid_arguments_are_named(heart_folder):
    with pytest.raises(ValueError, match="sites must be a non-empty selection"):
        load_heart_disease(heart_folder, np.random.default_rng(0), sites=["boston"])
    with pytest.raises(ValueError, match=r"max_missing_fraction must be a probability in \[0, 1\], got 1.5"):
        load_heart_disease(heart_folder, np.random.default_rng(0), max_missing_fraction=1.5)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        load_heart_disease(heart_folder, 0)


def test_site_missing_everything_drops_every_column(heart_folder):
    path = heart_folder / SITE_FILES["switzerland"]
    path.write_text(",".join(["?"] * 13 + ["0"]) + "\n" + ",".join(["?"] * 13 + ["1"]) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="every feature column is missing above max_missing_fraction=0.5"):
        load_heart_disease(heart_folder, np.random.default_rng(0))


def test_loaded_sites_run_the_chapter_3_comparison(heart_folder):
    from fedmed_lab.baselines import compare_methods, train_fedavg, train_local_only, train_pooled
    from fedmed_lab.models import LogisticRegression
    from fedmed_lab.training import LocalTrainingConfig

    federation = load_heart_disease(heart_folder, np.random.default_rng(1), test_fraction=0.5)
    hospitals = [site.to_hospital() for site in federation.sites]
    model = LogisticRegression()
    budget = LocalTrainingConfig(epochs=20, learning_rate=0.2)
    table = compare_methods(hospitals, model, {
        "local-only": train_local_only(hospitals, model, local=budget, rng=np.random.default_rng(1)),
        "FedAvg": train_fedavg(hospitals, model, rounds=4, local=LocalTrainingConfig(epochs=5, learning_rate=0.2),
                               rng=np.random.default_rng(1)),
        "pooled": train_pooled(federation.sites, model, local=budget, rng=np.random.default_rng(1)),
    })
    assert table.site_ids == tuple(SITE_FILES)
    for method in table.methods:
        for site_id in table.site_ids:
            assert 0.0 <= table.value(method, site_id) <= 1.0


def test_stratified_split_keeps_both_classes():
    # A site like Switzerland: almost everyone has the disease.
    y = np.array([0.0, 0.0] + [1.0] * 30)
    train, test = stratified_split(y, 0.3, np.random.default_rng(0))
    assert set(y[test]) == {0.0, 1.0}
    assert set(y[train]) == {0.0, 1.0}
    assert np.sum(y[test] == 0.0) == 1
    assert np.sum(y[test] == 1.0) == 9
    assert sorted(np.concatenate([train, test]).tolist()) == list(range(32))


def test_stratified_split_single_member_class_trains():
    y = np.array([1.0, 0.0, 0.0, 0.0, 0.0])
    train, test = stratified_split(y, 0.4, np.random.default_rng(0))
    assert 0 in train
    assert test.size == 2


def test_stratified_split_rejects_unsplittable_site():
    with pytest.raises(ValueError, match="cannot split 2 records with 1 positives"):
        stratified_split(np.array([0.0, 1.0]), 0.5, np.random.default_rng(0))
