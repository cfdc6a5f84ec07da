"""Tests of the secure-aggregation primitives: Shamir shares, mask streams, key agreement, fixed point."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmed_lab import FedMedWarning
from fedmed_lab.secagg_crypto import (
    SHAMIR_PRIME,
    FixedPointCodec,
    KeySource,
    agree_key,
    bytes_to_field_elements,
    field_elements_to_bytes,
    generate_private_key,
    lagrange_coefficients_at_zero,
    mask_stream,
    public_bytes,
    shamir_reconstruct,
    shamir_split,
)


@st.composite
def sharing_cases(draw):
    num_holders = draw(st.integers(1, 9))
    threshold = draw(st.integers(1, num_holders))
    x_coordinates = draw(st.lists(st.integers(1, 10_000), min_size=num_holders, max_size=num_holders, unique=True))
    secret = draw(st.integers(0, SHAMIR_PRIME - 1))
    seed = draw(st.binary(min_size=1, max_size=8))
    subset = draw(st.permutations(range(num_holders)))
    return threshold, x_coordinates, secret, seed, subset


@settings(max_examples=60, deadline=None)
@given(sharing_cases())
def test_any_t_shares_reconstruct_secret(case):
    threshold, xs, secret, seed, order = case
    shares = shamir_split(secret, threshold=threshold, x_coordinates=xs, source=KeySource(seed))
    chosen = list(order[:threshold])

    recovered = shamir_reconstruct([xs[i] for i in chosen], shares[chosen], threshold=threshold)

    assert int(recovered) == secret


@settings(max_examples=60, deadline=None)
@given(sharing_cases())
def test_t_minus_one_shares_give_wrong_value(case):
    threshold, xs, secret, seed, order = case
    if threshold < 2:
        return
    shares = shamir_split(secret, threshold=threshold, x_coordinates=xs, source=KeySource(seed))
    chosen = list(order[: threshold - 1])

    # Interpolating t - 1 points fits a polynomial of too low a degree. Its value at 0
    # equals the secret only with probability 1/p over the random coefficients.
    guess = shamir_reconstruct([xs[i] for i in chosen], shares[chosen])

    assert int(guess) != secret


def test_t_minus_one_shares_consistent_with_every_secret():
    prime, threshold = 11, 3
    xs = [1, 2, 5]
    shares = shamir_split(4, threshold=threshold, x_coordinates=xs, source=KeySource(b"small field"), prime=prime)
    known_x, known_y = xs[:2], list(shares[:2])

    # Every value of the unseen third share yields a different secret, and every secret
    # occurs once: two shares alone leave all 11 secrets equally possible.
    secrets_seen = sorted(
        int(shamir_reconstruct(known_x + [xs[2]], np.array(known_y + [y], dtype=np.uint64), prime=prime))
        for y in range(prime)
    )

    assert secrets_seen == list(range(prime))


def test_reconstruct_rejects_fewer_than_threshold():
    shares = shamir_split(42, threshold=3, x_coordinates=[1, 2, 3], source=KeySource(b"s"))

    with pytest.raises(ValueError, match=r"need at least t=3 shares to reconstruct, got 2"):
        shamir_reconstruct([1, 2], shares[:2], threshold=3)


def test_split_rejects_threshold_above_holders():
    with pytest.raises(ValueError, match=r"threshold t=4 is larger than the number of share holders 3"):
        shamir_split(1, threshold=4, x_coordinates=[1, 2, 3])


@pytest.mark.parametrize("xs, wording", [
    ([0, 1], r"x = 0 is the secret itself"),
    ([2, 2], r"must be distinct"),
    ([], r"non-empty"),
])
def test_split_rejects_bad_x_coordinates(xs, wording):
    with pytest.raises(ValueError, match=wording):
        shamir_split(1, threshold=1, x_coordinates=xs)


def test_split_rejects_secret_outside_field():
    with pytest.raises(ValueError, match=r"secret must be integers in \[0, 2147483647\)"):
        shamir_split(SHAMIR_PRIME, threshold=1, x_coordinates=[1])


def test_lagrange_coefficients_two_points_closed_form():
    prime = 101
    x1, x2 = 3, 7

    coefficients = lagrange_coefficients_at_zero([x1, x2], prime)

    # lambda_1 = x2 / (x2 - x1), lambda_2 = x1 / (x1 - x2), both mod p.
    assert int(coefficients[0]) == x2 * pow(x2 - x1, -1, prime) % prime
    assert int(coefficients[1]) == x1 * pow(x1 - x2, -1, prime) % prime


def test_secret_bytes_survive_sharing():
    secret = bytes(range(32))
    limbs = bytes_to_field_elements(secret)
    shares = shamir_split(limbs, threshold=2, x_coordinates=[4, 9, 11], source=KeySource(b"bytes"))

    recovered = field_elements_to_bytes(shamir_reconstruct([9, 11], shares[1:]))

    assert recovered == secret


def test_corrupt_limbs_rejected():
    with pytest.raises(ValueError, match=r"shares are corrupt"):
        field_elements_to_bytes(np.full(16, 1 << 16, dtype=np.uint64))


def test_mask_stream_matches_chacha20_test_vector():
    # RFC 8439, appendix A.1, test vector 1: all-zero key and nonce, block counter 0;
    # the keystream begins 76 b8 e0 ad a0 f1 3d 90.
    values = mask_stream(bytes(32), 2, modulus_bits=32)

    assert values.tolist() == [0xADE0B876, 0x903DF1A0]


def test_mask_stream_reduces_to_modulus():
    values = mask_stream(b"k" * 32, 1000, modulus_bits=20)

    assert values.dtype == np.uint64
    assert int(values.max()) < 2**20


def test_mask_stream_depends_on_key():
    first = mask_stream(b"a" * 32, 8, modulus_bits=32)
    second = mask_stream(b"b" * 32, 8, modulus_bits=32)

    assert not np.array_equal(first, second)
    assert np.array_equal(first, mask_stream(b"a" * 32, 8, modulus_bits=32))


@pytest.mark.parametrize("modulus_bits", [32, 62])
def test_mask_stream_mean_and_variance_uniform(modulus_bits):
    n = 50_000
    values = mask_stream(b"u" * 32, n, modulus_bits=modulus_bits).astype(float)
    modulus = 2.0**modulus_bits

    # Five standard errors: sd(mean) = R / sqrt(12 n), sd(var) ~ R^2 / sqrt(180 n).
    assert abs(values.mean() - modulus / 2) < 5 * modulus / math.sqrt(12 * n)
    assert abs(values.var() - modulus**2 / 12) < 5 * modulus**2 / math.sqrt(180 * n)


def test_agree_key_symmetric_and_bound_to_context():
    source = KeySource(b"pair")
    alice = generate_private_key(source, "alice")
    bob = generate_private_key(source, "bob")

    from_alice = agree_key(alice, public_bytes(bob), info=b"mask 0 1")
    from_bob = agree_key(bob, public_bytes(alice), info=b"mask 0 1")
    other_context = agree_key(alice, public_bytes(bob), info=b"channel 0 1")

    assert from_alice == from_bob
    assert from_alice != other_context
    assert len(from_alice) == 32


def test_key_source_seeded_repeats_and_os_differs():
    assert KeySource(b"x").draw("a", 16) == KeySource(b"x").draw("a", 16)
    assert KeySource(b"x").draw("a", 16) != KeySource(b"x").draw("b", 16)
    assert KeySource().draw("a", 16) != KeySource().draw("a", 16)


def test_key_source_rejects_text_seed():
    with pytest.raises(TypeError, match=r"seed must be bytes or None, got str"):
        KeySource("seed")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0), min_size=1, max_size=20), st.integers(0, 20))
def test_codec_round_trip_within_half_resolution(values, scale_bits):
    codec = FixedPointCodec(clip=1.0, scale_bits=scale_bits, modulus_bits=32)

    decoded = codec.decode(codec.encode(values))

    assert np.max(np.abs(decoded - np.array(values))) <= codec.resolution / 2


def test_codec_negative_values_two_complement():
    codec = FixedPointCodec(clip=2.0, scale_bits=4, modulus_bits=16)

    encoded = codec.encode([-1.0, 1.0])

    assert encoded.tolist() == [2**16 - 16, 16]
    assert codec.decode(encoded).tolist() == [-1.0, 1.0]


def test_codec_clipping_warns():
    codec = FixedPointCodec(clip=1.0, scale_bits=8)

    with pytest.warns(FedMedWarning, match=r"1 of 2 values lie outside \[-1, 1\]"):
        encoded = codec.encode([3.0, 0.5])

    assert codec.decode(encoded).tolist() == [1.0, 0.5]


def test_codec_rejects_nan():
    with pytest.raises(ValueError, match=r"NaN or infinity"):
        FixedPointCodec(clip=1.0, scale_bits=8).encode([np.nan])


def test_capacity_check_names_values():
    codec = FixedPointCodec(clip=1.0, scale_bits=20, modulus_bits=32)

    with pytest.raises(ValueError, match=r"K=10 sites with n_k <= 1000 .* not below R/2 = 2147483648"):
        codec.check_capacity(10, 1000)


def test_for_federation_picks_largest_safe_scale():
    codec = FixedPointCodec.for_federation(num_sites=10, max_weight=1000, clip=1.0, modulus_bits=32)
    finer = FixedPointCodec(clip=1.0, scale_bits=codec.scale_bits + 1, modulus_bits=32)

    codec.check_capacity(10, 1000)
    with pytest.raises(ValueError, match=r"could|can reach"):
        finer.check_capacity(10, 1000)


def test_for_federation_rejects_too_small_modulus():
    with pytest.raises(ValueError, match=r"R = 2\^16 is too small for K=1000"):
        FixedPointCodec.for_federation(num_sites=1000, max_weight=1000, clip=1.0, modulus_bits=16)


@pytest.mark.parametrize("modulus_bits", [15, 63, 32.0])
def test_codec_rejects_modulus_bits(modulus_bits):
    with pytest.raises(ValueError, match=r"modulus_bits must be an integer in \[16, 62\]"):
        FixedPointCodec(clip=1.0, scale_bits=4, modulus_bits=modulus_bits)
