"""Secure aggregation by pairwise and self masks, simulated with real cryptography.

The protocol is the double-masking scheme of Bonawitz et al., "Practical
Secure Aggregation for Privacy-Preserving Machine Learning", CCS 2017 (IACR
ePrint 2017/281), for an honest-but-curious coordinator, without the
consistency-check round and without signatures. Each site u sends

    y_u = n_u * enc(x_u) + PRG(b_u) + sum_{v in N(u), u < v} PRG(s_uv) - sum_{v in N(u), u > v} PRG(s_uv)   (mod R)

with n_u appended as one more coordinate. The pairwise masks PRG(s_uv)
cancel in the sum. The coordinator removes the self masks PRG(b_u) of the
sites whose inputs it received, and the pairwise masks of sites that
dropped before sending, using Shamir shares that the surviving sites
return. Honest sites reveal shares of b_u or of the mask key s_u for a
given site, never both, so the coordinator cannot unmask one site's input.

The sparse variant follows SecAgg+ (Bell et al., "Secure Single-Server
Aggregation with (Poly)Logarithmic Overhead", CCS 2020, IACR ePrint
2020/704): sites mask and share only with about log2 K neighbours on a
random Harary graph, so cost per site grows with log K instead of K.

Rounds, as the methods below name them:

0. ``advertise_keys``: each site publishes two X25519 public keys, c_u for
   encrypting shares and s_u for masks.
1. ``share_keys``: each site Shamir-splits b_u and the private s_u among its
   neighbours and itself, encrypts each neighbour's shares under a key
   agreed from c, and hands the ciphertexts to the coordinator to relay.
2. ``masked_input``: each site sends y_u.
3. ``unmasking``: each surviving site returns its shares of b_v for sites v
   whose input arrived and of s_v for neighbours v that dropped before
   sending. The coordinator reconstructs these secrets and removes the masks.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from fedmed_lab import FedMedWarning, logger
from fedmed_lab._checks import check_positive_int, check_site_sizes
from fedmed_lab.secagg_crypto import (
    SECRET_LIMBS,
    FixedPointCodec,
    KeySource,
    agree_key,
    bytes_to_field_elements,
    field_elements_to_bytes,
    generate_private_key,
    mask_stream,
    private_bytes,
    public_bytes,
    shamir_reconstruct,
    shamir_split,
)
from fedmed_lab.secagg_graphs import (  # noqa: F401 - re-exported as part of this module's API
    check_threshold,
    complete_graph,
    harary_degree,
    local_threshold,
    random_harary_graph,
)

SHARE_BYTES = 4 * SECRET_LIMBS
"""Bytes of one share of a 32-byte secret on the wire: 16 field elements of 4 bytes."""

ID_BYTES = 4
NONCE_BYTES = 12
TAG_BYTES = 16


class SecureAggregationAborted(RuntimeError):
    """A round stopped because fewer than t sites took part; no aggregate is released."""


# --- messages and cost ledger ----------------------------------------------------------------


@dataclass(frozen=True)
class AdvertisedKeys:
    """Round 0 message: a site's two public keys (32 bytes each)."""

    site: int
    encryption_public: bytes
    mask_public: bytes


@dataclass
class CostLedger:
    """Bytes and CPU seconds per protocol round, for sites (summed over sites) and the coordinator.

    Seconds are ``time.process_time`` of this single-threaded simulation, so
    other processes on a shared machine do not inflate them.
    """

    bytes_up: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    bytes_down: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    site_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    coordinator_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes_up.values()) + sum(self.bytes_down.values())

    @property
    def total_site_seconds(self) -> float:
        return sum(self.site_seconds.values())

    @property
    def total_coordinator_seconds(self) -> float:
        return sum(self.coordinator_seconds.values())


def _pair_info(purpose: bytes, u: int, v: int) -> bytes:
    low, high = min(u, v), max(u, v)
    return purpose + b" %d %d" % (low, high)


def _signed_pair_mask(mask_key: bytes, own: int, other: int, length: int, codec: FixedPointCodec) -> np.ndarray:
    """Return +PRG(s_uv) when own < other and -PRG(s_uv) mod R otherwise, so the pair cancels."""
    mask = mask_stream(mask_key, length, modulus_bits=codec.modulus_bits)
    if own < other:
        return mask
    return (np.uint64(codec.modulus) - mask) % np.uint64(codec.modulus)


# --- the site ------------------------------------------------------------------------------


class SecAggSite:
    """One hospital in the protocol; its update, n_k and private keys never leave it in the clear.

    Parameters
    ----------
    index : int
        Position u in [0, K); decides the sign of pairwise masks and the Shamir x-coordinate u + 1.
    site_id : str
        Name used in messages and errors.
    update : array of shape (p,)
        The model update x_u to aggregate.
    num_examples : int
        n_u, the weight of this site.
    codec : FixedPointCodec
    source : KeySource
        Key material: the OS, or a seed for reproducible teaching runs.
    """

    def __init__(self, index: int, site_id: str, update, num_examples: int, codec: FixedPointCodec,
                 source: KeySource):
        self.index = index
        self.site_id = site_id
        self.num_examples = check_positive_int(num_examples, f"num_examples of site {site_id!r}")
        self._update = np.array(update, dtype=float, copy=True)
        self._codec = codec
        self._source = source
        self._encryption_key = generate_private_key(source, f"site {index} encryption key")
        self._mask_key = generate_private_key(source, f"site {index} mask key")
        self._self_mask_seed = source.draw(f"site {index} self-mask seed", 32)
        self._neighbour_keys: dict[int, AdvertisedKeys] = {}
        self._held_shares: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def advertise_keys(self) -> AdvertisedKeys:
        """Round 0: publish the two public keys."""
        return AdvertisedKeys(self.index, public_bytes(self._encryption_key), public_bytes(self._mask_key))

    def _channel(self, other: int) -> ChaCha20Poly1305:
        peer = self._neighbour_keys[other].encryption_public
        return ChaCha20Poly1305(agree_key(self._encryption_key, peer, info=_pair_info(b"secagg share channel", self.index, other)))

    def share_keys(self, neighbour_keys: Mapping[int, AdvertisedKeys], threshold: int) -> dict[int, bytes]:
        """Round 1: Shamir-split b_u and the private mask key among neighbours and self.

        Returns one ciphertext per neighbour (ChaCha20-Poly1305 under a key
        agreed from the encryption keys); the share for itself stays local.
        """
        self._neighbour_keys = dict(neighbour_keys)
        holders = sorted([self.index, *self._neighbour_keys])
        x_coordinates = [h + 1 for h in holders]
        seed_shares = shamir_split(bytes_to_field_elements(self._self_mask_seed), threshold=threshold,
                                   x_coordinates=x_coordinates, source=self._source,
                                   label=f"site {self.index} self-mask seed coefficients")
        key_shares = shamir_split(bytes_to_field_elements(private_bytes(self._mask_key)), threshold=threshold,
                                  x_coordinates=x_coordinates, source=self._source,
                                  label=f"site {self.index} mask key coefficients")

        ciphertexts = {}
        for row, holder in enumerate(holders):
            if holder == self.index:
                self._held_shares[self.index] = (seed_shares[row], key_shares[row])
                continue
            plaintext = seed_shares[row].astype("<u4").tobytes() + key_shares[row].astype("<u4").tobytes()
            nonce = self._source.draw(f"site {self.index} nonce for {holder}", NONCE_BYTES)
            associated = b"%d->%d" % (self.index, holder)
            ciphertexts[holder] = nonce + self._channel(holder).encrypt(nonce, plaintext, associated)
        return ciphertexts

    def receive_shares(self, ciphertexts: Mapping[int, bytes]) -> None:
        """Round 1, second half: decrypt the shares the neighbours sent through the coordinator."""
        for sender, message in ciphertexts.items():
            nonce, body = message[:NONCE_BYTES], message[NONCE_BYTES:]
            plaintext = self._channel(sender).decrypt(nonce, body, b"%d->%d" % (sender, self.index))
            limbs = np.frombuffer(plaintext, dtype="<u4").astype(np.uint64)
            self._held_shares[sender] = (limbs[:SECRET_LIMBS], limbs[SECRET_LIMBS:])

    def masked_input(self) -> np.ndarray:
        """Round 2: return y_u, the weighted encoded update and n_u, masked; uint64 of shape (p + 1,)."""
        codec = self._codec
        R = np.uint64(codec.modulus)
        weighted = (codec.encode(self._update, owner=f"site {self.site_id!r}") * np.uint64(self.num_examples)) % R
        payload = np.append(weighted, np.uint64(self.num_examples % codec.modulus))

        # Self mask PRG(b_u), then one signed mask per neighbour.
        masked = (payload + mask_stream(self._self_mask_seed, payload.size, modulus_bits=codec.modulus_bits)) % R
        for other, keys in self._neighbour_keys.items():
            pair_key = agree_key(self._mask_key, keys.mask_public, info=_pair_info(b"secagg pair mask", self.index, other))
            masked = (masked + _signed_pair_mask(pair_key, self.index, other, payload.size, codec)) % R
        return masked

    def unmasking(self, uploaded: frozenset[int], dropped: frozenset[int]) -> dict[tuple[int, str], np.ndarray]:
        """Round 3: return held shares of b_v for v in ``uploaded`` and of s_v for v in ``dropped``.

        Raises
        ------
        ValueError
            If a site appears in both sets: revealing both of its secrets would unmask its input.
        """
        both = uploaded & dropped
        if both:
            raise ValueError(f"site {self.site_id!r} rejects the unmasking request: sites {sorted(both)} are listed "
                             "both as sent and as dropped, and revealing both of their secrets would expose their inputs")
        response = {}
        for owner, (seed_share, key_share) in self._held_shares.items():
            if owner in uploaded:
                response[(owner, "self-mask seed")] = seed_share
            elif owner in dropped:
                response[(owner, "mask key")] = key_share
        return response


# --- the coordinator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SecureAggregationResult:
    """Outcome of one secure round: the coordinator's aggregate and view, and the round's cost.

    Attributes
    ----------
    weighted_sum : ndarray of shape (p,)
        sum_k n_k x_k over the sites whose masked input arrived, to the encoding precision.
    total_weight : int
        N = sum_k n_k over the same sites.
    included : tuple of str
        Sites whose inputs are in the sum.
    dropped_before_upload, dropped_after_upload : tuple of str
    masked_inputs : dict of str to ndarray of uint64
        The coordinator's view: each site's masked vector y_u, shape (p + 1,).
    reconstructed : dict of str to str
        For each site whose secret was rebuilt: ``"self-mask seed"`` or ``"mask key"``.
    cost : CostLedger
    resolution : float
        2^-f of the codec: each n_k x_k coordinate was rounded to a multiple of it.
    """

    weighted_sum: np.ndarray
    total_weight: int
    included: tuple[str, ...]
    dropped_before_upload: tuple[str, ...]
    dropped_after_upload: tuple[str, ...]
    masked_inputs: dict[str, np.ndarray]
    reconstructed: dict[str, str]
    cost: CostLedger
    resolution: float

    @property
    def weighted_average(self) -> np.ndarray:
        """sum_k n_k x_k / N, the FedAvg aggregate of the included sites."""
        return self.weighted_sum / self.total_weight


class SecAggCoordinator:
    """The honest-but-curious coordinator: routes messages, checks them and unmasks the sum.

    Parameters
    ----------
    site_ids : sequence of str
        The K sites, in index order.
    threshold : int
        t: a round needs at least t sites at every step, and any t shares rebuild a secret.
    vector_length : int
        p, the length of each update.
    codec : FixedPointCodec
    graph : list of frozenset of int, optional
        Neighbours of each site (default: the complete graph).
    """

    def __init__(self, site_ids: Sequence[str], *, threshold: int, vector_length: int, codec: FixedPointCodec,
                 graph: list[frozenset[int]] | None = None):
        self.site_ids = list(site_ids)
        self.num_sites = len(self.site_ids)
        self.threshold = check_threshold(threshold, self.num_sites)
        self.vector_length = check_positive_int(vector_length, "vector_length")
        self.codec = codec
        self.graph = graph if graph is not None else complete_graph(self.num_sites)
        if len(self.graph) != self.num_sites:
            raise ValueError(f"graph has {len(self.graph)} neighbourhoods for K={self.num_sites} sites")
        self.keys: dict[int, AdvertisedKeys] = {}
        self.masked: dict[int, np.ndarray] = {}

    def holders(self, site: int) -> list[int]:
        """Return the sites holding shares of ``site``'s secrets: its neighbours and itself."""
        return sorted(self.graph[site] | {site})

    def site_threshold(self, site: int) -> int:
        return local_threshold(self.threshold, self.num_sites, len(self.holders(site)))

    def require_quorum(self, responding: int, step: str) -> None:
        """Abort the round when fewer than t sites responded at ``step``."""
        if responding < self.threshold:
            raise SecureAggregationAborted(
                f"round aborted at the {step} step: {responding} of {self.num_sites} sites responded, fewer than "
                f"the threshold t={self.threshold}; no aggregate is released"
            )

    def neighbour_keys(self, site: int) -> dict[int, AdvertisedKeys]:
        return {v: self.keys[v] for v in self.graph[site] if v in self.keys}

    def receive_masked_input(self, site: int, masked: object) -> None:
        """Check and store y_u: a 1-D unsigned integer array of length p + 1 with entries below R.

        Raises
        ------
        ValueError
            Naming the site, when the vector is malformed or has the wrong length.
        """
        name = self.site_ids[site]
        expected = self.vector_length + 1
        if not isinstance(masked, np.ndarray):
            raise ValueError(f"masked input from site {name!r} is a {type(masked).__name__}, not a numpy array; rejected")
        if masked.ndim != 1 or masked.shape[0] != expected:
            raise ValueError(f"masked input from site {name!r} has shape {masked.shape}, expected ({expected},) "
                             f"(p = {self.vector_length} values and n_k); rejected")
        if not np.issubdtype(masked.dtype, np.unsignedinteger):
            raise ValueError(f"masked input from site {name!r} has dtype {masked.dtype}, expected unsigned integers "
                             f"mod R = 2^{self.codec.modulus_bits}; rejected")
        if np.any(masked.astype(np.uint64) >= np.uint64(self.codec.modulus)):
            raise ValueError(f"masked input from site {name!r} has entries >= R = 2^{self.codec.modulus_bits}; rejected")
        self.masked[site] = masked.astype(np.uint64)

    def unmask(self, responses: Mapping[int, Mapping[tuple[int, str], np.ndarray]],
               dropped_before: frozenset[int]) -> tuple[np.ndarray, dict[int, str]]:
        """Rebuild the needed secrets from the responders' shares and return the unmasked sum mod R.

        Raises
        ------
        SecureAggregationAborted
            If a needed secret has fewer surviving holders than its threshold.
        """
        codec = self.codec
        R = np.uint64(codec.modulus)
        length = self.vector_length + 1
        total = np.zeros(length, dtype=np.uint64)
        for vector in self.masked.values():
            total = (total + vector) % R

        needed = {u: "self-mask seed" for u in self.masked}
        needed.update({v: "mask key" for v in dropped_before if any(u in self.masked for u in self.graph[v])})
        for owner, kind in sorted(needed.items()):
            holders = [h for h in self.holders(owner) if h in responses and (owner, kind) in responses[h]]
            t_owner = self.site_threshold(owner)
            if len(holders) < t_owner:
                raise SecureAggregationAborted(
                    f"round aborted at the unmasking step: {len(holders)} holders of site "
                    f"{self.site_ids[owner]!r}'s {kind} responded, fewer than its threshold t={t_owner}; "
                    "no aggregate is released")
            chosen = holders[:t_owner]
            limbs = shamir_reconstruct([h + 1 for h in chosen], np.array([responses[h][(owner, kind)] for h in chosen]))
            secret = field_elements_to_bytes(limbs)

            if kind == "self-mask seed":
                total = (total + R - mask_stream(secret, length, modulus_bits=codec.modulus_bits)) % R
            else:
                # Recompute the dropped site's pairwise masks that its surviving neighbours added.
                dropped_key = X25519PrivateKey.from_private_bytes(secret)
                for u in sorted(self.graph[owner]):
                    if u in self.masked:
                        pair_key = agree_key(dropped_key, self.keys[u].mask_public,
                                             info=_pair_info(b"secagg pair mask", u, owner))
                        total = (total + R - _signed_pair_mask(pair_key, u, owner, length, codec)) % R
        return total, needed


# --- one round, end to end -----------------------------------------------------------------


def _site_indices(names: Sequence[str], site_ids: Sequence[str], parameter: str) -> frozenset[int]:
    position = {name: i for i, name in enumerate(site_ids)}
    unknown = [name for name in names if name not in position]
    if unknown:
        raise ValueError(f"{parameter} names unknown sites {unknown}; known sites are {list(site_ids)}")
    return frozenset(position[name] for name in names)


def run_secure_aggregation(vectors: Sequence[np.ndarray], num_examples: Sequence[int], *, threshold: int,
                           codec: FixedPointCodec, site_ids: Sequence[str] | None = None,
                           graph: list[frozenset[int]] | None = None,
                           dropped_before_upload: Sequence[str] = (), dropped_after_upload: Sequence[str] = (),
                           key_seed: bytes | None = None) -> SecureAggregationResult:
    """Run one round of secure aggregation and return the unmasked weighted sum with its cost.

    Parameters
    ----------
    vectors : sequence of K arrays of shape (p,)
        The sites' updates x_k, each inside [-codec.clip, codec.clip] (larger values are clipped, with a warning).
    num_examples : sequence of K int
        n_k; the largest is used as the public bound on n_k in the overflow check.
    threshold : int
        t, 1 <= t <= K.
    codec : FixedPointCodec
        Fixed-point encoding; its capacity is checked for K sites and max n_k.
    site_ids : sequence of str, optional
        Names (default ``site_0`` ...).
    graph : list of frozenset of int, optional
        Neighbourhoods (default complete; see :func:`random_harary_graph`).
    dropped_before_upload : sequence of str
        Sites that go silent after sharing their keys, before sending y_u:
        their input is missing and their pairwise masks are removed with their rebuilt mask key.
    dropped_after_upload : sequence of str
        Sites that send y_u and then go silent: their input counts and their
        self mask is removed with their rebuilt self-mask seed.
    key_seed : bytes, optional
        Seed for all key material (teaching and tests only); default: the OS.

    Returns
    -------
    SecureAggregationResult

    Raises
    ------
    ValueError
        For t > K, mismatched lengths, unknown or doubly listed dropped sites, or a codec that could wrap.
    SecureAggregationAborted
        When fewer than t sites send their masked input or take part in unmasking.

    Warns
    -----
    FedMedWarning
        When a single site's input is in the sum, which then reveals that input.
    """
    num_sites = len(vectors)
    sizes = check_site_sizes(num_examples, "num_examples")
    if len(sizes) != num_sites:
        raise ValueError(f"got {num_sites} vectors but {len(sizes)} site sizes; pass one n_k per vector")
    threshold = check_threshold(threshold, num_sites)
    site_ids = list(site_ids) if site_ids is not None else [f"site_{k}" for k in range(num_sites)]
    if len(site_ids) != num_sites or len(set(site_ids)) != num_sites:
        raise ValueError(f"site_ids must be {num_sites} distinct names, got {site_ids}")
    lengths = {np.shape(v) for v in vectors}
    if len(lengths) != 1 or len(next(iter(lengths))) != 1:
        raise ValueError(f"every update must be a 1-D vector of the same length, got shapes {sorted(lengths)}")
    vector_length = next(iter(lengths))[0]
    codec.check_capacity(num_sites, int(sizes.max()))
    before = _site_indices(dropped_before_upload, site_ids, "dropped_before_upload")
    after = _site_indices(dropped_after_upload, site_ids, "dropped_after_upload")
    if before & after:
        raise ValueError(f"sites {sorted(site_ids[i] for i in before & after)} are listed as dropping both before "
                         "and after upload; list each dropped site once")

    source = KeySource(key_seed)
    ledger = CostLedger()
    element_bytes = math.ceil(codec.modulus_bits / 8)
    coordinator = SecAggCoordinator(site_ids, threshold=threshold, vector_length=vector_length, codec=codec, graph=graph)
    sites = [SecAggSite(k, site_ids[k], vectors[k], int(sizes[k]), codec, source) for k in range(num_sites)]

    # Round 0: every site advertises two public keys; each learns its neighbours' keys.
    for site in sites:
        start = time.process_time()
        coordinator.keys[site.index] = site.advertise_keys()
        ledger.site_seconds["advertise_keys"] += time.process_time() - start
        ledger.bytes_up["advertise_keys"] += 2 * 32 + ID_BYTES
        ledger.bytes_down["advertise_keys"] += len(coordinator.graph[site.index]) * (2 * 32 + ID_BYTES)

    # Round 1: shares of b_u and s_u, encrypted per neighbour, relayed by the coordinator.
    mailbox: dict[int, dict[int, bytes]] = defaultdict(dict)
    for site in sites:
        start = time.process_time()
        ciphertexts = site.share_keys(coordinator.neighbour_keys(site.index), coordinator.site_threshold(site.index))
        ledger.site_seconds["share_keys"] += time.process_time() - start
        for recipient, message in ciphertexts.items():
            mailbox[recipient][site.index] = message
            ledger.bytes_up["share_keys"] += len(message) + 2 * ID_BYTES
            ledger.bytes_down["share_keys"] += len(message) + 2 * ID_BYTES
    for site in sites:
        start = time.process_time()
        site.receive_shares(mailbox[site.index])
        ledger.site_seconds["share_keys"] += time.process_time() - start

    # Round 2: masked inputs from every site that has not dropped yet.
    for site in sites:
        if site.index in before:
            continue
        start = time.process_time()
        masked = site.masked_input()
        ledger.site_seconds["masked_input"] += time.process_time() - start
        start = time.process_time()
        coordinator.receive_masked_input(site.index, masked)
        ledger.coordinator_seconds["masked_input"] += time.process_time() - start
        ledger.bytes_up["masked_input"] += masked.size * element_bytes + ID_BYTES
    coordinator.require_quorum(len(coordinator.masked), "masked-input")

    # Round 3: the survivors return shares; the coordinator rebuilds secrets and removes masks.
    uploaded = frozenset(coordinator.masked)
    responders = [site for site in sites if site.index not in before | after]
    coordinator.require_quorum(len(responders), "unmasking")
    responses = {}
    for site in responders:
        neighbourhood = coordinator.graph[site.index] | {site.index}
        ledger.bytes_down["unmasking"] += len(neighbourhood) * ID_BYTES
        start = time.process_time()
        responses[site.index] = site.unmasking(uploaded & neighbourhood, before & neighbourhood)
        ledger.site_seconds["unmasking"] += time.process_time() - start
        ledger.bytes_up["unmasking"] += len(responses[site.index]) * (SHARE_BYTES + ID_BYTES)
    start = time.process_time()
    total, needed = coordinator.unmask(responses, before)
    ledger.coordinator_seconds["unmasking"] += time.process_time() - start

    signed = codec.to_signed(total)
    if len(uploaded) == 1:
        warnings.warn(f"only site {site_ids[next(iter(uploaded))]!r} is in the sum, so the released aggregate is its "
                      "own weighted update; use t >= 2", FedMedWarning, stacklevel=2)
    logger.info("secure aggregation: %d of %d sites included, %d secrets rebuilt", len(uploaded), num_sites, len(needed))
    return SecureAggregationResult(
        weighted_sum=signed[:-1].astype(float) * codec.resolution,
        total_weight=int(signed[-1]),
        included=tuple(site_ids[u] for u in sorted(uploaded)),
        dropped_before_upload=tuple(site_ids[u] for u in sorted(before)),
        dropped_after_upload=tuple(site_ids[u] for u in sorted(after)),
        masked_inputs={site_ids[u]: coordinator.masked[u] for u in sorted(uploaded)},
        reconstructed={site_ids[u]: kind for u, kind in sorted(needed.items())},
        cost=ledger,
        resolution=codec.resolution,
    )


def secure_fedavg(updates: Sequence, *, threshold: int, codec: FixedPointCodec, **options) -> SecureAggregationResult:
    """Aggregate :class:`~fedmed_lab.sites.ModelUpdate` objects securely; ``options`` go to :func:`run_secure_aggregation`.

    ``result.weighted_average`` equals :func:`fedmed_lab.aggregation.fedavg`
    over the included sites up to the encoding resolution.
    """
    return run_secure_aggregation([u.parameters for u in updates], [u.num_examples for u in updates],
                                  threshold=threshold, codec=codec, site_ids=[u.site_id for u in updates], **options)


class SecureAggregator:
    """An aggregator for :class:`fedmed_lab.rounds.Coordinator` that runs one secure round per call.

    Each call treats the responding sites as the K of the round, so a round
    with fewer than ``threshold`` responding sites aborts. The codec's
    capacity is checked against each round's K and largest n_k.

    Parameters
    ----------
    threshold : int
        t, at least 1.
    codec : FixedPointCodec
    key_seed : bytes, optional
        Seed for the key material (teaching and tests only). Every round then
        reuses the same keys, which a deployment must never do.

    Attributes
    ----------
    last_result : SecureAggregationResult or None
        The most recent round, for its cost and the coordinator's view.
    """

    def __init__(self, *, threshold: int, codec: FixedPointCodec, key_seed: bytes | None = None):
        self.threshold = check_positive_int(threshold, "threshold")
        self.codec = codec
        self.key_seed = key_seed
        self.last_result: SecureAggregationResult | None = None

    def __call__(self, updates: Sequence) -> np.ndarray:
        if len(updates) < self.threshold:
            raise SecureAggregationAborted(
                f"round aborted: {len(updates)} sites responded, fewer than the threshold t={self.threshold}; "
                "no aggregate is released")
        self.last_result = secure_fedavg(updates, threshold=self.threshold, codec=self.codec, key_seed=self.key_seed)
        return self.last_result.weighted_average
