"""Tests for fedmed_lab.audit: canonical hashing and the verifier's first finding."""

import dataclasses
import hashlib
import json

import numpy as np
import pytest

from fedmed_lab import audit
from fedmed_lab.data import HospitalSpec, make_risk_cohorts
from fedmed_lab.models import LogisticRegression
from fedmed_lab.privacy import DPFedAvg, RoundAccountant, compute_epsilon
from fedmed_lab.rounds import run_federated
from fedmed_lab.training import LocalTrainingConfig


def _log(num_entries=8):
    log = audit.AuditLog()
    for server_round in range(1, num_entries + 1):
        log.append({"event": "round", "server_round": server_round, "participants": ["a", "b"],
                    "num_examples": [100 * server_round, 40], "epsilon_spent": 0.25 * server_round})
    return log


def _altered(entry, **payload_changes):
    payload = {**entry.payload, **payload_changes}
    return dataclasses.replace(entry, payload=payload)


def _rehashed(entry, **payload_changes):
    changed = _altered(entry, **payload_changes)
    return dataclasses.replace(changed, entry_hash=changed.computed_hash())


def test_canonical_json_ignores_key_order_and_numpy_types():
    first = audit.canonical_json({"b": np.float64(0.5), "a": [np.int64(3), 2]})
    second = audit.canonical_json({"a": (3, 2), "b": 0.5})
    assert first == second == '{"a":[3,2],"b":0.5}'


def test_canonical_json_rejects_nan():
    with pytest.raises(ValueError, match=r"value.loss is nan; canonical JSON has no NaN"):
        audit.canonical_json({"loss": float("nan")})


def test_entry_hash_is_sha256_of_canonical_content():
    entry = _log(1).entries[0]
    content = json.dumps({"index": 0, "payload": entry.payload, "previous_hash": audit.GENESIS_HASH},
                         sort_keys=True, separators=(",", ":"))
    assert entry.entry_hash == hashlib.sha256(content.encode()).hexdigest()


def test_model_hash_sees_last_bit():
    parameters = np.array([0.1, 0.2, 0.3])
    nudged = parameters.copy()
    nudged[1] = np.nextafter(nudged[1], 1.0)
    assert audit.model_hash(parameters) == audit.model_hash(parameters.copy())
    assert audit.model_hash(parameters) != audit.model_hash(nudged)


def test_intact_log_verifies_with_head():
    log = _log()
    result = log.verify(expected_head=log.head_hash, expected_length=8)
    assert result.valid
    assert result.finding is None
    assert str(result).startswith("valid: 8 entries")


def test_altered_entry_found():
    entries = list(_log().entries)
    entries[3] = _altered(entries[3], num_examples=[999, 40])
    result = audit.verify_chain(entries)
    assert not result.valid
    assert result.finding.kind == "altered"
    assert result.finding.position == 3
    assert "entry 3 at position 3 was altered" in result.finding.message


def test_altered_and_rehashed_entry_found_by_next_link():
    entries = list(_log().entries)
    entries[2] = _rehashed(entries[2], epsilon_spent=0.1)
    result = audit.verify_chain(entries)
    assert result.finding.kind == "relinked"
    assert result.finding.index == 2


def test_removed_entry_found():
    entries = list(_log().entries)
    del entries[4]
    result = audit.verify_chain(entries)
    assert result.finding.kind == "removed"
    assert result.finding.index == 4
    assert result.finding.message == "entry 4 is missing: position 4 holds entry 5"


def test_swapped_pair_found():
    entries = list(_log().entries)
    entries[5], entries[6] = entries[6], entries[5]
    result = audit.verify_chain(entries)
    assert result.finding.kind == "reordered"
    assert result.finding.position == 5
    assert result.finding.index == 6


def test_several_removed_entries_named():
    entries = list(_log().entries)
    del entries[2:5]
    assert audit.verify_chain(entries).finding.message == "entries 2 to 4 are missing: position 2 holds entry 5"


def test_first_of_several_problems_reported():
    entries = list(_log().entries)
    entries[6] = _altered(entries[6], participants=["a"])
    entries[2], entries[3] = entries[3], entries[2]
    del entries[1]
    result = audit.verify_chain(entries)
    assert result.finding.position == 1
    assert result.finding.kind == "removed"


def test_truncated_tail_found_only_with_expected_length_or_head():
    log = _log()
    entries = list(log.entries)[:-2]
    assert audit.verify_chain(entries).valid
    assert audit.verify_chain(entries, expected_length=8).finding.kind == "truncated"
    assert audit.verify_chain(entries, expected_head=log.head_hash).finding.kind == "head mismatch"


def test_fully_rewritten_log_found_only_by_head():
    original = _log()
    forged = audit.AuditLog()
    for entry in original.entries:
        forged.append({**entry.payload, "epsilon_spent": 0.0})
    assert forged.verify().valid
    assert forged.verify(expected_head=original.head_hash).finding.kind == "head mismatch"


def test_jsonl_round_trip_keeps_hashes():
    log = _log()
    restored = audit.AuditLog.from_jsonl(log.to_jsonl())
    assert restored.entries == log.entries
    assert restored.verify(expected_head=log.head_hash).valid


def test_edited_jsonl_line_found():
    lines = _log().to_jsonl().splitlines()
    lines[4] = lines[4].replace('"num_examples":[500,40]', '"num_examples":[50,40]')
    result = audit.AuditLog.from_jsonl("\n".join(lines)).verify()
    assert result.finding.kind == "altered"
    assert result.finding.index == 4


def test_invalid_jsonl_line_named():
    first_line = _log(1).to_jsonl()
    with pytest.raises(ValueError, match="line 2 of the audit log is not valid JSON"):
        audit.AuditLog.from_jsonl(first_line + "{not json\n")


def test_jsonl_line_missing_fields_named():
    with pytest.raises(ValueError, match=r"line 1: audit entry is missing the fields \['entry_hash', 'payload'"):
        audit.AuditLog.from_jsonl('{"index": 0, "previous_hash": "0"}\n')


def _federation(seed=0):
    specs = [HospitalSpec("large", 900, prevalence=0.2), HospitalSpec("small", 150, prevalence=0.1, case_mix=-0.3)]
    return [c.to_hospital() for c in make_risk_cohorts(specs, np.random.default_rng(seed))]


def test_audited_coordinator_records_rounds_and_epsilon():
    hospitals = _federation()
    model = LogisticRegression()
    initial = model.initial_parameters(hospitals[0].num_features)
    log = audit.AuditLog()
    coordinator = audit.AuditedCoordinator(initial, log, config_hash="c" * 64, clipping_norm=1.0,
                                           epsilon=lambda server_round: 0.5 * server_round)
    history = run_federated(hospitals, model, rounds=3, local=LocalTrainingConfig(epochs=2, learning_rate=0.5),
                            rng=np.random.default_rng(1), initial_parameters=initial, coordinator=coordinator)

    assert len(log) == 3
    last = log.entries[-1].payload
    assert last["epsilon_spent"] == 1.5
    assert last["clipping_norm"] == 1.0
    assert last["noise_multiplier"] is None
    assert last["participants"] == ["large", "small"]
    assert last["num_examples"] == [h.num_examples for h in hospitals]
    assert last["model_hash"] == audit.model_hash(history.final_parameters)
    previous = history.rounds[-2].parameters
    update_norm = np.linalg.norm(hospitals[0].fit(previous, model, LocalTrainingConfig(epochs=2, learning_rate=0.5),
                                                  np.random.default_rng(0)).parameters - previous)
    assert last["update_norms"][0] == pytest.approx(update_norm, rel=1e-9)
    assert log.verify().valid


def test_audited_coordinator_default_matches_plain_run():
    hospitals = _federation()
    model = LogisticRegression()
    local = LocalTrainingConfig(epochs=1, learning_rate=0.5)
    plain = run_federated(hospitals, model, rounds=2, local=local, rng=np.random.default_rng(3))
    initial = model.initial_parameters(hospitals[0].num_features)
    audited = run_federated(hospitals, model, rounds=2, local=local, rng=np.random.default_rng(3),
                            coordinator=audit.AuditedCoordinator(initial, audit.AuditLog(), config_hash="x"))
    np.testing.assert_array_equal(plain.final_parameters, audited.final_parameters)


@pytest.mark.parametrize("kind, expected_kind, expected_index", [
    ("alter", "altered", 4),
    ("alter and rehash", "relinked", 4),
    ("remove", "removed", 4),
    ("swap with next", "reordered", 5),
])
def test_tamper_found_at_its_position(kind, expected_kind, expected_index):
    log = _log()
    result = audit.verify_chain(audit.tamper(log.entries, kind, 4))
    assert result.finding.kind == expected_kind
    assert result.finding.index == expected_index
    assert log.verify().valid


def test_tamper_truncate_needs_head():
    log = _log()
    truncated = audit.tamper(log.entries, "truncate", 6)
    assert len(truncated) == 6
    assert audit.verify_chain(truncated, expected_head=log.head_hash).finding.kind == "head mismatch"


def test_tamper_rejects_bad_arguments():
    entries = _log(3).entries
    with pytest.raises(ValueError, match="position must be an entry index from 0 to 1 for 'swap with next', got 2"):
        audit.tamper(entries, "swap with next", 2)
    with pytest.raises(ValueError, match="kind must be one of"):
        audit.tamper(entries, "shuffle", 0)


def _dp_audited_run(aggregator_settings, *, epsilon, rounds=4, **coordinator_settings):
    hospitals = _federation()
    model = LogisticRegression()
    initial = model.initial_parameters(hospitals[0].num_features)
    aggregator = DPFedAvg(initial, expected_sites=2, rng=np.random.default_rng(5), **aggregator_settings)
    log = audit.AuditLog()
    coordinator = audit.AuditedCoordinator(initial, log, config_hash="d" * 64, epsilon=epsilon,
                                           aggregator=aggregator, **coordinator_settings)
    run_federated(hospitals, model, rounds=rounds, local=LocalTrainingConfig(epochs=1, learning_rate=0.5),
                  rng=np.random.default_rng(2), initial_parameters=initial, coordinator=coordinator)
    return log, aggregator


def test_audit_records_dp_settings():
    accountant = RoundAccountant(noise_multiplier=0.8, sample_rate=0.5, delta=1e-5)
    log, aggregator = _dp_audited_run({"clipping_norm": 0.3, "noise_multiplier": 0.8}, epsilon=accountant)
    payloads = [entry.payload for entry in log.entries]
    for server_round, payload in enumerate(payloads, start=1):
        assert payload["clipping_norm"] == aggregator.clipping_norm == 0.3
        assert payload["noise_multiplier"] == aggregator.noise_multiplier == 0.8
        assert payload["sample_rate"] == 0.5
        assert payload["delta"] == 1e-5
        assert payload["epsilon_spent"] == compute_epsilon(noise_multiplier=0.8, sample_rate=0.5, steps=server_round,
                                                           delta=1e-5)
    epsilons = [payload["epsilon_spent"] for payload in payloads]
    assert all(later > earlier > 0 for earlier, later in zip(epsilons, epsilons[1:]))
    assert len(aggregator.clipped_fraction) == 4
    assert log.verify().valid


def test_audit_rejects_contradicting_settings():
    settings = {"clipping_norm": 0.3, "noise_multiplier": 0.8}
    with pytest.raises(ValueError, match=r"clipping_norm=1.0 differs from the DPFedAvg aggregator's clipping_norm=0.3"):
        _dp_audited_run(settings, epsilon=None, clipping_norm=1.0)
    with pytest.raises(ValueError, match=r"noise_multiplier=0.8 differs from the accountant's noise_multiplier=2.0"):
        _dp_audited_run(settings, epsilon=RoundAccountant(noise_multiplier=2.0, sample_rate=1.0, delta=1e-5))


def test_audit_null_epsilon_without_bound():
    log, _ = _dp_audited_run({"clipping_norm": 0.3, "noise_multiplier": 0.0}, rounds=2,
                             epsilon=RoundAccountant(noise_multiplier=0.0, sample_rate=1.0, delta=1e-5))
    assert [entry.payload["epsilon_spent"] for entry in log.entries] == [None, None]
    assert log.entries[0].payload["noise_multiplier"] == 0.0

    hospitals = _federation()
    model = LogisticRegression()
    initial = model.initial_parameters(hospitals[0].num_features)
    plain = audit.AuditLog()
    run_federated(hospitals, model, rounds=1, local=LocalTrainingConfig(), rng=np.random.default_rng(2),
                  initial_parameters=initial, coordinator=audit.AuditedCoordinator(initial, plain, config_hash="e" * 64))
    payload = plain.entries[0].payload
    assert [payload[key] for key in ("clipping_norm", "noise_multiplier", "sample_rate", "delta", "epsilon_spent")] == [
        None] * 5
