"""A hospital that keeps its records and returns only what may cross its boundary.

What leaves a site is a :class:`ModelUpdate` (parameters, the count n_k and
scalar metrics) or a :class:`SiteEvaluation` (n_k and scalar metrics). Both
reject anything else at construction, so coordinator code that receives them
cannot be handed patient rows by mistake.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

from fedmed_lab._checks import check_positive_int, check_rng
from fedmed_lab.metrics import evaluate_classifier
from fedmed_lab.training import local_train


def _scalar_metrics(metrics: Mapping[str, object], owner: str) -> Mapping[str, float]:
    clean = {}
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise TypeError(f"{owner}: metric names must be strings, got {key!r}")
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(
                f"{owner}: metric {key!r} must be a scalar number, got {type(value).__name__}; "
                "only scalars may leave a site"
            )
        clean[key] = float(value)
    return MappingProxyType(clean)


@dataclass(frozen=True)
class ModelUpdate:
    """Update one site sends back after local training.

    Attributes
    ----------
    site_id : str
        The sending site.
    parameters : ndarray of shape (p,)
        The locally trained parameter vector (a read-only copy).
    num_examples : int
        n_k, the number of training records behind the update.
    metrics : mapping of str to float
        Scalar training metrics, such as the local loss.
    """

    site_id: str
    parameters: np.ndarray
    num_examples: int
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        params = np.array(self.parameters, dtype=float, copy=True)
        if params.ndim != 1:
            raise ValueError(
                f"site {self.site_id!r}: parameters must be a flat 1-D vector, got shape {params.shape}"
            )
        if not np.all(np.isfinite(params)):
            raise ValueError(f"site {self.site_id!r}: parameters contain NaN or infinity; lower the learning rate")
        params.setflags(write=False)
        object.__setattr__(self, "parameters", params)
        object.__setattr__(self, "num_examples", check_positive_int(self.num_examples, "num_examples"))
        object.__setattr__(self, "metrics", _scalar_metrics(self.metrics, f"site {self.site_id!r}"))

    @property
    def nbytes(self) -> int:
        """Bytes that cross the boundary: float64 parameters, the count and the metrics."""
        return int(self.parameters.nbytes) + 8 + 8 * len(self.metrics)


@dataclass(frozen=True)
class SiteEvaluation:
    """Scalar metrics one site computes on its own test split."""

    site_id: str
    num_examples: int
    metrics: Mapping[str, float]

    def __post_init__(self) -> None:
        object.__setattr__(self, "num_examples", check_positive_int(self.num_examples, "num_examples"))
        object.__setattr__(self, "metrics", _scalar_metrics(self.metrics, f"site {self.site_id!r}"))


class Hospital:
    """A site holding private training and test records.

    The records are kept in private attributes and no method returns them: the
    public methods return a :class:`ModelUpdate` or a :class:`SiteEvaluation`.

    Parameters
    ----------
    site_id : str
        A name unique within the federation.
    X_train, y_train : arrays of shape (n_k, d) and (n_k,)
        The training split.
    X_test, y_test : arrays, optional
        The held-out split used by :meth:`evaluate`.
    speed : float
        Relative compute speed (records per unit time), used by deadline-based
        participation models.
    """

    def __init__(self, site_id: str, X_train, y_train, X_test=None, y_test=None, *, speed: float = 1.0):
        if not isinstance(site_id, str) or not site_id:
            raise ValueError(f"site_id must be a non-empty string, got {site_id!r}")
        self.site_id = site_id
        self.__X_train, self.__y_train = self._check_split(X_train, y_train, "training")
        self.__test = None if X_test is None else self._check_split(X_test, y_test, "test")
        if not speed > 0:
            raise ValueError(f"site {site_id!r}: speed must be positive, got {speed!r}")
        self.speed = float(speed)

    def _check_split(self, X, y, label):
        X = np.array(X, dtype=float, copy=True)
        y = np.array(y, dtype=float, copy=True)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(f"site {self.site_id!r}: {label} features must be a non-empty 2-D array, got shape {X.shape}")
        if y.shape != (X.shape[0],):
            raise ValueError(f"site {self.site_id!r}: {label} labels must have shape ({X.shape[0]},), got {y.shape}")
        X.setflags(write=False)
        y.setflags(write=False)
        return X, y

    @property
    def num_examples(self) -> int:
        """n_k, the number of training records (a count, which may leave the site)."""
        return int(self.__X_train.shape[0])

    @property
    def num_test_examples(self) -> int:
        return 0 if self.__test is None else int(self.__test[0].shape[0])

    @property
    def num_features(self) -> int:
        return int(self.__X_train.shape[1])

    def fit(self, parameters: np.ndarray, model, config, rng: np.random.Generator) -> ModelUpdate:
        """Train ``model`` locally from the broadcast ``parameters`` and return the update."""
        check_rng(rng)
        trained = local_train(model, parameters, self.__X_train, self.__y_train, config, rng)
        return ModelUpdate(
            site_id=self.site_id,
            parameters=trained,
            num_examples=self.num_examples,
            metrics={"train_loss": model.loss(trained, self.__X_train, self.__y_train)},
        )

    def local_loss_and_gradient(self, parameters: np.ndarray, model) -> tuple[float, np.ndarray]:
        """Return the site's training loss L_k and its gradient at ``parameters``."""
        return model.loss(parameters, self.__X_train, self.__y_train), model.gradient(
            parameters, self.__X_train, self.__y_train
        )

    def evaluate(self, parameters: np.ndarray, model) -> SiteEvaluation:
        """Score ``parameters`` on the site's own test split; only scalars leave the site."""
        if self.__test is None:
            raise ValueError(f"site {self.site_id!r} has no test split; pass X_test and y_test when creating it")
        X_test, y_test = self.__test
        metrics = {"loss": model.loss(parameters, X_test, y_test)}
        if hasattr(model, "predict_proba"):
            metrics.update(evaluate_classifier(y_test, model.predict_proba(parameters, X_test)))
        return SiteEvaluation(site_id=self.site_id, num_examples=int(X_test.shape[0]), metrics=metrics)

    def __repr__(self) -> str:
        return f"Hospital({self.site_id!r}, n_train={self.num_examples}, n_test={self.num_test_examples})"
