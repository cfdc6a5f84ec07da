"""Cryptographic building blocks of secure aggregation: keys, mask streams, Shamir shares, fixed point.

Sources
-------
- Key agreement: X25519 (RFC 7748) from the ``cryptography`` package; the
  shared secret goes through HKDF-SHA256 (RFC 5869) before use.
- Mask generator: the ChaCha20 keystream (RFC 8439) under a 32-byte key,
  read as little-endian unsigned integers. A numpy generator is not used for
  masks because its state can be recovered from its output.
- Secret sharing: Shamir, "How to share a secret", CACM 1979. A secret of
  bytes is split into 16-bit limbs and each limb is shared over the prime
  field GF(2^31 - 1), so share arithmetic fits in 64-bit integers and runs
  vectorised in numpy.
- Fixed-point encoding into the ring Z_R with R = 2^modulus_bits, negative
  numbers in two's complement, as in Bonawitz et al., "Practical Secure
  Aggregation for Privacy-Preserving Machine Learning", CCS 2017
  (IACR ePrint 2017/281).
"""

from __future__ import annotations

import functools
import hashlib
import math
import secrets
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fedmed_lab import FedMedWarning
from fedmed_lab._checks import check_positive_float, check_positive_int

SHAMIR_PRIME = 2**31 - 1
"""The Mersenne prime 2^31 - 1: every share and every product of two shares fits in uint64."""

SECRET_BYTES = 32
LIMB_BITS = 16
SECRET_LIMBS = SECRET_BYTES * 8 // LIMB_BITS


class KeySource:
    """Source of key material: the operating system, or a seed for reproducible teaching runs.

    Parameters
    ----------
    seed : bytes or None
        ``None`` draws every value from the OS (``secrets.token_bytes``).
        A seed derives each value as SHAKE-256(seed, label), so a notebook can
        show the same keys on every run. A seeded source is for teaching and
        tests only, because the seed determines every key.
    """

    def __init__(self, seed: bytes | None = None):
        if seed is not None and not isinstance(seed, bytes):
            raise TypeError(f"seed must be bytes or None, got {type(seed).__name__}; encode a string with .encode()")
        self._seed = seed

    @property
    def deterministic(self) -> bool:
        return self._seed is not None

    def draw(self, label: str, length: int) -> bytes:
        """Return ``length`` bytes; with a seed, distinct labels give independent-looking bytes."""
        if self._seed is None:
            return secrets.token_bytes(length)
        return hashlib.shake_256(self._seed + b"\x00" + label.encode()).digest(length)


# --- key agreement and masks -------------------------------------------------------------


def generate_private_key(source: KeySource, label: str) -> X25519PrivateKey:
    """Create an X25519 private key from 32 bytes of ``source``."""
    return X25519PrivateKey.from_private_bytes(source.draw(label, 32))


def public_bytes(private_key: X25519PrivateKey) -> bytes:
    """Return the 32-byte raw public key that a site advertises."""
    return private_key.public_key().public_bytes_raw()


def private_bytes(private_key: X25519PrivateKey) -> bytes:
    """Return the 32-byte raw private key, the secret that gets Shamir-shared."""
    return private_key.private_bytes_raw()


def agree_key(private_key: X25519PrivateKey, peer_public: bytes, *, info: bytes) -> bytes:
    """Derive a 32-byte key shared by two sites: X25519, then HKDF-SHA256 with context ``info``.

    Both sides get the same key when they pass the same ``info``, so ``info``
    must not depend on which side computes it.
    """
    shared = private_key.exchange(X25519PublicKey.from_public_bytes(peer_public))
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def mask_stream(key: bytes, length: int, *, modulus_bits: int) -> np.ndarray:
    """Expand a 32-byte key into ``length`` integers uniform on [0, 2^modulus_bits).

    Uses the ChaCha20 keystream with an all-zero nonce; each key is used for
    one stream only, so the fixed nonce is safe. Returns uint64, shape (length,).
    """
    if len(key) != 32:
        raise ValueError(f"mask key must be 32 bytes, got {len(key)}")
    width = 4 if modulus_bits <= 32 else 8
    encryptor = Cipher(algorithms.ChaCha20(key, bytes(16)), mode=None).encryptor()
    keystream = encryptor.update(bytes(width * length))
    values = np.frombuffer(keystream, dtype=np.uint32 if width == 4 else np.uint64).astype(np.uint64)
    if modulus_bits < 8 * width:
        values &= np.uint64((1 << modulus_bits) - 1)
    return values


# --- Shamir secret sharing over GF(2^31 - 1) ----------------------------------------------


def _check_x_coordinates(x_coordinates, prime: int) -> np.ndarray:
    xs = np.asarray(x_coordinates, dtype=np.int64)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"x_coordinates must be a non-empty 1-D sequence, got {x_coordinates!r}")
    if np.any(xs <= 0) or np.any(xs >= prime):
        raise ValueError(f"x_coordinates must lie in [1, {prime - 1}], got {xs.tolist()}; x = 0 is the secret itself")
    if len(np.unique(xs)) != len(xs):
        raise ValueError(f"x_coordinates must be distinct, got {xs.tolist()}")
    return xs.astype(np.uint64)


def random_field_elements(source: KeySource, label: str, shape: tuple[int, ...], prime: int = SHAMIR_PRIME) -> np.ndarray:
    """Draw field elements uniform on [0, prime) up to a bias below 2^-32 (64 random bits each)."""
    count = int(np.prod(shape, dtype=np.int64))
    raw = np.frombuffer(source.draw(label, 8 * count), dtype=np.uint64)
    return (raw % np.uint64(prime)).reshape(shape)


def shamir_split(secret, *, threshold: int, x_coordinates: Sequence[int], source: KeySource | None = None,
                 label: str = "shamir", prime: int = SHAMIR_PRIME) -> np.ndarray:
    """Split field elements into Shamir shares, any ``threshold`` of which recover them.

    Each element s gets its own random polynomial f of degree threshold - 1 with
    f(0) = s; the share for holder x is f(x) mod prime.

    Parameters
    ----------
    secret : int or array of int
        Field elements in [0, prime), any shape.
    threshold : int
        t, the number of shares needed; 1 <= t <= number of holders.
    x_coordinates : sequence of int
        Distinct holder coordinates in [1, prime).
    source : KeySource, optional
        Source of the random coefficients (default: the OS).
    label : str
        Distinguishes coefficient draws of a seeded source.

    Returns
    -------
    ndarray of uint64, shape (len(x_coordinates), *secret.shape)

    Raises
    ------
    ValueError
        If threshold is outside [1, number of holders] or a secret is not a field element.
    """
    if prime >= 2**32:
        raise ValueError(f"prime must be below 2^32 so products fit in uint64, got {prime}")
    xs = _check_x_coordinates(x_coordinates, prime)
    threshold = check_positive_int(threshold, "threshold")
    if threshold > len(xs):
        raise ValueError(f"threshold t={threshold} is larger than the number of share holders {len(xs)}; "
                         f"choose t <= {len(xs)}")
    values = np.asarray(secret)
    if not np.issubdtype(values.dtype, np.integer) or np.any(values < 0) or np.any(values >= prime):
        raise ValueError(f"secret must be integers in [0, {prime}), got {secret!r}")
    values = values.astype(np.uint64)
    source = source or KeySource()
    q = np.uint64(prime)

    # Coefficients a_1 .. a_{t-1}; a_0 is the secret.
    coefficients = random_field_elements(source, label, (threshold - 1, *values.shape), prime)

    # Horner's rule at every x at once: f(x) = (((a_{t-1} x + a_{t-2}) x + ...) x + a_0.
    x_column = xs.reshape((-1,) + (1,) * values.ndim)
    shares = np.zeros((len(xs), *values.shape), dtype=np.uint64)
    for coefficient in list(coefficients[::-1]) + [values]:
        shares = (shares * x_column + coefficient) % q
    return shares


def lagrange_coefficients_at_zero(x_coordinates: Sequence[int], prime: int = SHAMIR_PRIME) -> np.ndarray:
    """Return lambda_i = prod_{j != i} x_j / (x_j - x_i) mod prime, so f(0) = sum_i lambda_i f(x_i).

    The result is cached per coordinate set, because a coordinator rebuilds
    many secrets from the same responders; the cost is O(m^2) for m coordinates.
    """
    xs = tuple(int(x) for x in _check_x_coordinates(x_coordinates, prime))
    return _lagrange_at_zero(xs, prime).copy()


@functools.lru_cache(maxsize=256)
def _lagrange_at_zero(xs: tuple[int, ...], prime: int) -> np.ndarray:
    coefficients = []
    for i, x_i in enumerate(xs):
        numerator, denominator = 1, 1
        for j, x_j in enumerate(xs):
            if j != i:
                numerator = numerator * x_j % prime
                denominator = denominator * (x_j - x_i) % prime
        coefficients.append(numerator * pow(denominator, -1, prime) % prime)
    return np.array(coefficients, dtype=np.uint64)


def shamir_reconstruct(x_coordinates: Sequence[int], shares, *, threshold: int | None = None,
                       prime: int = SHAMIR_PRIME) -> np.ndarray:
    """Recover the secret f(0) from shares f(x_i) by Lagrange interpolation modulo ``prime``.

    Parameters
    ----------
    x_coordinates : sequence of int
        The holders' coordinates, distinct, in [1, prime).
    shares : array of uint64, shape (m, *secret_shape)
        ``shares[i]`` is the share of holder ``x_coordinates[i]``.
    threshold : int, optional
        When given, fewer than ``threshold`` shares raise instead of returning
        a value unrelated to the secret.

    Returns
    -------
    ndarray of uint64, shape secret_shape

    Raises
    ------
    ValueError
        If the shares and coordinates disagree in number, or fewer than ``threshold`` shares are given.
    """
    shares = np.asarray(shares, dtype=np.uint64)
    if shares.shape[:1] != (len(x_coordinates),):
        raise ValueError(f"got {len(x_coordinates)} x-coordinates but {shares.shape[:1]} shares; pass one share per holder")
    if threshold is not None and len(x_coordinates) < threshold:
        raise ValueError(f"need at least t={threshold} shares to reconstruct, got {len(x_coordinates)}")
    q = np.uint64(prime)
    weights = lagrange_coefficients_at_zero(x_coordinates, prime).reshape((-1,) + (1,) * (shares.ndim - 1))

    # Each product is below 2^62; reducing it first keeps the sum of up to 2^33 terms in uint64.
    return ((weights * (shares % q)) % q).sum(axis=0, dtype=np.uint64) % q


def bytes_to_field_elements(secret: bytes) -> np.ndarray:
    """Split a 32-byte secret into 16 little-endian 16-bit limbs (field elements), shape (16,)."""
    if len(secret) != SECRET_BYTES:
        raise ValueError(f"secret must be {SECRET_BYTES} bytes, got {len(secret)}")
    return np.frombuffer(secret, dtype="<u2").astype(np.uint64)


def field_elements_to_bytes(limbs: np.ndarray) -> bytes:
    """Join 16-bit limbs back into the 32-byte secret; a limb of 2^16 or more means corrupt shares."""
    limbs = np.asarray(limbs, dtype=np.uint64)
    if limbs.shape != (SECRET_LIMBS,) or np.any(limbs >= 1 << LIMB_BITS):
        raise ValueError("reconstructed limbs are not 16-bit values: the shares are corrupt or from different secrets")
    return limbs.astype("<u2").tobytes()


# --- fixed-point encoding ------------------------------------------------------------------


@dataclass(frozen=True)
class FixedPointCodec:
    """Fixed-point encoding of floats into Z_R, R = 2^modulus_bits, two's complement for negatives.

    A value x is clipped to [-clip, clip] and encoded as round(x * 2^scale_bits)
    mod R. Encoded values from K sites add up without wrapping as long as the
    true integer sum stays in (-R/2, R/2); :meth:`check_capacity` enforces that.

    Attributes
    ----------
    clip : float
        Largest magnitude encoded; larger values are clipped, with a warning.
    scale_bits : int
        f, fractional bits: the rounding error per value is at most 2^-(f+1).
    modulus_bits : int
        b, with R = 2^b; 16 <= b <= 62 so signed decoding fits in int64.
    """

    clip: float
    scale_bits: int
    modulus_bits: int = 32

    def __post_init__(self) -> None:
        check_positive_float(self.clip, "clip")
        if isinstance(self.scale_bits, bool) or not isinstance(self.scale_bits, int) or self.scale_bits < 0:
            raise ValueError(f"scale_bits must be a non-negative integer, got {self.scale_bits!r}")
        if isinstance(self.modulus_bits, bool) or not isinstance(self.modulus_bits, int) \
                or not 16 <= self.modulus_bits <= 62:
            raise ValueError(f"modulus_bits must be an integer in [16, 62], got {self.modulus_bits!r}")

    @property
    def modulus(self) -> int:
        return 1 << self.modulus_bits

    @property
    def max_encoded(self) -> int:
        """Largest |encoded value| of one clipped input, round(clip * 2^f)."""
        return int(round(self.clip * 2**self.scale_bits))

    @property
    def resolution(self) -> float:
        """Spacing of representable values, 2^-f."""
        return 2.0**-self.scale_bits

    def check_capacity(self, num_sites: int, max_weight: int) -> None:
        """Rule out wrap-around: K * max_weight * max|encoded| must stay below R / 2.

        Raises
        ------
        ValueError
            Naming K, max_weight, the bound and the modulus, when the sum could wrap.
        """
        num_sites = check_positive_int(num_sites, "num_sites")
        max_weight = check_positive_int(max_weight, "max_weight")
        bound = num_sites * max_weight * max(self.max_encoded, 1)
        if bound >= self.modulus // 2:
            raise ValueError(
                f"the weighted sum of K={num_sites} sites with n_k <= {max_weight} and |x| <= {self.clip:g} "
                f"can reach {bound} in fixed point, not below R/2 = {self.modulus // 2}; "
                "lower scale_bits, raise modulus_bits or use FixedPointCodec.for_federation"
            )

    @classmethod
    def for_federation(cls, *, num_sites: int, max_weight: int, clip: float, modulus_bits: int = 32) -> "FixedPointCodec":
        """Return the codec with the most fractional bits that still passes :meth:`check_capacity`."""
        num_sites = check_positive_int(num_sites, "num_sites")
        max_weight = check_positive_int(max_weight, "max_weight")
        clip = check_positive_float(clip, "clip")
        headroom = (1 << (modulus_bits - 1)) / (num_sites * max_weight * clip)
        if headroom < 2:
            raise ValueError(f"R = 2^{modulus_bits} is too small for K={num_sites} sites with n_k <= {max_weight} "
                             f"and |x| <= {clip:g}: raise modulus_bits")
        # 2^f * clip * K * max_weight < R/2 gives f < log2(headroom); rounding of clip * 2^f
        # can push the bound over, so step down until the exact check passes.
        scale_bits = int(math.floor(math.log2(headroom)))
        while scale_bits > 0:
            codec = cls(clip=clip, scale_bits=scale_bits, modulus_bits=modulus_bits)
            if num_sites * max_weight * max(codec.max_encoded, 1) < codec.modulus // 2:
                return codec
            scale_bits -= 1
        codec = cls(clip=clip, scale_bits=0, modulus_bits=modulus_bits)
        codec.check_capacity(num_sites, max_weight)
        return codec

    def encode(self, values, *, owner: str = "input") -> np.ndarray:
        """Encode floats of shape (p,) as uint64 residues mod R, clipping to [-clip, clip]."""
        values = np.asarray(values, dtype=float)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"{owner} contains NaN or infinity; only finite values can be encoded")
        outside = int(np.sum(np.abs(values) > self.clip))
        if outside:
            warnings.warn(f"{owner}: {outside} of {values.size} values lie outside [-{self.clip:g}, {self.clip:g}] "
                          "and were clipped, so the secure sum differs from the plain one", FedMedWarning, stacklevel=2)
        scaled = np.rint(np.clip(values, -self.clip, self.clip) * 2**self.scale_bits).astype(np.int64)
        return (scaled % self.modulus).astype(np.uint64)

    def to_signed(self, residues) -> np.ndarray:
        """Map residues in [0, R) to integers in [-R/2, R/2), int64."""
        residues = np.asarray(residues, dtype=np.uint64).astype(np.int64)
        return np.where(residues >= self.modulus // 2, residues - self.modulus, residues)

    def decode(self, residues) -> np.ndarray:
        """Decode residues mod R back to floats: signed value / 2^f."""
        return self.to_signed(residues).astype(float) / 2**self.scale_bits
