"""Local training at one site: mini-batch gradient descent, optionally with a FedProx term."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fedmed_lab._checks import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    check_rng,
)


@dataclass(frozen=True)
class LocalTrainingConfig:
    """Settings a coordinator broadcasts for local training.

    Attributes
    ----------
    epochs : int
        Local passes over the site's training split per round (E).
    learning_rate : float
        Step size of gradient descent.
    batch_size : int or None
        Records per mini-batch; ``None`` uses the full split (deterministic
        gradient descent, no shuffling).
    proximal_mu : float
        FedProx coefficient mu; the local objective adds
        ``(mu / 2) ||w - w_global||^2``. 0 gives plain FedAvg.
    """

    epochs: int = 1
    learning_rate: float = 0.1
    batch_size: int | None = None
    proximal_mu: float = 0.0

    def __post_init__(self) -> None:
        check_positive_int(self.epochs, "epochs")
        check_positive_float(self.learning_rate, "learning_rate")
        if self.batch_size is not None:
            check_positive_int(self.batch_size, "batch_size")
        check_non_negative_float(self.proximal_mu, "proximal_mu")


def local_train(model, params: np.ndarray, X: np.ndarray, y: np.ndarray, config: LocalTrainingConfig,
                rng: np.random.Generator) -> np.ndarray:
    """Run ``config.epochs`` epochs of (mini-batch) gradient descent from ``params``.

    Returns a new parameter vector; ``params`` is not modified. With
    ``batch_size=None`` the result does not depend on ``rng``.
    """
    check_rng(rng)
    start = np.array(params, dtype=float, copy=True)
    current = start.copy()
    num_records = X.shape[0]
    batch_size = num_records if config.batch_size is None else min(config.batch_size, num_records)

    for _ in range(config.epochs):
        order = np.arange(num_records) if config.batch_size is None else rng.permutation(num_records)
        for begin in range(0, num_records, batch_size):
            batch = order[begin:begin + batch_size]
            step = model.gradient(current, X[batch], y[batch])

            # FedProx: the proximal term pulls the local model toward the broadcast one.
            if config.proximal_mu > 0.0:
                step = step + config.proximal_mu * (current - start)

            current = current - config.learning_rate * step
    return current
