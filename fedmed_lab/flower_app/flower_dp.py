"""Flower's server-side fixed-clipping DP wrapper, called on the course's site updates.

:func:`flower_dp_aggregate` feeds one round of site updates to Flower
1.42's ``DifferentialPrivacyServerSideFixedClipping`` around FedAvg, in
this process, so the chapter can compare its output with
:func:`fedmed_lab.flower_app.central_dp.central_dp_round` many times
without starting a runtime.

Flower draws its noise from NumPy's global random state
(``np.random.normal`` in ``add_gaussian_noise_inplace``), not from a
generator passed in, so its noise cannot be reproduced draw for draw; the
comparison is by distribution.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from flwr.app import ArrayRecord, Message, Metadata, MetricRecord, RecordDict
from flwr.serverapp.strategy import DifferentialPrivacyServerSideFixedClipping, FedAvg

from fedmed_lab.flower_app.client_app import parameters_to_record, record_to_parameters

# Weight key under which every site reports 1, for FedAvg with equal weights.
EQUAL_WEIGHT_KEY = "equal-weight"


def _reply(node_id: int, parameters: np.ndarray, num_examples: int) -> Message:
    # NOTE: Flower builds reply metadata itself inside a run; outside a run
    # the course sets it by hand, which Flower documents as internal use.
    metadata = Metadata(run_id=1, message_id=f"reply-{node_id}", src_node_id=node_id, dst_node_id=0,
                        reply_to_message_id=f"train-{node_id}", group_id="1", created_at=0.0, ttl=60.0,
                        message_type="train")
    metrics = MetricRecord({"num-examples": int(num_examples), EQUAL_WEIGHT_KEY: 1})
    content = RecordDict({"arrays": parameters_to_record(parameters), "metrics": metrics})
    return Message(content=content, metadata=metadata)


def flower_dp_aggregate(global_parameters: np.ndarray, site_parameters: Sequence[np.ndarray],
                        num_examples: Sequence[int], *, clipping_norm: float, noise_multiplier: float,
                        weighted: bool = True) -> np.ndarray:
    """Aggregate one round with Flower's ``DifferentialPrivacyServerSideFixedClipping``.

    Parameters
    ----------
    global_parameters : ndarray of shape (p,)
        The parameters the server broadcast this round.
    site_parameters : sequence of m arrays of shape (p,)
        Each site's locally trained parameters.
    num_examples : sequence of m int
        n_k of each site.
    clipping_norm, noise_multiplier : float
        Passed to Flower's wrapper unchanged.
    weighted : bool
        True: FedAvg weights by ``num-examples`` (Flower's default).
        False: every site has weight 1.

    Returns
    -------
    ndarray of shape (p,)
        The new global parameters, with noise from NumPy's global state.
    """
    if len(site_parameters) != len(num_examples):
        raise ValueError(f"got {len(site_parameters)} parameter vectors but {len(num_examples)} site sizes; "
                         "pass one n_k per site")
    weight_key = "num-examples" if weighted else EQUAL_WEIGHT_KEY
    num_sites = len(site_parameters)
    strategy = DifferentialPrivacyServerSideFixedClipping(
        FedAvg(weighted_by_key=weight_key, min_train_nodes=num_sites, min_available_nodes=num_sites),
        noise_multiplier=noise_multiplier, clipping_norm=clipping_norm, num_sampled_clients=num_sites,
    )
    # configure_train stores the broadcast parameters; set them without a Grid.
    strategy.current_arrays = parameters_to_record(global_parameters)

    replies = [_reply(node_id, params, n) for node_id, (params, n)
               in enumerate(zip(site_parameters, num_examples), start=1)]
    arrays, _ = strategy.aggregate_train(1, replies)
    if not isinstance(arrays, ArrayRecord):
        raise RuntimeError("Flower's DP wrapper returned no aggregate; check its log for rejected replies")
    return record_to_parameters(arrays)
