"""Governance in code: approvals by configuration hash, withdrawal, run manifest and model card.

- Each site's board approves one training configuration, identified by the
  SHA-256 of its canonical JSON (:func:`config_hash`). A site whose approval
  names another hash is not admitted: changing the learning rate after the
  board met is a different study.
- A site may withdraw from a given round on. :class:`GovernedParticipation`
  removes it from every later selection, so it never trains and sends no
  update, and :meth:`GovernanceRegistry.check_admission`, wired into
  :class:`fedmed_lab.audit.AuditedCoordinator`, rejects any update that
  arrives anyway. Withdrawal cannot remove what the site already
  contributed to earlier rounds, and the model card states that.
- :class:`RunManifest` records package versions, the seed, the data
  specification, the configuration and the governance decisions, so that
  :func:`reproduce_from_manifest` re-runs the study and compares the model
  hash bit for bit.
- A configuration with a noise multiplier trains with chapter 8's
  :class:`~fedmed_lab.privacy.DPFedAvg`, and a
  :class:`~fedmed_lab.privacy.RoundAccountant` writes the epsilon spent
  after each round into the audit log.
- :class:`ModelCard` summarises per-site performance, privacy budget, data
  provenance and known limits as Markdown.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

import fedmed_lab
from fedmed_lab import FedMedWarning, logger
from fedmed_lab._checks import check_non_negative_int, check_positive_int
from fedmed_lab.aggregation import fedavg
from fedmed_lab.audit import AuditedCoordinator, AuditLog, EpsilonSource, canonical_json, model_hash, sha256_hex
from fedmed_lab.data import HospitalSpec, make_risk_cohorts
from fedmed_lab.models import LogisticRegression
from fedmed_lab.participation import FullParticipation, Participation
from fedmed_lab.privacy import (DPFedAvg, RoundAccountant, check_clipping_norm, check_delta,
                                check_noise_multiplier)
from fedmed_lab.rounds import TrainingHistory, run_federated
from fedmed_lab.training import LocalTrainingConfig


class AdmissionError(PermissionError):
    """Raised when a site without a valid approval, or after its withdrawal, tries to contribute."""


def config_hash(configuration: Mapping[str, object]) -> str:
    """Return the SHA-256 hex digest of the configuration's canonical JSON."""
    return sha256_hex(configuration)


def training_configuration(*, rounds: int, local: LocalTrainingConfig, l2: float = 0.0,
                           clipping_norm: float | None = None, noise_multiplier: float | None = None,
                           test_fraction: float = 0.3, delta: float | None = None) -> dict[str, object]:
    """Return the configuration a board approves, as a plain dict of JSON types.

    It names the model (logistic regression with ``l2``), the number of
    rounds, the local training settings, the privacy settings and the
    train/test split, which together fix what every site computes.

    With ``noise_multiplier`` set, :func:`run_governed_study` trains with
    chapter 8's :class:`~fedmed_lab.privacy.DPFedAvg` and accounts epsilon
    at ``delta``; the configuration then also holds ``delta`` and names the
    aggregation ``"dp-fedavg"``. A configuration without noise has the same
    keys, and so the same hash, as before ``delta`` existed.

    Raises
    ------
    ValueError
        For ``delta`` without ``noise_multiplier``, or invalid privacy settings.
    """
    check_positive_int(rounds, "rounds")
    configuration = {
        "model": {"name": "LogisticRegression", "l2": float(l2)},
        "rounds": int(rounds),
        "local": dataclasses.asdict(local),
        "clipping_norm": clipping_norm,
        "noise_multiplier": noise_multiplier,
        "aggregation": "fedavg",
        "test_fraction": float(test_fraction),
    }
    if delta is not None:
        if noise_multiplier is None:
            raise ValueError(f"delta={delta!r} is set but noise_multiplier is None; delta only applies to a run "
                             "with noise, so set noise_multiplier or leave delta out")
        configuration["delta"] = check_delta(delta)
    if noise_multiplier is not None:
        configuration["noise_multiplier"] = check_noise_multiplier(noise_multiplier)
        configuration["clipping_norm"] = check_clipping_norm(clipping_norm)
        configuration["aggregation"] = "dp-fedavg"
    return configuration


@dataclass
class GovernanceRegistry:
    """Board approvals and withdrawals for one run of one configuration.

    Decisions are written to ``audit_log`` when they are made (approvals)
    or when they take effect (withdrawals), so the chain shows them in
    order with the rounds.

    Parameters
    ----------
    config_hash : str
        The hash of the configuration this run trains with.
    audit_log : AuditLog, optional
        Where governance events go.
    """

    config_hash: str
    audit_log: AuditLog | None = None
    approvals: dict[str, str] = field(default_factory=dict)
    withdrawals: dict[str, int] = field(default_factory=dict)
    _logged_withdrawals: set[str] = field(default_factory=set, repr=False)

    def approve(self, site_id: str, approved_hash: str) -> None:
        """Record that ``site_id``'s board approved the configuration with ``approved_hash``."""
        self.approvals[site_id] = approved_hash
        self._log({"event": "approval", "site_id": site_id, "approved_hash": approved_hash,
                   "matches_run": approved_hash == self.config_hash})

    def withdraw(self, site_id: str, *, from_round: int) -> None:
        """Record that ``site_id`` takes part in no round from ``from_round`` on."""
        check_positive_int(from_round, "from_round")
        if site_id in self.withdrawals:
            raise ValueError(f"site {site_id!r} already withdrew from round {self.withdrawals[site_id]}")
        self.withdrawals[site_id] = int(from_round)

    def rejection_reason(self, site_id: str, server_round: int) -> str | None:
        """Return why ``site_id`` may not contribute to ``server_round``, or None when it may."""
        approved = self.approvals.get(site_id)
        if approved is None:
            return f"site {site_id!r} has no board approval"
        if approved != self.config_hash:
            return (f"site {site_id!r} approved configuration {approved[:12]}, "
                    f"not the run's configuration {self.config_hash[:12]}")
        withdrawn_from = self.withdrawals.get(site_id)
        if withdrawn_from is not None and server_round >= withdrawn_from:
            return f"site {site_id!r} withdrew from round {withdrawn_from} on"
        return None

    def check_admission(self, site_id: str, server_round: int) -> None:
        """Raise :class:`AdmissionError` when ``site_id`` may not contribute to ``server_round``."""
        reason = self.rejection_reason(site_id, server_round)
        if reason is not None:
            raise AdmissionError(f"update rejected in round {server_round}: {reason}")

    def admitted(self, site_ids: Sequence[str], server_round: int) -> list[str]:
        """Return the sites of ``site_ids`` that may contribute to ``server_round``, in order."""
        self._log_due_withdrawals(server_round)
        return [site for site in site_ids if self.rejection_reason(site, server_round) is None]

    def _log_due_withdrawals(self, server_round: int) -> None:
        for site_id, from_round in sorted(self.withdrawals.items()):
            if from_round <= server_round and site_id not in self._logged_withdrawals:
                self._logged_withdrawals.add(site_id)
                self._log({"event": "withdrawal", "site_id": site_id, "from_round": from_round})

    def _log(self, payload: Mapping[str, object]) -> None:
        if self.audit_log is not None:
            self.audit_log.append(payload)


class GovernedParticipation:
    """A participation model that lets only admitted sites respond.

    ``inner`` decides who would respond (full participation, dropout, ...);
    the registry then removes sites without approval of the run's
    configuration and sites that have withdrawn.
    """

    def __init__(self, registry: GovernanceRegistry, inner: Participation | None = None):
        self.registry = registry
        self.inner = inner or FullParticipation()

    def select(self, server_round: int, site_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        responding = self.inner.select(server_round, site_ids, rng)
        return self.registry.admitted(responding, server_round)

    def __repr__(self) -> str:
        return f"GovernedParticipation({self.inner!r})"


# --- A governed study and its manifest ------------------------------------------------------------

def package_versions() -> dict[str, str]:
    """Return the versions that decide a run's floating-point result: Python, numpy and fedmed_lab."""
    return {"python": platform.python_version(), "numpy": np.__version__, "fedmed_lab": fedmed_lab.__version__}


@dataclass(frozen=True)
class RunManifest:
    """Everything an auditor needs to re-run a study bit for bit.

    Attributes
    ----------
    versions : mapping of str to str
        Python, numpy and fedmed_lab versions of the original run.
    seed : int
        Seed of the single ``numpy.random.default_rng`` that draws the data,
        then the participation and local training.
    federation : list of dict
        The :class:`~fedmed_lab.data.HospitalSpec` fields of each site.
    configuration : dict
        The approved configuration; ``config_hash`` is its hash.
    approvals : mapping of site id to hash
        Each board's approved configuration hash.
    withdrawals : mapping of site id to int
        First round each withdrawn site no longer took part in.
    model_hash : str
        SHA-256 of the final global parameters.
    audit_head : str
        Hash of the last audit entry.
    """

    versions: Mapping[str, str]
    seed: int
    federation: list
    configuration: Mapping[str, object]
    config_hash: str
    approvals: Mapping[str, str]
    withdrawals: Mapping[str, int]
    model_hash: str
    audit_head: str

    def to_json(self) -> str:
        """Return the manifest as canonical JSON."""
        return canonical_json(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> RunManifest:
        data = json.loads(text)
        names = {f.name for f in dataclasses.fields(cls)}
        missing = sorted(names.difference(data))
        if missing:
            raise ValueError(f"run manifest is missing the fields {missing}")
        return cls(**{name: data[name] for name in names})

    @property
    def manifest_hash(self) -> str:
        return sha256_hex(dataclasses.asdict(self))


@dataclass
class GovernedRun:
    """The result of :func:`run_governed_study`."""

    history: TrainingHistory
    audit_log: AuditLog
    registry: GovernanceRegistry
    manifest: RunManifest
    site_sizes: dict[str, int]
    rounds_joined: dict[str, list[int]]
    accountant: RoundAccountant | None = None


def run_governed_study(federation: Sequence[HospitalSpec], configuration: Mapping[str, object], *, seed: int,
                       approvals: Mapping[str, str], withdrawals: Mapping[str, int] | None = None,
                       epsilon: EpsilonSource = None,
                       aggregator: Callable | None = None) -> GovernedRun:
    """Generate the federation's cohorts, train under governance and audit, and write the manifest.

    One generator ``numpy.random.default_rng(seed)`` draws the cohorts
    first, then everything :func:`fedmed_lab.rounds.run_federated` draws.
    Every site is evaluated on its own test split after every round.

    Parameters
    ----------
    federation : sequence of HospitalSpec
        The sites and their data specification.
    configuration : mapping
        A dict from :func:`training_configuration`.
    seed : int
        The run's seed.
    approvals : mapping of site id to hash
        Each board's approved configuration hash; sites absent here are not
        admitted.
    withdrawals : mapping of site id to int, optional
        Round from which each withdrawing site no longer takes part.
    epsilon : float, callable or None
        Epsilon spent after each round, written to the audit log. Left
        out for a configuration with ``noise_multiplier`` and ``delta``, a
        :class:`~fedmed_lab.privacy.RoundAccountant` with sample rate 1
        (every admitted site is asked in every round) is used.
    aggregator : callable, optional
        The aggregation rule. Left out, it is FedAvg for a configuration
        without noise, and for one with ``noise_multiplier`` a central
        :class:`~fedmed_lab.privacy.DPFedAvg` with the configuration's
        clipping norm and noise multiplier, dividing by the number of sites
        whose approval matches, and drawing its noise from the run's
        generator after the cohorts, so a manifest reproduces it.

    Raises
    ------
    ValueError
        When the configuration sets ``noise_multiplier`` but neither
        ``delta`` nor ``epsilon`` nor ``aggregator``, so no epsilon could be
        accounted.
    """
    check_non_negative_int(seed, "seed")
    private = configuration.get("noise_multiplier") is not None and aggregator is None
    if private and epsilon is None and configuration.get("delta") is None:
        raise ValueError(
            "the configuration sets noise_multiplier but no delta, so the accountant cannot report epsilon; "
            "pass delta= to training_configuration"
        )
    current_hash = config_hash(configuration)
    audit_log = AuditLog()
    audit_log.append({"event": "study", "config_hash": current_hash, "seed": int(seed),
                      "sites": [spec.name for spec in federation]})
    registry = GovernanceRegistry(current_hash, audit_log)
    for site_id in sorted(approvals):
        registry.approve(site_id, approvals[site_id])
    for site_id, from_round in sorted((withdrawals or {}).items()):
        registry.withdraw(site_id, from_round=from_round)

    rng = np.random.default_rng(seed)
    cohorts = make_risk_cohorts(federation, rng, test_fraction=float(configuration["test_fraction"]))
    hospitals = [cohort.to_hospital() for cohort in cohorts]
    model = LogisticRegression(l2=float(configuration["model"]["l2"]))
    local = LocalTrainingConfig(**configuration["local"])
    initial = model.initial_parameters(hospitals[0].num_features)

    if private:
        approved_sites = sum(approvals.get(spec.name) == current_hash for spec in federation)
        # With no approved site no round aggregates anything; 1 only keeps DPFedAvg's check satisfied.
        aggregator = DPFedAvg(initial, clipping_norm=configuration["clipping_norm"],
                              noise_multiplier=configuration["noise_multiplier"],
                              expected_sites=max(1, approved_sites), rng=rng)
        if epsilon is None:
            epsilon = RoundAccountant(noise_multiplier=configuration["noise_multiplier"], sample_rate=1.0,
                                      delta=configuration["delta"])
    coordinator = AuditedCoordinator(
        initial, audit_log, config_hash=current_hash, clipping_norm=configuration.get("clipping_norm"),
        noise_multiplier=configuration.get("noise_multiplier"), epsilon=epsilon,
        admission=registry.check_admission, aggregator=aggregator or fedavg,
    )
    history = run_federated(hospitals, model, rounds=int(configuration["rounds"]), local=local, rng=rng,
                            initial_parameters=initial, participation=GovernedParticipation(registry),
                            evaluate=True, coordinator=coordinator)

    manifest = RunManifest(
        versions=package_versions(), seed=int(seed), federation=[dataclasses.asdict(spec) for spec in federation],
        configuration=json.loads(canonical_json(configuration)), config_hash=current_hash,
        approvals=dict(approvals), withdrawals=dict(withdrawals or {}),
        model_hash=model_hash(history.final_parameters), audit_head=audit_log.head_hash,
    )
    rounds_joined = {h.site_id: [r.server_round for r in history.rounds if h.site_id in r.participants]
                     for h in hospitals}
    logger.info("governed study finished: model %s, %d audit entries", manifest.model_hash[:12], len(audit_log))
    return GovernedRun(history, audit_log, registry, manifest, {h.site_id: h.num_examples for h in hospitals},
                       rounds_joined, epsilon if isinstance(epsilon, RoundAccountant) else None)


def reproduce_from_manifest(manifest: RunManifest, *, epsilon: EpsilonSource = None,
                            aggregator: Callable | None = None) -> GovernedRun:
    """Re-run the study a manifest describes; compare ``result.manifest.model_hash`` with the original.

    Warns with :class:`~fedmed_lab.FedMedWarning` when the installed
    versions differ from the manifest's, because a different numpy may
    change the last bits of the result.
    """
    installed = package_versions()
    if dict(manifest.versions) != installed:
        warnings.warn(f"versions differ from the manifest: recorded {dict(manifest.versions)}, installed {installed}; "
                      "the model hash may differ in the last bits", FedMedWarning, stacklevel=2)
    federation = [HospitalSpec(**spec) for spec in manifest.federation]
    return run_governed_study(federation, manifest.configuration, seed=manifest.seed, approvals=manifest.approvals,
                              withdrawals=manifest.withdrawals, epsilon=epsilon, aggregator=aggregator)


# --- Model card -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelCard:
    """Model card contents: intended use, per-site performance, privacy budget, provenance and known limits."""

    title: str
    intended_use: str
    per_site: list[dict[str, object]]
    privacy: str
    provenance: list[str]
    known_limits: list[str]

    def to_markdown(self) -> str:
        """Render the card as Markdown with a per-site performance table."""
        lines = [f"# Model card: {self.title}", "", "## Intended use", "", self.intended_use, "",
                 "## Performance per site (final model, each site's own test split)", "",
                 "| site | n_k train | rounds joined | n test | AUROC | Brier | calibration-in-the-large |",
                 "|---|---:|---:|---:|---:|---:|---:|"]
        for row in self.per_site:
            lines.append(f"| {row['site']} | {row['n_train']} | {row['rounds_joined']} | {row['n_test']} | "
                         f"{row['auroc']:.3f} | {row['brier']:.4f} | {row['calibration_in_the_large']:+.4f} |")
        lines += ["", "## Privacy budget", "", self.privacy, "", "## Data provenance", ""]
        lines += [f"- {item}" for item in self.provenance]
        lines += ["", "## Known limits", ""]
        lines += [f"- {item}" for item in self.known_limits]
        return "\n".join(lines) + "\n"


def build_model_card(run: GovernedRun, *, title: str, intended_use: str, known_limits: Sequence[str],
                     epsilon: float | None = None, delta: float | None = None) -> ModelCard:
    """Build the card from a governed run's last round, manifest and audit log.

    ``epsilon`` and ``delta`` are the total privacy budget spent. Left out,
    they come from the run's accountant over all its rounds, or, for a run
    without one, the card states that no epsilon bound holds, as it does
    when the accountant's epsilon is infinite (noise multiplier 0).
    """
    last = run.history.rounds[-1]
    per_site = []
    for evaluation in last.evaluations:
        site = evaluation.site_id
        per_site.append({
            "site": site, "n_train": run.site_sizes[site], "rounds_joined": len(run.rounds_joined[site]),
            "n_test": evaluation.num_examples, **{k: evaluation.metrics[k] for k in
                                                  ("auroc", "brier", "calibration_in_the_large")},
        })
    rounds = len(run.history.rounds)
    accountant = run.accountant
    if epsilon is None and accountant is not None:
        epsilon, delta = accountant(rounds), accountant.delta
    if epsilon is None or not math.isfinite(epsilon):
        privacy = ("No differential privacy: the updates carry no noise, so no epsilon bound holds "
                   "(epsilon is infinite). Only the raw records stayed at the sites.")
    else:
        privacy = f"(epsilon, delta) = ({epsilon:.3f}, {delta:.1e}) spent over {rounds} rounds."
        if accountant is not None:
            privacy += (" Site-level guarantee from chapter 8's RDP accountant: one hospital added or removed, "
                        f"noise multiplier {accountant.noise_multiplier:g}, sample rate {accountant.sample_rate:g}.")
    manifest = run.manifest
    provenance = [
        f"{len(run.site_sizes)} sites: " + ", ".join(f"{s} (n_k = {n})" for s, n in run.site_sizes.items()),
        f"configuration hash {manifest.config_hash[:16]}, seed {manifest.seed}",
        f"model hash {manifest.model_hash[:16]}, audit log of {len(run.audit_log)} entries ending at "
        f"{manifest.audit_head[:16]}",
        "withdrawals: " + (", ".join(f"{s} from round {r}" for s, r in sorted(manifest.withdrawals.items()))
                           or "none"),
        "versions: " + ", ".join(f"{k} {v}" for k, v in sorted(manifest.versions.items())),
    ]
    return ModelCard(title, intended_use, per_site, privacy, provenance, list(known_limits))
