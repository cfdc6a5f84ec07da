"""Tests of the secure-aggregation protocol: exact sums under dropout, aborts, rejected inputs, graphs."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab import FedMedWarning
from fedmed_lab.aggregation import fedavg
from fedmed_lab.data import default_federation, make_risk_cohorts
from fedmed_lab.models import LogisticRegression
from fedmed_lab.rounds import run_federated
from fedmed_lab.secagg import (
    SecAggCoordinator,
    SecAggSite,
    SecureAggregationAborted,
    SecureAggregator,
    complete_graph,
    harary_degree,
    random_harary_graph,
    run_secure_aggregation,
    secure_fedavg,
)
from fedmed_lab.secagg_crypto import FixedPointCodec, KeySource
from fedmed_lab.sites import ModelUpdate
from fedmed_lab.training import LocalTrainingConfig

CODEC = FixedPointCodec(clip=1.0, scale_bits=12, modulus_bits=32)


def exact_fixed_point_sum(vectors, sizes, included, codec):
    """Reference in Python integers: sum_k n_k * round(x_k 2^f), decoded."""
    total = [0] * len(vectors[0])
    for k in included:
        for i, value in enumerate(vectors[k]):
            total[i] += sizes[k] * int(np.rint(value * 2**codec.scale_bits))
    return np.array(total, dtype=float) / 2**codec.scale_bits


@st.composite
def dropout_cases(draw):
    num_sites = draw(st.integers(2, 6))
    length = draw(st.integers(1, 3))
    vectors = [np.array(draw(st.lists(st.floats(-1, 1), min_size=length, max_size=length))) for _ in range(num_sites)]
    sizes = draw(st.lists(st.integers(1, 500), min_size=num_sites, max_size=num_sites))
    threshold = draw(st.integers(1, num_sites))
    status = draw(st.lists(st.sampled_from(["stays", "before", "after"]), min_size=num_sites, max_size=num_sites))
    seed = draw(st.binary(min_size=1, max_size=4))
    return vectors, sizes, threshold, status, seed


@settings(max_examples=40, deadline=None)
@given(dropout_cases())
def test_sum_exact_or_abort_for_every_dropout_pattern(case):
    vectors, sizes, threshold, status, seed = case
    names = [f"h{k}" for k in range(len(vectors))]
    before = [names[k] for k, s in enumerate(status) if s == "before"]
    after = [names[k] for k, s in enumerate(status) if s == "after"]
    uploaded = [k for k, s in enumerate(status) if s != "before"]
    responders = status.count("stays")

    def run():
        return run_secure_aggregation(vectors, sizes, threshold=threshold, codec=CODEC, site_ids=names,
                                      dropped_before_upload=before, dropped_after_upload=after, key_seed=seed)

    if len(uploaded) < threshold:
        with pytest.raises(SecureAggregationAborted, match=rf"{len(uploaded)} of {len(vectors)} sites responded, "
                                                           rf"fewer than the threshold t={threshold}"):
            run()
        return
    if responders < threshold:
        with pytest.raises(SecureAggregationAborted, match=rf"{responders} of {len(vectors)} sites responded, "
                                                           rf"fewer than the threshold t={threshold}"):
            run()
        return

    if len(uploaded) == 1:
        with pytest.warns(FedMedWarning, match=r"only site 'h\d' is in the sum"):
            result = run()
    else:
        result = run()

    assert result.total_weight == sum(sizes[k] for k in uploaded)
    assert np.array_equal(result.weighted_sum, exact_fixed_point_sum(vectors, sizes, uploaded, CODEC))
    plain = sum(sizes[k] * vectors[k] for k in uploaded)
    assert np.max(np.abs(result.weighted_sum - plain)) <= result.total_weight * CODEC.resolution / 2 + 1e-9


def test_dropped_sites_rebuild_the_right_secret():
    vectors = [np.full(2, 0.1 * k) for k in range(5)]

    result = run_secure_aggregation(vectors, [5, 6, 7, 8, 9], threshold=3, codec=CODEC,
                                    dropped_before_upload=["site_1"], dropped_after_upload=["site_4"], key_seed=b"r")

    assert result.reconstructed == {"site_0": "self-mask seed", "site_1": "mask key", "site_2": "self-mask seed",
                                    "site_3": "self-mask seed", "site_4": "self-mask seed"}
    assert result.included == ("site_0", "site_2", "site_3", "site_4")


def test_secure_fedavg_matches_plain_fedavg():
    rng = np.random.default_rng(7)
    updates = [ModelUpdate(f"hospital_{k}", rng.uniform(-0.5, 0.5, size=4), n) for k, n in enumerate([40, 900, 12000, 75])]
    codec = FixedPointCodec.for_federation(num_sites=4, max_weight=12000, clip=1.0, modulus_bits=48)

    result = secure_fedavg(updates, threshold=3, codec=codec, key_seed=b"fedavg")
    unweighted = np.mean([u.parameters for u in updates], axis=0)

    assert np.max(np.abs(result.weighted_average - fedavg(updates))) <= codec.resolution
    assert np.max(np.abs(result.weighted_average - unweighted)) > 100 * codec.resolution


def test_sparse_graph_sum_with_dropout():
    rng = np.random.default_rng(3)
    vectors = [rng.uniform(-1, 1, size=3) for _ in range(16)]
    sizes = [int(n) for n in rng.integers(10, 100, size=16)]
    graph = random_harary_graph(16, rng)
    codec = FixedPointCodec.for_federation(num_sites=16, max_weight=100, clip=1.0)

    result = run_secure_aggregation(vectors, sizes, threshold=9, codec=codec, graph=graph,
                                    dropped_before_upload=["site_2"], dropped_after_upload=["site_11"], key_seed=b"g")

    included = [k for k in range(16) if k != 2]
    assert result.total_weight == sum(sizes[k] for k in included)
    assert np.array_equal(result.weighted_sum, exact_fixed_point_sum(vectors, sizes, included, codec))


def test_sparse_graph_aborts_when_a_neighbourhood_is_lost():
    rng = np.random.default_rng(5)
    graph = random_harary_graph(16, rng)
    neighbours = sorted(graph[0])
    vectors = [np.zeros(2) for _ in range(16)]

    # Site 0 sends its input but all its share holders go silent, so its self mask cannot be removed.
    with pytest.raises(SecureAggregationAborted, match=r"holders of site 'site_0'.s self-mask seed responded"):
        run_secure_aggregation(vectors, [1] * 16, threshold=8, codec=CODEC, graph=graph,
                               dropped_after_upload=[f"site_{v}" for v in [0, *neighbours]], key_seed=b"lost")


def test_masked_inputs_look_uniform():
    length = 20_000
    vectors = [np.full(length, 0.25), np.zeros(length), np.full(length, -0.5)]

    result = run_secure_aggregation(vectors, [3, 1, 2], threshold=2, codec=CODEC, key_seed=b"uniform")

    modulus = float(CODEC.modulus)
    n = length + 1
    for name, masked in result.masked_inputs.items():
        values = masked.astype(float)
        assert abs(values.mean() - modulus / 2) < 5 * modulus / math.sqrt(12 * n), name
        assert abs(values.var() - modulus**2 / 12) < 5 * modulus**2 / math.sqrt(180 * n), name


def test_masked_sum_without_unmasking_is_not_the_sum():
    vectors = [np.full(4, 0.5), np.full(4, 0.25), np.full(4, -0.125)]

    result = run_secure_aggregation(vectors, [1, 1, 1], threshold=2, codec=CODEC, key_seed=b"view")
    raw = sum(v.astype(np.uint64) for v in result.masked_inputs.values()) % np.uint64(CODEC.modulus)

    # The pairwise masks cancel, but each self mask stays until the survivors reveal b_u.
    assert not np.allclose(CODEC.decode(raw[:-1]), result.weighted_sum)


def test_threshold_above_sites_rejected():
    with pytest.raises(ValueError, match=r"threshold t=7 is larger than the number of sites K=5; choose t <= K"):
        run_secure_aggregation([np.zeros(2)] * 5, [1] * 5, threshold=7, codec=CODEC)


def test_threshold_zero_rejected():
    with pytest.raises(ValueError, match=r"threshold must be a positive integer, got 0"):
        run_secure_aggregation([np.zeros(2)] * 3, [1] * 3, threshold=0, codec=CODEC)


def make_coordinator(length=3):
    return SecAggCoordinator(["north", "south", "east"], threshold=2, vector_length=length, codec=CODEC)


@pytest.mark.parametrize("masked, wording", [
    (np.zeros(3, dtype=np.uint64), r"site 'south' has shape \(3,\), expected \(4,\)"),
    (np.zeros(5, dtype=np.uint64), r"site 'south' has shape \(5,\), expected \(4,\)"),
    (np.zeros((2, 2), dtype=np.uint64), r"site 'south' has shape \(2, 2\)"),
    (np.zeros(4, dtype=float), r"site 'south' has dtype float64, expected unsigned integers"),
    (np.full(4, 2**32, dtype=np.uint64), r"site 'south' has entries >= R = 2\^32"),
    ([0, 0, 0, 0], r"site 'south' is a list, not a numpy array"),
])
def test_malformed_masked_input_rejected(masked, wording):
    coordinator = make_coordinator()

    with pytest.raises(ValueError, match=wording):
        coordinator.receive_masked_input(1, masked)

    assert 1 not in coordinator.masked


def test_site_rejects_revealing_both_secrets():
    site = SecAggSite(0, "north", np.zeros(2), 5, CODEC, KeySource(b"both"))

    with pytest.raises(ValueError, match=r"site 'north' rejects the unmasking request: sites \[1\]"):
        site.unmasking(frozenset({0, 1}), frozenset({1}))


def test_unknown_dropped_site_rejected():
    with pytest.raises(ValueError, match=r"dropped_before_upload names unknown sites \['nowhere'\]"):
        run_secure_aggregation([np.zeros(2)] * 3, [1] * 3, threshold=2, codec=CODEC, dropped_before_upload=["nowhere"])


def test_site_dropped_twice_rejected():
    with pytest.raises(ValueError, match=r"sites \['site_1'\] are listed as dropping both before and after"):
        run_secure_aggregation([np.zeros(2)] * 3, [1] * 3, threshold=1, codec=CODEC,
                               dropped_before_upload=["site_1"], dropped_after_upload=["site_1"])


def test_codec_capacity_checked_before_the_round():
    with pytest.raises(ValueError, match=r"K=3 sites with n_k <= 1000000"):
        run_secure_aggregation([np.zeros(2)] * 3, [1, 1, 1_000_000], threshold=2, codec=CODEC)


def test_mismatched_lengths_rejected():
    with pytest.raises(ValueError, match=r"same length, got shapes \[\(2,\), \(3,\)\]"):
        run_secure_aggregation([np.zeros(2), np.zeros(3)], [1, 1], threshold=1, codec=CODEC)


def test_cost_counts_quadratic_share_traffic():
    vectors = [np.zeros(2)] * 8
    result = run_secure_aggregation(vectors, [1] * 8, threshold=5, codec=CODEC, key_seed=b"cost")

    # Each of the K(K-1) ordered pairs carries one ciphertext: nonce, two 64-byte shares, tag, two ids.
    assert result.cost.bytes_up["share_keys"] == 8 * 7 * (12 + 128 + 16 + 8)
    assert result.cost.bytes_up["masked_input"] == 8 * (3 * 4 + 4)


@pytest.mark.parametrize("num_sites", [6, 17, 64, 500])
def test_harary_graph_regular_symmetric_connected(num_sites):
    graph = random_harary_graph(num_sites, np.random.default_rng(num_sites))
    degree = harary_degree(num_sites)

    assert all(len(neighbours) == degree for neighbours in graph)
    assert all(u in graph[v] for u in range(num_sites) for v in graph[u])
    reached, frontier = {0}, [0]
    while frontier:
        frontier = [v for u in frontier for v in graph[u] if v not in reached]
        reached.update(frontier)
    assert len(reached) == num_sites


def test_harary_degree_grows_like_log():
    assert [harary_degree(k) for k in [2, 5, 16, 100, 500, 1000]] == [1, 4, 4, 8, 10, 10]


def test_harary_graph_small_k_is_complete():
    assert random_harary_graph(5, np.random.default_rng(0)) == complete_graph(5)


def test_harary_graph_rejects_odd_degree():
    with pytest.raises(ValueError, match=r"degree must be an even integer in \[2, K-1\] .* got 3 for K=10"):
        random_harary_graph(10, np.random.default_rng(0), degree=3)


def test_secure_aggregator_trains_like_fedavg():
    hospitals = [c.to_hospital() for c in make_risk_cohorts(default_federation(), np.random.default_rng(11))]
    local = LocalTrainingConfig(epochs=2, learning_rate=0.5)
    codec = FixedPointCodec.for_federation(num_sites=5, max_weight=10_000, clip=4.0, modulus_bits=48)
    aggregator = SecureAggregator(threshold=3, codec=codec, key_seed=b"train")

    secure = run_federated(hospitals, LogisticRegression(), rounds=3, local=local, rng=np.random.default_rng(1),
                           aggregator=aggregator)
    plain = run_federated(hospitals, LogisticRegression(), rounds=3, local=local, rng=np.random.default_rng(1))

    assert np.max(np.abs(secure.final_parameters - plain.final_parameters)) < 1e-6
    assert aggregator.last_result.total_weight == sum(h.num_examples for h in hospitals)


def test_secure_aggregator_aborts_below_threshold():
    aggregator = SecureAggregator(threshold=3, codec=CODEC)
    updates = [ModelUpdate("a", np.zeros(2), 5), ModelUpdate("b", np.zeros(2), 7)]

    with pytest.raises(SecureAggregationAborted, match=r"2 sites responded, fewer than the threshold t=3"):
        aggregator(updates)


def test_single_included_site_warns():
    with pytest.warns(FedMedWarning, match=r"only site 'site_0' is in the sum, so the released aggregate is its own"):
        result = run_secure_aggregation([np.array([0.5])], [3], threshold=1, codec=CODEC)

    assert result.weighted_sum.tolist() == [1.5]
