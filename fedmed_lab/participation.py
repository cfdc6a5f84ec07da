"""Participation models: which sites respond in a round.

A participation model is any object with a ``select(server_round, site_ids,
rng)`` method that returns the responding site ids, in the order given. The
round driver calls it once per round, so later chapters add dropout and
stragglers without changing the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


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
