"""The Flower ``ServerApp``: Flower's FedAvg over every hospital, every round.

The server samples all ``num_sites`` nodes in each round (full
participation), skips federated evaluation, and records the global
parameters after each round into a JSON result file, which the tests and
the chapter compare with the course simulator. With a positive
``clipping-norm`` in the run config, FedAvg is wrapped in Flower's
``DifferentialPrivacyServerSideFixedClipping``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from flwr.app import ArrayRecord, Context, MetricRecord
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

from fedmed_lab import logger
from fedmed_lab.data import FEATURE_NAMES, default_federation
from fedmed_lab.flower_app.client_app import parameters_to_record, record_to_parameters
from fedmed_lab.flower_app.task import CapstoneTask, initial_parameters

RESULT_FILE_KEY = "result-file"
CLIPPING_NORM_KEY = "clipping-norm"
NOISE_MULTIPLIER_KEY = "noise-multiplier"


class FullParticipationFedAvg(FedAvg):
    """Flower's FedAvg that fails a round unless every sampled site replied without error.

    Flower's FedAvg aggregates whatever replies arrive and keeps the old
    parameters when none does, so a client that crashes in every round
    still yields a "finished" run. The course compares runtimes under full
    participation, so a missing or failed reply stops the run here.
    """

    def __init__(self, num_sites: int):
        super().__init__(fraction_train=1.0, fraction_evaluate=0.0, min_train_nodes=num_sites,
                         min_available_nodes=num_sites)
        self.num_sites = num_sites

    def aggregate_train(self, server_round, replies):
        replies = list(replies)
        errors = [str(reply.error.reason) for reply in replies if reply.has_error()]
        if errors or len(replies) != self.num_sites:
            raise RuntimeError(
                f"round {server_round}: {len(replies) - len(errors)} of {self.num_sites} sites replied; "
                f"client errors: {errors[:1] or 'none'}; see the SuperNode logs"
            )
        return super().aggregate_train(server_round, replies)


def make_strategy(num_sites: int, *, clipping_norm: float = 0.0, noise_multiplier: float = 0.0):
    """Build FedAvg with every site in every round, optionally wrapped for central DP.

    ``clipping_norm=0`` means no DP wrapper.
    """
    strategy = FullParticipationFedAvg(num_sites)
    if clipping_norm > 0.0:
        strategy = DifferentialPrivacyServerSideFixedClipping(
            strategy, noise_multiplier=noise_multiplier, clipping_norm=clipping_norm,
            num_sampled_clients=num_sites,
        )
    return strategy


def write_result(path: Path, task: CapstoneTask, rounds: list[np.ndarray], clock: list[float]) -> None:
    """Write the global parameters of every round to ``path`` as JSON (floats round-trip exactly).

    ``clock`` contains the server's ``time.perf_counter()`` reading when each
    row of ``rounds`` arrived, so differences are seconds per round.
    """
    payload = {"task": task.to_run_config(), "rounds": [[float(v) for v in params] for params in rounds],
               "clock": [float(t) for t in clock]}
    Path(path).write_text(json.dumps(payload), encoding="utf-8")


def read_result(path: Path) -> np.ndarray:
    """Return the recorded global parameters, shape (num_rounds + 1, p); row 0 is the start."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return np.array(payload["rounds"], dtype=float)


def read_round_seconds(path: Path) -> np.ndarray:
    """Return the server's wall-clock seconds of each round, shape (num_rounds,)."""
    payload = json.loads(Path(path).read_text(encoding="utf-8"))
    return np.diff(np.array(payload["clock"], dtype=float))


def make_server_app(task: CapstoneTask | None = None, result_file: Path | None = None) -> ServerApp:
    """Build the ServerApp; ``None`` arguments are read from the run config."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        run_config = dict(context.run_config)
        dp_settings = {key: float(run_config.pop(key, 0.0)) for key in (CLIPPING_NORM_KEY, NOISE_MULTIPLIER_KEY)}
        run_task = task or CapstoneTask.from_run_config(run_config)
        destination = result_file or run_config.get(RESULT_FILE_KEY)
        if not destination:
            raise ValueError(f"no result file: set {RESULT_FILE_KEY!r} in the run config to an absolute path")

        num_sites = len(default_federation())
        strategy = make_strategy(num_sites, clipping_norm=dp_settings[CLIPPING_NORM_KEY],
                                 noise_multiplier=dp_settings[NOISE_MULTIPLIER_KEY])
        rounds: list[np.ndarray] = []
        clock: list[float] = []

        # Flower calls this with the start parameters (round 0) and after every round.
        def record_round(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            clock.append(time.perf_counter())
            rounds.append(record_to_parameters(arrays))
            return None

        start = initial_parameters(run_task, len(FEATURE_NAMES))
        strategy.start(grid=grid, initial_arrays=parameters_to_record(start), num_rounds=run_task.num_rounds,
                       evaluate_fn=record_round)
        write_result(Path(destination), run_task, rounds, clock)
        logger.info("Flower run finished: %d rounds written to %s", run_task.num_rounds, destination)

    return app


app = make_server_app()
