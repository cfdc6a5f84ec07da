"""Registry of the chapter explorers, so tests can recompute any widget's readout.

Every chapter notebook with a widget has one entry in :data:`EXPLORERS`, keyed
by the notebook's file name without ``.ipynb``. The entry lists the slider
descriptions and a readout function that takes the values of the widget's
controls, keyed by description, and returns exactly the HTML that the widget's
``ipywidgets.HTML`` readout shows for that setting. Slider values are numbers,
a Dropdown's value is its selected label and a Checkbox's value is a bool.
The browser tests move each slider, read every control's value back from the
page and compare the page's readout with this function's output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache

ControlValues = Mapping[str, "float | str | bool"]


@dataclass(frozen=True)
class ExplorerSpec:
    """How to recompute one chapter widget's readout outside the browser.

    Attributes
    ----------
    sliders
        The ``description`` of each slider, in the order the widget shows them.
    readout
        Function from ``{description: value}`` (every control) to the readout's
        HTML, or None when the readout depends on notebook state that the
        package cannot rebuild. The browser test then only checks that moving
        each slider changes the readout or redraws the figure.
    figure
        Whether the widget redraws a figure in an ``ipywidgets.Output``.
    """

    sliders: tuple[str, ...]
    readout: Callable[[ControlValues], str] | None
    figure: bool = True


def _chapter1_readout(values: ControlValues) -> str:
    from fedmed_lab.explorers import imbalance_readout, summarize_imbalance

    sizes = [int(values[f"site {k} n_k"]) for k in range(1, 6)]
    # The notebook builds the explorer with seed=0.
    return imbalance_readout(summarize_imbalance(sizes, seed=0))


@cache
def _chapter2_state():
    """Rebuild the chapter 2 notebook's cohorts and academic-centre risk score (seed 0, full batch)."""
    import numpy as np

    from fedmed_lab.data import default_federation, make_risk_cohorts
    from fedmed_lab.models import LogisticRegression
    from fedmed_lab.training import LocalTrainingConfig

    specs = default_federation()
    cohorts = make_risk_cohorts(specs, np.random.default_rng(0))
    model = LogisticRegression()
    academic = cohorts[2].to_hospital()
    start = model.initial_parameters(academic.num_features)
    # Full-batch training draws nothing from the generator, so any generator gives the notebook's model.
    development = LocalTrainingConfig(epochs=200, learning_rate=0.5)
    risk_score = academic.fit(start, model, development, np.random.default_rng(0)).parameters
    return specs, cohorts, model, risk_score


def _chapter2_readout(values: ControlValues) -> str:
    import numpy as np

    from fedmed_lab.evaluation import site_metric_scenario

    specs, cohorts, model, risk_score = _chapter2_state()
    try:
        # The notebook redraws the rural clinic with seed + 2.
        s = site_metric_scenario(cohorts, specs[0], risk_score, model, num_patients=int(values["patients"]),
                                 prevalence=float(values["event rate"]), lab_bias=float(values["lab bias"]),
                                 concept_shift=float(values["concept shift"]), rng=np.random.default_rng(2))
    except ValueError as error:
        return f"<b>Cannot evaluate:</b> {error}"
    rural = s.evaluations[0].metrics
    return (f"rural clinic AUROC {rural['auroc']:.3f}, CITL {rural['calibration_in_the_large']:+.3f}; "
            f"weighted mean {s.summary.weighted_mean:.3f}, pooled {s.pooled['auroc']:.3f}, "
            f"worst site {s.summary.worst_site} {s.summary.worst:.3f}")


@cache
def _chapter3_state():
    """Rebuild the chapter 3 notebook's hospitals and target loss (seed 0, full batch)."""
    import numpy as np

    from fedmed_lab.baselines import federated_training_loss, train_pooled
    from fedmed_lab.data import default_federation, make_risk_cohorts
    from fedmed_lab.models import LogisticRegression
    from fedmed_lab.training import LocalTrainingConfig

    cohorts = make_risk_cohorts(default_federation(), np.random.default_rng(0))
    hospitals = [c.to_hospital() for c in cohorts]
    model = LogisticRegression()
    # The notebook's budget: 40 rounds of 5 epochs, full batch, so the generator is not drawn from.
    pooled = train_pooled(cohorts, model, local=LocalTrainingConfig(epochs=200, learning_rate=0.5),
                          rng=np.random.default_rng(0))
    target = federated_training_loss(hospitals, pooled, model) + 0.002
    return hospitals, model, target


def _chapter3_readout(values: ControlValues) -> str:
    import numpy as np

    from fedmed_lab.baselines import convergence_run

    hospitals, model, target = _chapter3_state()
    epochs = int(values["local epochs E"])
    learning_rate = float(values["learning rate"])
    run = convergence_run(hospitals, model, epochs=epochs, learning_rate=learning_rate, rounds=30,
                          target_loss=target, rng=np.random.default_rng(0))
    reached = run.rounds_to_target
    rises = int(np.sum(np.diff(run.global_losses) > 1e-4))
    return (f"E={epochs}, eta={learning_rate:.2f}: final loss {run.global_losses[-1]:.4f} (target {target:.4f}); "
            + (f"target reached in {reached} rounds, {run.bytes_to_target} bytes, {reached * epochs} epochs per site"
               if reached else "target not reached in 30 rounds")
            + f"; loss rose by more than 1e-4 in {rises} of 29 rounds")


# NOTE: chapters 4 to 10 build their readouts inline in the widget cell, so
# the functions below repeat those f-strings and settings.
# tests/test_explorer_registry.py fails when a notebook's stored readout and
# these functions disagree.
def _chapter4_readout(values: ControlValues) -> str:
    from fedmed_lab.dropout import expected_dropout_error, imbalance_experiment

    experiment = imbalance_experiment(int(values["academic size"]), int(values["clinic size"]), seed=0)
    current = expected_dropout_error(experiment, float(values["drop probability"]))
    return (f"expected error {current['expected_error']:.4f}, worst pattern {current['worst_error']:.4f}, "
            f"unweighted mean {current['unweighted_error']:.4f}")


# Site sizes of the chapter 5 notebook's drift experiment.
CHAPTER5_SITE_SIZES = (40, 80, 600, 120, 60)


def _chapter5_readout(values: ControlValues) -> str:
    from fedmed_lab.heterogeneity import drift_grid

    epochs = range(1, 31)
    strength = float(values["heterogeneity"])
    plain = drift_grid(CHAPTER5_SITE_SIZES, heterogeneity=strength, proximal_mu=0.0, epochs=epochs, seed=0)
    prox = drift_grid(CHAPTER5_SITE_SIZES, heterogeneity=strength, proximal_mu=float(values["mu"]), epochs=epochs,
                      seed=0)
    return f"drift at E = 30: FedAvg {plain[-1]:.4f}, FedProx {prox[-1]:.4f}"


def _chapter6_readout(values: ControlValues) -> str:
    import numpy as np

    from fedmed_lab.inversion import ratio_attack_demo

    demo = ratio_attack_demo(int(values["n_k"]), float(values["positives"]), rng=np.random.default_rng(60))
    return (f"distance to batch mean: {demo.distance_to_mean:.3f} &nbsp; "
            f"distance to patient 1: {demo.distance_to_first_patient:.3f}")


def _chapter7_readout(values: ControlValues) -> str:
    import math

    import numpy as np

    from fedmed_lab.secagg_experiments import dropout_experiment

    num_sites = int(values["sites K"])
    threshold = math.ceil(2 * num_sites / 3)
    outcome = dropout_experiment(num_sites, min(int(values["dropped"]), num_sites), threshold=threshold,
                                 rng=np.random.default_rng(7), key_seed=b"chapter 7")
    if outcome.aborted:
        return f"<b>t = {threshold}: aborted.</b> {outcome.message}"
    return (f"<b>t = {threshold}:</b> {outcome.message}; max error against FedAvg "
            f"{outcome.max_abs_error:.1e} (resolution {outcome.resolution:.1e})")


@cache
def _chapter8_hospitals():
    """Return the chapter 8 hospitals: the default federation drawn with seed 8."""
    import numpy as np

    from fedmed_lab.data import default_federation, make_risk_cohorts

    return tuple(c.to_hospital() for c in make_risk_cohorts(default_federation(), np.random.default_rng(8)))


def _chapter8_readout(values: ControlValues) -> str:
    import numpy as np

    from fedmed_lab.models import LogisticRegression
    from fedmed_lab.privacy import privacy_accuracy_point
    from fedmed_lab.training import LocalTrainingConfig

    point = privacy_accuracy_point(list(_chapter8_hospitals()), LogisticRegression(),
                                   noise_multiplier=float(values["noise sigma"]),
                                   clipping_norm=float(values["clip norm C"]), rounds=20,
                                   local=LocalTrainingConfig(epochs=5, learning_rate=0.5), delta=1e-5,
                                   rng=np.random.default_rng(80))
    return (f"epsilon = {point.epsilon:.2f} &nbsp; mean AUROC {point.mean_auroc:.3f} &nbsp; "
            f"worst site {point.worst_auroc:.3f}")


def _chapter9_readout(values: ControlValues) -> str:
    from fedmed_lab import drift

    scan = drift.drift_strength_scan(float(values["lab bias (SD)"]), seed=0,
                                     patients_per_month=int(values["patients/month"]))
    alerts = scan.ks_alerts[0]
    return (f"alerts in the 9 drifted months: {int(alerts[9:].sum())}; "
            f"false alarms in the 6 stable months: {int(alerts[3:9].sum())}")


@cache
def _chapter10_audit_log():
    """Run the chapter 10 governed study and return its audit entries and head hash.

    The settings repeat the chapter 10 notebook's cells: 12 rounds, 5 local
    epochs at learning rate 1.0, the rural clinic approving a draft with
    learning rate 0.5, community_b withdrawing at round 6, seed 0.
    """
    from fedmed_lab import governance
    from fedmed_lab.data import default_federation
    from fedmed_lab.training import LocalTrainingConfig

    configuration = governance.training_configuration(rounds=12, local=LocalTrainingConfig(epochs=5, learning_rate=1.0))
    draft = governance.training_configuration(rounds=12, local=LocalTrainingConfig(epochs=5, learning_rate=0.5))
    federation = default_federation()
    approvals = {spec.name: governance.config_hash(configuration) for spec in federation}
    approvals["rural_clinic"] = governance.config_hash(draft)
    run = governance.run_governed_study(federation, configuration, seed=0, approvals=approvals,
                                        withdrawals={"community_b": 6})
    return run.audit_log.entries, run.audit_log.head_hash


def _chapter10_readout(values: ControlValues) -> str:
    from fedmed_lab import audit

    entries, head = _chapter10_audit_log()
    kind = str(values["tampering"])
    position = int(values["entry"])
    # The notebook moves a swap at the last entry back by one, as this does.
    if kind == "swap with next":
        position = min(position, len(entries) - 2)
    result = audit.verify_chain(audit.tamper(entries, kind, position),
                                expected_head=head if values["check head hash"] else None)
    return f"{kind} at entry {position}: <b>{result}</b>"


@cache
def _chapter11_site_sizes() -> tuple[int, ...]:
    from fedmed_lab.flower_app.task import CapstoneTask, make_hospitals

    # The notebook's task: the capstone defaults with two rounds.
    return tuple(h.num_examples for h in make_hospitals(CapstoneTask(num_rounds=2)))


def _chapter11_readout(values: ControlValues) -> str:
    from fedmed_lab.flower_app.explorer import calibration_readout, summarize_calibration

    sizes = list(_chapter11_site_sizes())
    # The notebook builds the explorer with largest_index=2, the academic centre.
    sizes[2] = int(values["largest site n_k"])
    return calibration_readout(summarize_calibration(sizes, noise_multiplier=float(values["noise multiplier sigma"])))


EXPLORERS: dict[str, ExplorerSpec] = {
    "01_pooled_objective": ExplorerSpec(
        sliders=tuple(f"site {k} n_k" for k in range(1, 6)),
        readout=_chapter1_readout,
    ),
    "02_data_stays_home": ExplorerSpec(
        sliders=("patients", "event rate", "lab bias", "concept shift"),
        readout=_chapter2_readout,
    ),
    "03_round_protocol": ExplorerSpec(
        sliders=("local epochs E", "learning rate"),
        readout=_chapter3_readout,
    ),
    "04_dropout_stragglers": ExplorerSpec(
        sliders=("drop probability", "academic size", "clinic size"),
        readout=_chapter4_readout,
    ),
    "05_heterogeneity": ExplorerSpec(
        sliders=("mu", "heterogeneity"),
        readout=_chapter5_readout,
    ),
    "06_gradient_inversion": ExplorerSpec(
        sliders=("n_k", "positives"),
        readout=_chapter6_readout,
    ),
    "07_secure_aggregation": ExplorerSpec(
        sliders=("sites K", "dropped"),
        readout=_chapter7_readout,
    ),
    "08_differential_privacy": ExplorerSpec(
        sliders=("noise sigma", "clip norm C"),
        readout=_chapter8_readout,
    ),
    "09_drift_monitoring": ExplorerSpec(
        sliders=("lab bias (SD)", "patients/month"),
        readout=_chapter9_readout,
    ),
    "10_governance_audit": ExplorerSpec(
        sliders=("entry",),
        readout=_chapter10_readout,
        figure=False,
    ),
    "11_capstone_flower": ExplorerSpec(
        sliders=("largest site n_k", "noise multiplier sigma"),
        readout=_chapter11_readout,
    ),
}


def expected_readout(notebook: str, values: ControlValues) -> str:
    """Return the readout HTML that notebook ``notebook``'s widget shows for ``values``.

    Raises
    ------
    KeyError
        If ``notebook`` has no registry entry, or ``values`` lacks one of its sliders.
    ValueError
        If the entry has no readout function.
    """
    if notebook not in EXPLORERS:
        raise KeyError(
            f"notebook {notebook!r} has no entry in fedmed_lab.explorer_registry.EXPLORERS. "
            "Add one with its slider descriptions and readout function."
        )
    spec = EXPLORERS[notebook]
    if spec.readout is None:
        raise ValueError(f"notebook {notebook!r} has no readout function in the registry, so it cannot be recomputed")
    missing = [name for name in spec.sliders if name not in values]
    if missing:
        raise KeyError(f"slider values for {notebook!r} are missing {missing}: received {sorted(values)}")
    return spec.readout(values)
