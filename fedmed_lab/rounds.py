"""The federated round driver: broadcast, local training, aggregation, history.

The coordinator side of a run is :class:`Coordinator`. It holds the global
parameters and accepts only :class:`~fedmed_lab.sites.ModelUpdate` and
:class:`~fedmed_lab.sites.SiteEvaluation` objects, and nothing else: its
``receive_*`` methods reject any other type. :func:`run_federated` plays
both sides of the protocol in one process, in order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from fedmed_lab import logger
from fedmed_lab._checks import check_positive_int, check_rng
from fedmed_lab.aggregation import fedavg
from fedmed_lab.participation import FullParticipation, Participation
from fedmed_lab.sites import Hospital, ModelUpdate, SiteEvaluation
from fedmed_lab.training import LocalTrainingConfig

Aggregator = Callable[[Sequence[ModelUpdate]], np.ndarray]


@dataclass(frozen=True)
class RoundRecord:
    """Record of one round, as the coordinator stores it.

    ``status`` is ``"ok"`` when at least one update arrived and ``"empty"``
    when none did; an empty round leaves the global parameters unchanged.
    """

    server_round: int
    participants: tuple[str, ...]
    num_examples: tuple[int, ...]
    status: str
    parameters: np.ndarray
    train_loss: float
    bytes_down: int
    bytes_up: int
    evaluations: tuple[SiteEvaluation, ...] = ()

    def evaluation_metric(self, name: str) -> dict[str, float]:
        """Return ``{site_id: value}`` of one evaluation metric for this round."""
        return {e.site_id: e.metrics[name] for e in self.evaluations}


@dataclass
class TrainingHistory:
    """The per-round records of a run, in order."""

    initial_parameters: np.ndarray
    rounds: list[RoundRecord] = field(default_factory=list)

    @property
    def final_parameters(self) -> np.ndarray:
        return self.rounds[-1].parameters if self.rounds else self.initial_parameters

    @property
    def empty_rounds(self) -> list[int]:
        return [r.server_round for r in self.rounds if r.status == "empty"]

    def train_losses(self) -> np.ndarray:
        return np.array([r.train_loss for r in self.rounds])

    def total_bytes(self) -> int:
        return sum(r.bytes_down + r.bytes_up for r in self.rounds)


class Coordinator:
    """The server side: global parameters, received updates and the aggregation rule."""

    def __init__(self, initial_parameters: np.ndarray, aggregator: Aggregator = fedavg):
        self._parameters = np.array(initial_parameters, dtype=float, copy=True)
        self._aggregator = aggregator
        self._updates: list[ModelUpdate] = []
        self._evaluations: list[SiteEvaluation] = []

    def broadcast(self) -> np.ndarray:
        """Return a read-only copy of the global parameters to send to the sites."""
        copy = self._parameters.copy()
        copy.setflags(write=False)
        return copy

    def receive_update(self, update: ModelUpdate) -> None:
        if not isinstance(update, ModelUpdate):
            raise TypeError(f"the coordinator accepts only ModelUpdate objects, got {type(update).__name__}")
        if update.parameters.shape != self._parameters.shape:
            raise ValueError(
                f"site {update.site_id!r} sent parameters of shape {update.parameters.shape}, "
                f"expected {self._parameters.shape}"
            )
        self._updates.append(update)

    def receive_evaluation(self, evaluation: SiteEvaluation) -> None:
        if not isinstance(evaluation, SiteEvaluation):
            raise TypeError(f"the coordinator accepts only SiteEvaluation objects, got {type(evaluation).__name__}")
        self._evaluations.append(evaluation)

    def finish_round(self, server_round: int, bytes_down: int) -> RoundRecord:
        """Aggregate the received updates into new global parameters and return the round's record."""
        updates, self._updates = self._updates, []

        if updates:
            # An aggregator that reweights updates against the broadcast model
            # (such as HorvitzThompsonAggregator) declares needs_global_parameters.
            if getattr(self._aggregator, "needs_global_parameters", False):
                aggregate = self._aggregator(updates, global_parameters=self._parameters.copy())
            else:
                aggregate = self._aggregator(updates)
            self._parameters = np.asarray(aggregate, dtype=float)
            sizes = np.array([u.num_examples for u in updates], dtype=float)
            losses = np.array([u.metrics.get("train_loss", np.nan) for u in updates])
            train_loss = float(losses @ (sizes / sizes.sum()))
            status = "ok"
        else:
            logger.warning("round %d: no site responded; global parameters unchanged", server_round)
            train_loss = float("nan")
            status = "empty"

        return RoundRecord(
            server_round=server_round,
            participants=tuple(u.site_id for u in updates),
            num_examples=tuple(u.num_examples for u in updates),
            status=status,
            parameters=self.broadcast(),
            train_loss=train_loss,
            bytes_down=bytes_down,
            bytes_up=sum(u.nbytes for u in updates),
        )

    def attach_evaluations(self, record: RoundRecord) -> RoundRecord:
        """Return ``record`` with the evaluations received since the round finished."""
        evaluations, self._evaluations = tuple(self._evaluations), []
        return dataclasses.replace(record, evaluations=evaluations)


def run_federated(hospitals: Sequence[Hospital], model, *, rounds: int, local: LocalTrainingConfig,
                  rng: np.random.Generator, initial_parameters: np.ndarray | None = None,
                  participation: Participation | None = None, aggregator: Aggregator = fedavg,
                  evaluate: bool = False, coordinator: Coordinator | None = None) -> TrainingHistory:
    """Run ``rounds`` rounds of federated training and return the history.

    In each round the participation model picks the responding sites and the
    coordinator broadcasts the global parameters. Each responding site trains
    locally and returns a :class:`ModelUpdate`, and the coordinator
    aggregates them. With ``evaluate=True`` every site (responding or not) scores the new
    global model on its own test split and returns only scalars.

    Randomness: ``rng`` draws the participation, then one child generator per
    site per round for local training, in site order.
    """
    check_rng(rng)
    check_positive_int(rounds, "rounds")
    if not hospitals:
        raise ValueError("hospitals is empty; a federation needs at least one site")
    site_ids = [h.site_id for h in hospitals]
    if len(set(site_ids)) != len(site_ids):
        raise ValueError(f"site ids must be unique, got {site_ids}")
    by_id = {h.site_id: h for h in hospitals}
    participation = participation or FullParticipation()

    if initial_parameters is None:
        initial_parameters = model.initial_parameters(hospitals[0].num_features)
    coordinator = coordinator or Coordinator(initial_parameters, aggregator)
    history = TrainingHistory(initial_parameters=np.array(initial_parameters, dtype=float, copy=True))

    for server_round in range(1, rounds + 1):
        responding = participation.select(server_round, site_ids, rng)
        site_rngs = rng.spawn(len(site_ids))
        global_parameters = coordinator.broadcast()
        for site_id, site_rng in zip(site_ids, site_rngs):
            if site_id in responding:
                coordinator.receive_update(by_id[site_id].fit(global_parameters, model, local, site_rng))
        bytes_down = len(responding) * int(global_parameters.nbytes)
        record = coordinator.finish_round(server_round, bytes_down)

        if evaluate:
            for hospital in hospitals:
                coordinator.receive_evaluation(hospital.evaluate(record.parameters, model))
            record = coordinator.attach_evaluations(record)
        history.rounds.append(record)

    logger.info("federated run finished: %d rounds, %d empty", rounds, len(history.empty_rounds))
    return history
