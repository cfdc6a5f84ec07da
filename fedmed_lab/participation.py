"""Participation models: which sites respond in a round.

A participation model is any object with a ``select(server_round, site_ids,
rng)`` method that returns the responding site ids, in the order given. The
round driver calls it once per round, so later chapters add dropout and
stragglers without changing the driver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

import numpy as np

from fedmed_lab._checks import (
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    check_probability,
    check_site_sizes,
)

if TYPE_CHECKING:
    from fedmed_lab.sites import Hospital


class Participation(Protocol):
    def select(self, server_round: int, site_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        """Return the ids of the sites whose updates arrive in ``server_round``."""


class FullParticipation:
    """Every site responds in every round."""

    def select(self, server_round: int, site_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        return list(site_ids)

    def __repr__(self) -> str:
        return "FullParticipation()"


class FixedDropout:
    """The named sites never respond in the given rounds (all rounds when ``rounds`` is None)."""

    def __init__(self, dropped: Sequence[str], rounds: Sequence[int] | None = None):
        self.dropped = frozenset(dropped)
        self.rounds = None if rounds is None else frozenset(rounds)

    def select(self, server_round: int, site_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        unknown = self.dropped.difference(site_ids)
        if unknown:
            raise ValueError(f"FixedDropout names unknown sites {sorted(unknown)}; known sites are {list(site_ids)}")
        if self.rounds is not None and server_round not in self.rounds:
            return list(site_ids)
        return [site for site in site_ids if site not in self.dropped]

    def __repr__(self) -> str:
        return f"FixedDropout({sorted(self.dropped)}, rounds={None if self.rounds is None else sorted(self.rounds)})"


def _check_site_ids(site_ids: Sequence[str], known: Mapping[str, object], owner: str) -> None:
    missing = [site for site in site_ids if site not in known]
    if missing:
        raise ValueError(
            f"{owner} has no entry for sites {missing}; pass a value for every site id in {list(site_ids)}"
        )


def _check_probabilities(probabilities: Mapping[str, float], name: str) -> dict[str, float]:
    if not isinstance(probabilities, Mapping) or not probabilities:
        raise ValueError(f"{name} must be a non-empty mapping from site id to probability, got {probabilities!r}")
    return {site: check_probability(p, f"{name}[{site!r}]") for site, p in probabilities.items()}


def _check_sizes(site_sizes: Mapping[str, int], name: str = "site_sizes") -> dict[str, int]:
    if not isinstance(site_sizes, Mapping) or not site_sizes:
        raise ValueError(f"{name} must be a non-empty mapping from site id to n_k, got {site_sizes!r}")
    sizes = check_site_sizes(list(site_sizes.values()), name)
    return dict(zip(site_sizes, (int(n) for n in sizes)))


class BernoulliParticipation:
    """Each site responds independently with its own probability, every round.

    Parameters
    ----------
    probabilities : mapping of str to float
        ``{site_id: p_k}``, each in [0, 1]. A site with p_k = 0 never
        responds and one with p_k = 1 always does.

    Raises
    ------
    ValueError
        When a probability lies outside [0, 1], or when :meth:`select` meets
        a site id without a probability.
    """

    def __init__(self, probabilities: Mapping[str, float]):
        self.probabilities = _check_probabilities(probabilities, "probabilities")

    def select(self, server_round: int, site_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        _check_site_ids(site_ids, self.probabilities, "BernoulliParticipation")

        # One uniform draw per site, in site order, so a seed fixes every round.
        draws = rng.random(len(site_ids))
        return [site for site, u in zip(site_ids, draws) if u < self.probabilities[site]]

    def __repr__(self) -> str:
        return f"BernoulliParticipation({self.probabilities})"


def local_compute_time(num_examples: int, speed: float, epochs: int) -> float:
    """Return the time one site needs for a round: ``epochs * n_k / speed`` (time units).

    ``speed`` is in records per time unit, as :attr:`Hospital.speed`.
    """
    num_examples = check_positive_int(num_examples, "num_examples")
    speed = check_positive_float(speed, "speed")
    epochs = check_positive_int(epochs, "epochs")
    return epochs * num_examples / speed


class DeadlineParticipation:
    """Sites whose local training does not finish before a deadline miss the round.

    Site k needs ``epochs * n_k / speed_k`` time units (see
    :func:`local_compute_time`), multiplied each round by a log-normal factor
    ``exp(jitter * z)``, ``z`` standard normal, that models a busy machine.
    A site responds when that time is at most ``deadline``. With
    ``jitter=0`` the same sites respond every round and ``rng`` is not used.

    Parameters
    ----------
    deadline : float
        Time units the coordinator waits for updates, positive.
    site_sizes : mapping of str to int
        ``{site_id: n_k}``, all positive.
    speeds : mapping of str to float
        ``{site_id: records per time unit}``, all positive.
    epochs : int
        Local epochs E per round.
    jitter : float
        Standard deviation of the log of the per-round slowdown factor, >= 0.
    """

    def __init__(self, deadline: float, *, site_sizes: Mapping[str, int], speeds: Mapping[str, float],
                 epochs: int = 1, jitter: float = 0.0):
        self.deadline = check_positive_float(deadline, "deadline")
        self.site_sizes = _check_sizes(site_sizes)
        if not isinstance(speeds, Mapping):
            raise ValueError(f"speeds must be a mapping from site id to records per time unit, got {speeds!r}")
        self.speeds = {site: check_positive_float(s, f"speeds[{site!r}]") for site, s in speeds.items()}
        self.epochs = check_positive_int(epochs, "epochs")
        self.jitter = check_non_negative_float(jitter, "jitter")

    @classmethod
    def from_hospitals(cls, hospitals: Sequence[Hospital], deadline: float, *, epochs: int = 1,
                       jitter: float = 0.0) -> DeadlineParticipation:
        """Build the model from each hospital's n_k and :attr:`Hospital.speed`, counts only."""
        return cls(deadline, site_sizes={h.site_id: h.num_examples for h in hospitals},
                   speeds={h.site_id: h.speed for h in hospitals}, epochs=epochs, jitter=jitter)

    def compute_times(self, site_ids: Sequence[str]) -> dict[str, float]:
        """Return each site's round time without jitter, ``{site_id: epochs * n_k / speed_k}``."""
        _check_site_ids(site_ids, self.site_sizes, "DeadlineParticipation.site_sizes")
        _check_site_ids(site_ids, self.speeds, "DeadlineParticipation.speeds")
        return {site: local_compute_time(self.site_sizes[site], self.speeds[site], self.epochs) for site in site_ids}

    def select(self, server_round: int, site_ids: Sequence[str], rng: np.random.Generator) -> list[str]:
        times = self.compute_times(site_ids)
        if self.jitter > 0:
            slowdown = np.exp(self.jitter * rng.standard_normal(len(site_ids)))
        else:
            slowdown = np.ones(len(site_ids))
        return [site for site, factor in zip(site_ids, slowdown) if times[site] * factor <= self.deadline]

    def __repr__(self) -> str:
        return f"DeadlineParticipation(deadline={self.deadline}, epochs={self.epochs}, jitter={self.jitter})"


def smallest_sites(site_sizes: Mapping[str, int], count: int = 2) -> list[str]:
    """Return the ids of the ``count`` smallest sites; ties keep the order of ``site_sizes``."""
    sizes = _check_sizes(site_sizes)
    count = check_positive_int(count, "count")
    if count > len(sizes):
        raise ValueError(f"count is {count} but there are only {len(sizes)} sites; pass at most {len(sizes)}")
    ordered = sorted(sizes, key=lambda site: sizes[site])
    return ordered[:count]


def drop_smallest_sites(site_sizes: Mapping[str, int], count: int = 2,
                        rounds: Sequence[int] | None = None) -> FixedDropout:
    """Return a :class:`FixedDropout` in which the ``count`` smallest sites never respond."""
    return FixedDropout(smallest_sites(site_sizes, count), rounds=rounds)
