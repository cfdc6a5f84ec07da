"""The capstone task: five hospitals, logistic regression, full-batch FedAvg.

One :class:`CapstoneTask` describes a run; the course simulator
(:func:`run_course_simulator`) and both Flower runtimes read the same
object, so their global models can be compared parameter by parameter.
Full participation and ``batch_size=None`` make local training
deterministic, so the only difference left between the runtimes is the
order in which floating-point sums are taken.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import check_non_negative_float, check_positive_float, check_positive_int
from fedmed_lab.data import SiteData, default_federation, make_risk_cohorts
from fedmed_lab.models import LogisticRegression
from fedmed_lab.rounds import TrainingHistory, run_federated
from fedmed_lab.sites import Hospital
from fedmed_lab.training import LocalTrainingConfig


# Run-config keys that configure the Flower server rather than the task.
SERVER_ONLY_KEYS = frozenset({"result-file", "clipping-norm", "noise-multiplier"})


@dataclass(frozen=True)
class CapstoneTask:
    """Settings of one capstone run, shared by the course simulator and Flower.

    Attributes
    ----------
    seed : int
        Seed of the cohort draw (``make_risk_cohorts``) and of the round driver.
    num_rounds : int
        Federated rounds T.
    epochs : int
        Local full-batch gradient steps per round E.
    learning_rate : float
        Local step size.
    l2 : float
        L2 penalty of the logistic regression.
    cohort_scale : float
        Multiplies every hospital's patient count (at least 2 patients per
        hospital remain); 1 is the course federation of 18,520 patients.
    """

    seed: int = 2026
    num_rounds: int = 3
    epochs: int = 2
    learning_rate: float = 0.5
    l2: float = 1e-3
    cohort_scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        check_positive_int(self.num_rounds, "num_rounds")
        check_positive_int(self.epochs, "epochs")
        check_positive_float(self.learning_rate, "learning_rate")
        check_non_negative_float(self.l2, "l2")
        check_positive_float(self.cohort_scale, "cohort_scale")

    @property
    def model(self) -> LogisticRegression:
        return LogisticRegression(l2=self.l2)

    @property
    def local(self) -> LocalTrainingConfig:
        """Local training settings; ``batch_size=None`` makes them deterministic."""
        return LocalTrainingConfig(epochs=self.epochs, learning_rate=self.learning_rate, batch_size=None)

    def to_run_config(self) -> dict[str, int | float]:
        """Return the task as a Flower run config (keys with dashes, as Flower's TOML uses)."""
        return {field.name.replace("_", "-"): getattr(self, field.name) for field in dataclasses.fields(self)}

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, object]) -> CapstoneTask:
        """Build a task from a Flower run config; missing keys keep their defaults.

        Keys in :data:`SERVER_ONLY_KEYS` are skipped.

        Raises
        ------
        ValueError
            If the config has a key that is not a task setting.
        """
        names = {field.name.replace("_", "-"): field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(run_config) - set(names) - SERVER_ONLY_KEYS)
        if unknown:
            raise ValueError(f"run config has unknown keys {unknown}; known keys are {sorted(names)}")
        values = {names[key]: value for key, value in run_config.items() if key in names}
        if "seed" in values:
            values["seed"] = int(values["seed"])
        return cls(**values)


def make_cohorts(task: CapstoneTask) -> list[SiteData]:
    """Draw the five hospitals' records of the course federation, scaled by ``task.cohort_scale``, from ``task.seed``."""
    specs = [dataclasses.replace(spec, num_patients=max(2, round(spec.num_patients * task.cohort_scale)))
             for spec in default_federation()]
    return make_risk_cohorts(specs, np.random.default_rng(task.seed))


def make_hospitals(task: CapstoneTask) -> list[Hospital]:
    return [cohort.to_hospital() for cohort in make_cohorts(task)]


def initial_parameters(task: CapstoneTask, num_features: int) -> np.ndarray:
    """Return the starting global model: all zeros, as the course models start."""
    return task.model.initial_parameters(num_features)


def run_course_simulator(task: CapstoneTask, hospitals: list[Hospital] | None = None) -> TrainingHistory:
    """Run ``task`` in the course's own round driver, with every hospital in every round."""
    hospitals = make_hospitals(task) if hospitals is None else hospitals
    return run_federated(
        hospitals,
        task.model,
        rounds=task.num_rounds,
        local=task.local,
        rng=np.random.default_rng(task.seed),
        initial_parameters=initial_parameters(task, hospitals[0].num_features),
    )
