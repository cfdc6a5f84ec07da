"""The Flower ``ClientApp``: one course hospital that trains when asked.

On each train message the client loads its hospital (the site file named
in its node config), trains the broadcast parameters locally with
:meth:`fedmed_lab.sites.Hospital.fit`, and replies with the parameters,
``num-examples`` (n_k) and the local training loss: the same three things
a :class:`~fedmed_lab.sites.ModelUpdate` carries in the course simulator.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from flwr.app import Array, ArrayRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from fedmed_lab.flower_app.site_files import load_hospital
from fedmed_lab.flower_app.task import CapstoneTask

PARAMETERS_KEY = "parameters"
SITE_FILE_KEY = "site-file"


def parameters_to_record(parameters: np.ndarray) -> ArrayRecord:
    """Wrap a flat parameter vector in the ArrayRecord Flower sends."""
    return ArrayRecord({PARAMETERS_KEY: Array(np.asarray(parameters, dtype=float))})


def record_to_parameters(record: ArrayRecord) -> np.ndarray:
    """Return the flat parameter vector carried by ``record``."""
    return np.asarray(record[PARAMETERS_KEY].numpy(), dtype=float)


def site_file_for(node_config: Mapping[str, object], site_files: Sequence[Path] | None) -> Path:
    """Find the site file of this node.

    A SuperNode started by the deployment script carries ``site-file`` in its
    node config. A virtual node in the simulation runtime carries only
    ``partition-id``, which indexes ``site_files``.

    Raises
    ------
    ValueError
        If the node config names neither, or the partition id is out of range.
    """
    if SITE_FILE_KEY in node_config:
        return Path(str(node_config[SITE_FILE_KEY]))
    if site_files is not None and "partition-id" in node_config:
        index = int(node_config["partition-id"])
        if not 0 <= index < len(site_files):
            raise ValueError(f"partition-id {index} is out of range for {len(site_files)} site files")
        return Path(site_files[index])
    raise ValueError(
        f"node config {dict(node_config)} names no site file; start the SuperNode with "
        f"--node-config '{SITE_FILE_KEY}=\"/path/to/site.npz\"'"
    )


def make_client_app(task: CapstoneTask | None = None, site_files: Sequence[Path] | None = None) -> ClientApp:
    """Build the ClientApp.

    Parameters
    ----------
    task : CapstoneTask, optional
        The training settings. ``None`` reads them from the run config, as
        in the deployment runtime.
    site_files : sequence of Path, optional
        Site files indexed by ``partition-id``, for the simulation runtime.
    """
    app = ClientApp()

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        run_task = task or CapstoneTask.from_run_config(context.run_config)
        hospital = load_hospital(site_file_for(context.node_config, site_files))
        server_round = int(msg.content["config"]["server-round"])

        # The seed is fixed per site and round; full-batch training never draws from it.
        rng = np.random.default_rng([run_task.seed, server_round, zlib.crc32(hospital.site_id.encode())])
        update = hospital.fit(record_to_parameters(msg.content["arrays"]), run_task.model, run_task.local, rng)

        metrics = MetricRecord({"num-examples": update.num_examples, "train-loss": update.metrics["train_loss"]})
        content = RecordDict({"arrays": parameters_to_record(update.parameters), "metrics": metrics})
        return Message(content=content, reply_to=msg)

    return app


app = make_client_app()
