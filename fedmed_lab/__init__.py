"""fedmed_lab: the helper package of an executable course on federated learning for medical AI.

The modules follow the course:

- :mod:`fedmed_lab.data`: the chapter 1 linear experiment and the clinical risk-cohort generator;
  :mod:`fedmed_lab.heart_disease`: the UCI Heart Disease files of four hospitals as sites.
- :mod:`fedmed_lab.models`: linear and logistic regression with analytic loss and gradient.
- :mod:`fedmed_lab.sites`: a hospital that keeps its records and returns only a :class:`ModelUpdate`.
- :mod:`fedmed_lab.training`, :mod:`fedmed_lab.aggregation`, :mod:`fedmed_lab.rounds`: local training,
  sample-weighted FedAvg and the round driver with pluggable participation.
- :mod:`fedmed_lab.metrics`, :mod:`fedmed_lab.evaluation`, :mod:`fedmed_lab.baselines`: per-site AUROC,
  Brier score and calibration, and the local-only and pooled reference models (chapters 2 and 3).
- :mod:`fedmed_lab.participation`, :mod:`fedmed_lab.selection`, :mod:`fedmed_lab.dropout`: dropout,
  stragglers and client selection (chapter 4); :mod:`fedmed_lab.heterogeneity`: drift, FedProx and
  personalization (chapter 5).
- :mod:`fedmed_lab.inversion` (chapter 6), :mod:`fedmed_lab.secagg` and its ``secagg_*`` helpers
  (chapter 7), :mod:`fedmed_lab.privacy` (chapter 8).
- :mod:`fedmed_lab.drift` (chapter 9), :mod:`fedmed_lab.audit` and :mod:`fedmed_lab.governance`
  (chapter 10), :mod:`fedmed_lab.flower_app` (chapter 11, needs the ``flower`` extra).
- :mod:`fedmed_lab.explorers` and :mod:`fedmed_lab.explorer_registry`: the chapter widgets and how
  to recompute their readouts.
- :mod:`fedmed_lab.course`, :mod:`fedmed_lab.exercises`, :mod:`fedmed_lab.grading`,
  :mod:`fedmed_lab.website`: ``fedmed-lab run-course``, ``build-exercises``, ``grade`` and ``make site``.

Randomness enters only through a :class:`numpy.random.Generator` passed as ``rng``.
"""

import logging

__version__ = "0.1.0"

logger = logging.getLogger("fedmed_lab")
logger.addHandler(logging.NullHandler())


class FedMedWarning(UserWarning):
    """Warning about a methodological caveat in a course computation."""


from fedmed_lab.sites import Hospital, ModelUpdate, SiteEvaluation  # noqa: E402

__all__ = ["FedMedWarning", "Hospital", "ModelUpdate", "SiteEvaluation", "__version__", "logger"]
