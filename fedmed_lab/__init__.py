"""fedmed_lab: the helper package of an executable course on federated learning for medical AI.

The modules follow the course:

- :mod:`fedmed_lab.data`: the chapter 1 linear experiment and the clinical risk-cohort generator.
- :mod:`fedmed_lab.models`: linear and logistic regression with analytic loss and gradient.
- :mod:`fedmed_lab.aggregation`: sample-weighted FedAvg, the unweighted mean and their diagnostics.
- :mod:`fedmed_lab.sites`: a hospital that keeps its records and returns only a :class:`ModelUpdate`.
- :mod:`fedmed_lab.rounds`: the round driver with pluggable participation.
- :mod:`fedmed_lab.metrics`: AUROC, Brier score and calibration computed at a site.

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
