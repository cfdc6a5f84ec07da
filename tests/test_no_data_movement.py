"""Only parameters, counts and scalar metrics ever reach the coordinator."""

import dataclasses
from collections.abc import Mapping

import numpy as np
import pytest

from fedmed_lab.data import HospitalSpec, make_risk_cohorts
from fedmed_lab.models import LogisticRegression
from fedmed_lab.participation import FixedDropout
from fedmed_lab.rounds import Coordinator, run_federated
from fedmed_lab.sites import ModelUpdate, SiteEvaluation
from fedmed_lab.training import LocalTrainingConfig


def walk(value, seen=None):
    """Yield every object reachable from ``value`` through fields, mappings and sequences."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return
    seen.add(id(value))
    yield value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from walk(getattr(value, f.name), seen)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk(key, seen)
            yield from walk(item, seen)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from walk(item, seen)


@pytest.fixture(scope="module")
def cohorts():
    specs = [
        HospitalSpec("clinic", 63, prevalence=0.2),
        HospitalSpec("centre", 917, case_mix=0.5, prevalence=0.3),
        HospitalSpec("regional", 341, lab_bias=0.4, prevalence=0.25),
    ]
    return make_risk_cohorts(specs, np.random.default_rng(11))


def test_coordinator_receives_no_patient_rows(cohorts, monkeypatch):
    received = []
    for name in ("receive_update", "receive_evaluation"):
        original = getattr(Coordinator, name)

        def spy(self, item, _original=original):
            received.append(item)
            return _original(self, item)

        monkeypatch.setattr(Coordinator, name, spy)

    hospitals = [c.to_hospital() for c in cohorts]
    history = run_federated(
        hospitals, LogisticRegression(), rounds=4, rng=np.random.default_rng(5),
        local=LocalTrainingConfig(epochs=2, learning_rate=0.3, batch_size=32),
        participation=FixedDropout(["clinic"], rounds=[2]), evaluate=True,
    )

    assert {type(item) for item in received} == {ModelUpdate, SiteEvaluation}
    assert len([i for i in received if isinstance(i, ModelUpdate)]) == 3 + 2 + 3 + 3
    row_sets = [c.X_train for c in cohorts] + [c.X_test for c in cohorts]
    label_vectors = [c.y_train for c in cohorts] + [c.y_test for c in cohorts]
    record_counts = {len(v) for v in label_vectors}

    arrays = [obj for item in [*received, history] for obj in walk(item) if isinstance(obj, np.ndarray)]
    assert arrays, "the walk found no arrays at all, so it checked nothing"
    for array in arrays:
        assert array.ndim == 1, f"a {array.shape} array reached the coordinator"
        assert array.shape[0] not in record_counts, f"an array of length {array.shape[0]} matches a site's record count"
        for rows in row_sets:
            if array.shape[0] == rows.shape[1]:
                assert not np.any(np.all(np.isclose(rows, array), axis=1)), "a patient row reached the coordinator"


def test_model_update_rejects_patient_rows():
    with pytest.raises(ValueError, match="parameters must be a flat 1-D vector, got shape \\(5, 3\\)"):
        ModelUpdate("clinic", np.zeros((5, 3)), 5)


def test_model_update_rejects_array_metrics():
    with pytest.raises(TypeError, match="metric 'labels' must be a scalar number, got ndarray"):
        ModelUpdate("clinic", np.zeros(3), 5, metrics={"labels": np.zeros(5)})


def test_coordinator_rejects_raw_arrays():
    coordinator = Coordinator(np.zeros(3))
    with pytest.raises(TypeError, match="accepts only ModelUpdate objects, got ndarray"):
        coordinator.receive_update(np.zeros((10, 3)))


def test_hospital_exposes_no_records(cohorts):
    hospital = cohorts[0].to_hospital()
    for name in dir(hospital):
        if name.startswith("_"):
            continue
        value = getattr(hospital, name)
        assert not isinstance(value, np.ndarray), f"Hospital.{name} exposes an array"


def test_update_parameters_are_read_only_copies():
    params = np.zeros(3)
    update = ModelUpdate("clinic", params, 4)
    params[0] = 5.0
    assert update.parameters[0] == 0.0
    with pytest.raises(ValueError):
        update.parameters[0] = 1.0
