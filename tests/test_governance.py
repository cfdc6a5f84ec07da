"""Tests for fedmed_lab.governance: admission by configuration hash, withdrawal, manifest, model card."""

import dataclasses
import warnings

import numpy as np
import pytest

from fedmed_lab import FedMedWarning
from fedmed_lab import governance as gov
from fedmed_lab.audit import AuditedCoordinator, AuditLog, verify_chain
from fedmed_lab.data import HospitalSpec, make_risk_cohorts
from fedmed_lab.models import LogisticRegression
from fedmed_lab.privacy import DPFedAvg, compute_epsilon
from fedmed_lab.rounds import run_federated
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig

SPECS = [
    HospitalSpec("north", 600, prevalence=0.2, case_mix=0.3),
    HospitalSpec("south", 300, prevalence=0.1),
    HospitalSpec("east", 150, prevalence=0.15, lab_bias=0.4),
]
CONFIG = gov.training_configuration(rounds=6, local=LocalTrainingConfig(epochs=2, learning_rate=0.5))
HASH = gov.config_hash(CONFIG)
ALL_APPROVED = {spec.name: HASH for spec in SPECS}


class RecordingHospital(Hospital):
    """A hospital that notes each round in which it trained."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fit_calls = 0

    def fit(self, parameters, model, config, rng):
        self.fit_calls += 1
        return super().fit(parameters, model, config, rng)


def test_config_hash_changes_with_any_setting():
    changed = gov.training_configuration(rounds=6, local=LocalTrainingConfig(epochs=2, learning_rate=0.51))
    assert gov.config_hash(changed) != HASH
    assert gov.config_hash(dict(reversed(list(CONFIG.items())))) == HASH


def test_withdrawn_site_sends_no_update_after_withdrawal():
    run = gov.run_governed_study(SPECS, CONFIG, seed=1, approvals=ALL_APPROVED, withdrawals={"south": 3})
    assert run.rounds_joined["south"] == [1, 2]
    for record in run.history.rounds[2:]:
        assert "south" not in record.participants
    round_entries = [e.payload for e in run.audit_log.entries if e.payload["event"] == "round"]
    assert all("south" not in p["participants"] for p in round_entries[2:])
    assert "south" in round_entries[1]["participants"]


def test_withdrawn_site_never_trains_after_withdrawal():
    cohorts = make_risk_cohorts(SPECS, np.random.default_rng(0))
    hospitals = [RecordingHospital(c.name, c.X_train, c.y_train, c.X_test, c.y_test) for c in cohorts]
    registry = gov.GovernanceRegistry(HASH)
    for spec in SPECS:
        registry.approve(spec.name, HASH)
    registry.withdraw("east", from_round=2)
    run_federated(hospitals, LogisticRegression(), rounds=5, local=LocalTrainingConfig(), rng=np.random.default_rng(0),
                  participation=gov.GovernedParticipation(registry))
    assert [h.fit_calls for h in hospitals] == [5, 5, 1]


def test_withdrawal_changes_the_model():
    kept = gov.run_governed_study(SPECS, CONFIG, seed=1, approvals=ALL_APPROVED)
    withdrawn = gov.run_governed_study(SPECS, CONFIG, seed=1, approvals=ALL_APPROVED, withdrawals={"north": 4})
    np.testing.assert_array_equal(kept.history.rounds[2].parameters, withdrawn.history.rounds[2].parameters)
    assert not np.array_equal(kept.history.final_parameters, withdrawn.history.final_parameters)


def test_site_approving_other_config_hash_rejected():
    other = gov.config_hash(gov.training_configuration(rounds=7, local=LocalTrainingConfig(epochs=2, learning_rate=0.5)))
    run = gov.run_governed_study(SPECS, CONFIG, seed=1, approvals={**ALL_APPROVED, "east": other})
    assert run.rounds_joined["east"] == []
    assert "approved configuration" in run.registry.rejection_reason("east", 1)


def test_site_without_approval_rejected():
    approvals = {name: h for name, h in ALL_APPROVED.items() if name != "north"}
    run = gov.run_governed_study(SPECS, CONFIG, seed=1, approvals=approvals)
    assert run.rounds_joined["north"] == []
    assert run.rounds_joined["south"] == list(range(1, 7))


def test_coordinator_rejects_update_after_withdrawal():
    cohorts = make_risk_cohorts(SPECS, np.random.default_rng(0))
    hospitals = [c.to_hospital() for c in cohorts]
    registry = gov.GovernanceRegistry(HASH)
    for spec in SPECS:
        registry.approve(spec.name, HASH)
    registry.withdraw("south", from_round=2)
    model = LogisticRegression()
    initial = model.initial_parameters(hospitals[0].num_features)
    coordinator = AuditedCoordinator(initial, AuditLog(), config_hash=HASH, admission=registry.check_admission)
    # Full participation bypasses the governed selection; the coordinator check still holds.
    with pytest.raises(gov.AdmissionError, match="update rejected in round 2: site 'south' withdrew from round 2 on"):
        run_federated(hospitals, model, rounds=3, local=LocalTrainingConfig(), rng=np.random.default_rng(0),
                      initial_parameters=initial, coordinator=coordinator)


def test_coordinator_rejects_unapproved_update():
    registry = gov.GovernanceRegistry(HASH)
    registry.approve("north", "f" * 64)
    with pytest.raises(gov.AdmissionError, match="approved configuration ffffffffffff, not the run's"):
        registry.check_admission("north", 1)


def test_double_withdrawal_rejected():
    registry = gov.GovernanceRegistry(HASH)
    registry.withdraw("north", from_round=3)
    with pytest.raises(ValueError, match="already withdrew from round 3"):
        registry.withdraw("north", from_round=4)


def test_governance_events_in_audit_chain_order():
    run = gov.run_governed_study(SPECS, CONFIG, seed=1, approvals=ALL_APPROVED, withdrawals={"south": 3})
    events = [(e.payload["event"], e.payload.get("server_round") or e.payload.get("site_id"))
              for e in run.audit_log.entries]
    assert events[0][0] == "study"
    assert [kind for kind, _ in events[1:4]] == ["approval"] * 3
    withdrawal_at = events.index(("withdrawal", "south"))
    assert events[withdrawal_at - 1] == ("round", 2)
    assert events[withdrawal_at + 1] == ("round", 3)
    assert run.audit_log.verify(expected_head=run.manifest.audit_head).valid


def test_manifest_reproduces_model_hash():
    run = gov.run_governed_study(SPECS, CONFIG, seed=5, approvals=ALL_APPROVED, withdrawals={"east": 4})
    manifest = gov.RunManifest.from_json(run.manifest.to_json())
    again = gov.reproduce_from_manifest(manifest)
    assert again.manifest.model_hash == run.manifest.model_hash
    assert again.manifest.audit_head == run.manifest.audit_head
    assert again.manifest.manifest_hash == run.manifest.manifest_hash


def test_manifest_with_other_seed_gives_other_hash():
    run = gov.run_governed_study(SPECS, CONFIG, seed=5, approvals=ALL_APPROVED)
    changed = dataclasses.replace(run.manifest, seed=6)
    assert gov.reproduce_from_manifest(changed).manifest.model_hash != run.manifest.model_hash


def test_manifest_version_mismatch_warns():
    run = gov.run_governed_study(SPECS, CONFIG, seed=5, approvals=ALL_APPROVED)
    old = dataclasses.replace(run.manifest, versions={**run.manifest.versions, "numpy": "1.0.0"})
    with pytest.warns(FedMedWarning, match="versions differ from the manifest"):
        gov.reproduce_from_manifest(old)


def test_manifest_missing_field_rejected():
    with pytest.raises(ValueError, match="run manifest is missing the fields"):
        gov.RunManifest.from_json('{"seed": 1}')


def test_noise_without_delta_rejected():
    noisy = gov.training_configuration(rounds=2, local=LocalTrainingConfig(), clipping_norm=1.0, noise_multiplier=1.1)
    with pytest.raises(ValueError, match="sets noise_multiplier but no delta, so the accountant cannot report"):
        gov.run_governed_study(SPECS, noisy, seed=0, approvals={})


def test_delta_without_noise_rejected():
    with pytest.raises(ValueError, match=r"delta=1e-05 is set but noise_multiplier is None"):
        gov.training_configuration(rounds=2, local=LocalTrainingConfig(), delta=1e-5)


def test_noise_without_clipping_norm_rejected():
    with pytest.raises(TypeError, match="clipping_norm must be a real number, got None"):
        gov.training_configuration(rounds=2, local=LocalTrainingConfig(), noise_multiplier=1.1, delta=1e-5)


def test_plain_configuration_keeps_keys():
    assert "delta" not in CONFIG
    assert CONFIG["aggregation"] == "fedavg"


DP_CONFIG = gov.training_configuration(rounds=6, local=LocalTrainingConfig(epochs=2, learning_rate=0.5),
                                       clipping_norm=0.5, noise_multiplier=1.3, delta=1e-4)
DP_HASH = gov.config_hash(DP_CONFIG)


def _dp_run(seed=0, withdrawals=None):
    return gov.run_governed_study(SPECS, DP_CONFIG, seed=seed, approvals={s.name: DP_HASH for s in SPECS},
                                  withdrawals=withdrawals)


def test_dp_run_logs_accountant_epsilon():
    run = _dp_run(withdrawals={"east": 4})
    rounds = [e.payload for e in run.audit_log.entries if e.payload["event"] == "round"]
    assert [p["server_round"] for p in rounds] == list(range(1, 7))
    for payload in rounds:
        expected = compute_epsilon(noise_multiplier=1.3, sample_rate=1.0, steps=payload["server_round"], delta=1e-4)
        assert payload["epsilon_spent"] == expected
        assert payload["clipping_norm"] == 0.5
        assert payload["noise_multiplier"] == 1.3
        assert payload["sample_rate"] == 1.0
        assert payload["delta"] == 1e-4
    epsilons = [p["epsilon_spent"] for p in rounds]
    assert all(later > earlier for earlier, later in zip(epsilons, epsilons[1:]))
    assert run.audit_log.verify(expected_head=run.manifest.audit_head).valid


def test_dp_run_reproduces_from_manifest():
    run = _dp_run()
    plain_config = gov.training_configuration(rounds=6, local=LocalTrainingConfig(epochs=2, learning_rate=0.5))
    plain = gov.run_governed_study(SPECS, plain_config, seed=0,
                                   approvals={s.name: gov.config_hash(plain_config) for s in SPECS})
    assert not np.allclose(run.history.final_parameters, plain.history.final_parameters, atol=1e-3)
    rerun = gov.reproduce_from_manifest(gov.RunManifest.from_json(run.manifest.to_json()))
    assert rerun.manifest.model_hash == run.manifest.model_hash
    assert rerun.manifest.audit_head == run.manifest.audit_head
    assert _dp_run(seed=1).manifest.model_hash != run.manifest.model_hash


def test_dp_run_divides_by_approved_sites():
    approvals = {"north": DP_HASH, "south": DP_HASH, "east": "0" * 64}
    run = gov.run_governed_study(SPECS, DP_CONFIG, seed=0, approvals=approvals)
    cohorts = make_risk_cohorts(SPECS, np.random.default_rng(0), test_fraction=0.3)
    hospitals = [c.to_hospital() for c in cohorts]
    model = LogisticRegression()
    initial = model.initial_parameters(hospitals[0].num_features)
    rng = np.random.default_rng(0)
    make_risk_cohorts(SPECS, rng, test_fraction=0.3)  # the same draws as the governed run, in the same order
    aggregator = DPFedAvg(initial, clipping_norm=0.5, noise_multiplier=1.3, expected_sites=2, rng=rng)
    registry = gov.GovernanceRegistry(DP_HASH)
    for site, approved in approvals.items():
        registry.approve(site, approved)
    history = run_federated(hospitals, model, rounds=6, local=LocalTrainingConfig(epochs=2, learning_rate=0.5),
                            rng=rng, initial_parameters=initial, aggregator=aggregator,
                            participation=gov.GovernedParticipation(registry), evaluate=True)
    np.testing.assert_array_equal(run.history.final_parameters, history.final_parameters)


def test_dp_tampered_epsilon_found():
    run = _dp_run()
    entries = list(run.audit_log.entries)
    position = next(i for i, e in enumerate(entries) if e.payload.get("server_round") == 3)
    forged = dataclasses.replace(entries[position], payload={**entries[position].payload, "epsilon_spent": 0.5})
    result = verify_chain(entries[:position] + [forged] + entries[position + 1:])
    assert (result.finding.kind, result.finding.index) == ("altered", position)
    rehashed = dataclasses.replace(forged, entry_hash=forged.computed_hash())
    result = verify_chain(entries[:position] + [rehashed] + entries[position + 1:])
    assert (result.finding.kind, result.finding.index) == ("relinked", position)
    # The last entry rehashed leaves a valid chain; only the head the sites stored finds it.
    last = dataclasses.replace(entries[-1], payload={**entries[-1].payload, "epsilon_spent": 0.5})
    last = dataclasses.replace(last, entry_hash=last.computed_hash())
    assert verify_chain(entries[:-1] + [last]).valid
    assert verify_chain(entries[:-1] + [last], expected_head=run.manifest.audit_head).finding.kind == "head mismatch"


def test_dp_model_card_reports_budget():
    run = _dp_run()
    text = gov.build_model_card(run, title="t", intended_use="u", known_limits=[]).to_markdown()
    epsilon = compute_epsilon(noise_multiplier=1.3, sample_rate=1.0, steps=6, delta=1e-4)
    assert f"(epsilon, delta) = ({epsilon:.3f}, 1.0e-04) spent over 6 rounds" in text
    assert "noise multiplier 1.3, sample rate 1" in text
    assert "epsilon is infinite" not in text


def test_model_card_lists_every_site_and_limits():
    run = gov.run_governed_study(SPECS, CONFIG, seed=1, approvals=ALL_APPROVED, withdrawals={"south": 3})
    card = gov.build_model_card(run, title="risk model", intended_use="research only",
                                known_limits=["trained on simulated cohorts"])
    text = card.to_markdown()
    for spec in SPECS:
        assert f"| {spec.name} |" in text
    assert "| south | 210 | 2 |" in text
    assert "epsilon is infinite" in text
    assert "withdrawals: south from round 3" in text
    assert "- trained on simulated cohorts" in text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dp_card = gov.build_model_card(run, title="t", intended_use="u", known_limits=[], epsilon=2.0, delta=1e-5)
    assert "(epsilon, delta) = (2.000, 1.0e-05)" in dp_card.to_markdown()
