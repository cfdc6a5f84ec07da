"""A tamper-evident audit log of federated rounds: a SHA-256 hash chain.

Each entry stores its position, the hash of the previous entry and a payload
(participants, n_k, update norms, clipping and noise settings, epsilon spent
so far, the model's hash). Its own hash is SHA-256 over the canonical JSON
of those three fields, so changing any byte of an entry changes its hash,
and changing that hash breaks the link stored in the next entry. The idea is
the linked timestamping of Haber and Stornetta ("How to time-stamp a digital
document", Journal of Cryptology, 1991).

A chain proves order and integrity relative to its last hash, not
completeness. An attacker who can rewrite the whole log can rehash every entry, and
dropping the newest entries leaves a valid shorter chain. Both are caught
when verification is given a head hash that the sites stored independently
(``expected_head``), which is why every site keeps the head hash after each
round it joins.

Entries carry the round number, never the wall-clock time, so a
deterministic run gives the same hashes on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fedmed_lab.privacy import DPFedAvg, RoundAccountant
from fedmed_lab.rounds import Coordinator, RoundRecord
from fedmed_lab.sites import ModelUpdate

GENESIS_HASH = "0" * 64


def _to_canonical(value: object, path: str) -> object:
    """Convert ``value`` to JSON types: dicts with string keys, lists, str, int, finite float, bool, None."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(float(value)):
            raise ValueError(f"{path} is {value!r}; canonical JSON has no NaN or infinity, so store None or a string")
        return float(value)
    if isinstance(value, Mapping):
        keys = list(value)
        if not all(isinstance(key, str) for key in keys):
            raise TypeError(f"{path} has a non-string key among {keys!r}; canonical JSON needs string keys")
        return {key: _to_canonical(value[key], f"{path}.{key}") for key in keys}
    if isinstance(value, np.ndarray):
        return [_to_canonical(item, f"{path}[{i}]") for i, item in enumerate(value.tolist())]
    if isinstance(value, (list, tuple)):
        return [_to_canonical(item, f"{path}[{i}]") for i, item in enumerate(value)]
    raise TypeError(f"{path} has type {type(value).__name__}, which the audit log cannot serialise")


def canonical_json(value: object) -> str:
    """Serialise ``value`` so equal content always gives the same bytes.

    Keys are sorted, separators carry no spaces, floats use Python's shortest
    round-trip repr, and numpy scalars and arrays become plain numbers and
    lists. Tuples become lists.

    Raises
    ------
    ValueError
        For NaN or infinity anywhere in ``value``.
    TypeError
        For a type JSON cannot express.
    """
    return json.dumps(_to_canonical(value, "value"), sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def sha256_hex(value: object) -> str:
    """Return the SHA-256 hex digest of ``canonical_json(value)``."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def model_hash(parameters: object) -> str:
    """Return the SHA-256 hex digest of a parameter vector's shape and little-endian float64 bytes.

    Two vectors have the same hash only when they are equal bit for bit, so
    a difference in the last digit of one parameter shows.
    """
    array = np.ascontiguousarray(np.asarray(parameters, dtype="<f8"))
    digest = hashlib.sha256(str(array.shape).encode("ascii"))
    digest.update(array.tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class AuditEntry:
    """One link of the chain.

    Attributes
    ----------
    index : int
        Position in the log, from 0.
    previous_hash : str
        ``entry_hash`` of the entry before, or :data:`GENESIS_HASH` for the first.
    payload : mapping
        What the entry records, in JSON types.
    entry_hash : str
        SHA-256 over the canonical JSON of ``index``, ``previous_hash`` and ``payload``.
    """

    index: int
    previous_hash: str
    payload: Mapping[str, object]
    entry_hash: str

    def computed_hash(self) -> str:
        """Recompute the hash from the entry's content."""
        return entry_digest(self.index, self.previous_hash, self.payload)

    def to_dict(self) -> dict[str, object]:
        return {"index": self.index, "previous_hash": self.previous_hash, "payload": dict(self.payload),
                "entry_hash": self.entry_hash}

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> AuditEntry:
        missing = sorted({"index", "previous_hash", "payload", "entry_hash"}.difference(data))
        if missing:
            raise ValueError(f"audit entry is missing the fields {missing}; got fields {sorted(data)}")
        return cls(int(data["index"]), str(data["previous_hash"]), data["payload"], str(data["entry_hash"]))


def entry_digest(index: int, previous_hash: str, payload: Mapping[str, object]) -> str:
    """Return the SHA-256 of one entry's canonical content."""
    return sha256_hex({"index": index, "previous_hash": previous_hash, "payload": payload})


@dataclass(frozen=True)
class Finding:
    """The first problem verification found.

    ``kind`` is one of these:

    - ``"altered"``: the content no longer matches its own hash.
    - ``"relinked"``: the entry was changed and rehashed, so the next
      entry's link no longer matches.
    - ``"removed"``: an index is missing.
    - ``"reordered"``: an entry appears before or after its place.
    - ``"truncated"`` or ``"head mismatch"``: the chain does not end at the
      expected length or head hash.

    ``position`` is where in the given sequence the problem is, and
    ``index`` the entry index concerned.
    """

    kind: str
    position: int
    index: int
    message: str


@dataclass(frozen=True)
class VerificationResult:
    """Outcome of :func:`verify_chain`: ``valid`` and, when not, the first :class:`Finding`."""

    valid: bool
    num_entries: int
    head_hash: str
    finding: Finding | None = None

    def __str__(self) -> str:
        if self.valid:
            return f"valid: {self.num_entries} entries, head {self.head_hash[:12]}"
        return f"invalid: {self.finding.message}"


def _find_misplaced(entries: Sequence[AuditEntry], position: int) -> Finding:
    """Classify an entry whose index is not its position: a removal or a reordering."""
    entry = entries[position]
    later_indices = [e.index for e in entries[position + 1:]]
    if entry.index > position and position in later_indices:
        where = position + 1 + later_indices.index(position)
        return Finding("reordered", position, entry.index,
                       f"entry {entry.index} is at position {position}, before entry {position}, which appears at "
                       f"position {where}: entries were reordered")
    if entry.index > position:
        missing = f"entry {position} is" if entry.index == position + 1 else f"entries {position} to {entry.index - 1} are"
        return Finding("removed", position, position,
                       f"{missing} missing: position {position} holds entry {entry.index}")
    return Finding("reordered", position, entry.index,
                   f"entry {entry.index} appears again or late, at position {position}: entries were reordered "
                   "or duplicated")


def verify_chain(entries: Sequence[AuditEntry], *, expected_head: str | None = None,
                 expected_length: int | None = None) -> VerificationResult:
    """Check every entry and link in order and report the first problem.

    At each position ``p`` three checks run in order. The entry's content
    must hash to its ``entry_hash``, or it was ``altered``. Its index must be
    ``p``, or entries were ``removed`` or ``reordered``. Its
    ``previous_hash`` must equal the hash of the entry at ``p - 1``, or that
    entry was ``relinked`` (changed and rehashed). After the last entry, its
    hash must equal ``expected_head`` and the count ``expected_length``,
    when they are given.

    Returns
    -------
    VerificationResult
        ``valid`` True with the head hash, or False with the first finding.
    """
    previous = GENESIS_HASH
    for position, entry in enumerate(entries):
        if entry.computed_hash() != entry.entry_hash:
            return VerificationResult(False, len(entries), previous, Finding(
                "altered", position, entry.index,
                f"entry {entry.index} at position {position} was altered: its content no longer matches its "
                "stored hash"))
        if entry.index != position:
            return VerificationResult(False, len(entries), previous, _find_misplaced(entries, position))
        if entry.previous_hash != previous:
            return VerificationResult(False, len(entries), previous, Finding(
                "relinked", position - 1, position - 1,
                f"entry {position - 1} was altered and rehashed: its hash no longer matches the link stored in "
                f"entry {position}"))
        previous = entry.entry_hash

    if expected_length is not None and len(entries) < expected_length:
        return VerificationResult(False, len(entries), previous, Finding(
            "truncated", len(entries), len(entries),
            f"the log ends after {len(entries)} entries but {expected_length} were expected: entries "
            f"{len(entries)} to {expected_length - 1} were removed"))
    if expected_head is not None and previous != expected_head:
        return VerificationResult(False, len(entries), previous, Finding(
            "head mismatch", len(entries) - 1, len(entries) - 1,
            f"the chain ends at hash {previous[:12]} but the sites stored {expected_head[:12]}: the log was "
            "rewritten or its newest entries removed"))
    return VerificationResult(True, len(entries), previous)


TAMPERINGS = ("alter", "alter and rehash", "remove", "swap with next", "truncate")


def tamper(entries: Sequence[AuditEntry], kind: str, position: int) -> list[AuditEntry]:
    """Return a copy of ``entries`` with one tampering at ``position``, for teaching and tests.

    ``"alter"`` changes the payload and keeps the stored hash, and ``"alter
    and rehash"`` also recomputes that entry's hash. ``"remove"`` deletes the
    entry, ``"swap with next"`` exchanges it with the following one, and
    ``"truncate"`` drops it and every later entry.

    Raises
    ------
    ValueError
        For an unknown ``kind`` or a ``position`` outside the log (the last
        entry has no next one to swap with).
    """
    if kind not in TAMPERINGS:
        raise ValueError(f"kind must be one of {list(TAMPERINGS)}, got {kind!r}")
    last = len(entries) - (2 if kind == "swap with next" else 1)
    if isinstance(position, bool) or not isinstance(position, numbers.Integral) or not 0 <= position <= last:
        raise ValueError(f"position must be an entry index from 0 to {last} for {kind!r}, got {position!r}")
    copy = list(entries)
    if kind in ("alter", "alter and rehash"):
        changed = dataclasses.replace(copy[position], payload={**copy[position].payload, "tampered": True})
        if kind == "alter and rehash":
            changed = dataclasses.replace(changed, entry_hash=changed.computed_hash())
        copy[position] = changed
    elif kind == "remove":
        del copy[position]
    elif kind == "swap with next":
        copy[position], copy[position + 1] = copy[position + 1], copy[position]
    else:
        del copy[position:]
    return copy


class AuditLog:
    """An append-only sequence of :class:`AuditEntry` objects linked by SHA-256."""

    def __init__(self, entries: Sequence[AuditEntry] = ()):
        self._entries: list[AuditEntry] = list(entries)

    @property
    def entries(self) -> tuple[AuditEntry, ...]:
        return tuple(self._entries)

    @property
    def head_hash(self) -> str:
        """The hash of the newest entry, or :data:`GENESIS_HASH` for an empty log."""
        return self._entries[-1].entry_hash if self._entries else GENESIS_HASH

    def __len__(self) -> int:
        return len(self._entries)

    def append(self, payload: Mapping[str, object]) -> AuditEntry:
        """Add an entry for ``payload`` (converted to JSON types) and return it."""
        payload = json.loads(canonical_json(payload))
        index = len(self._entries)
        entry = AuditEntry(index, self.head_hash, payload, entry_digest(index, self.head_hash, payload))
        self._entries.append(entry)
        return entry

    def verify(self, **kwargs) -> VerificationResult:
        """Verify the chain; keyword arguments go to :func:`verify_chain`."""
        return verify_chain(self._entries, **kwargs)

    def to_jsonl(self) -> str:
        """Return one canonical JSON object per line, oldest first."""
        return "".join(canonical_json(entry.to_dict()) + "\n" for entry in self._entries)

    @classmethod
    def from_jsonl(cls, text: str) -> AuditLog:
        """Read a log written by :meth:`to_jsonl`; blank lines are skipped, nothing is verified."""
        entries = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as error:
                    raise ValueError(f"line {number} of the audit log is not valid JSON: {error}") from error
                if not isinstance(data, dict):
                    raise ValueError(f"line {number} of the audit log is not a JSON object: {line[:40]!r}")
                try:
                    entries.append(AuditEntry.from_dict(data))
                except ValueError as error:
                    raise ValueError(f"line {number}: {error}") from error
        return cls(entries)


EpsilonSource = float | Callable[[int], float] | None


def _agreeing(given: float | None, actual: float, name: str, owner: str) -> float:
    """Return ``actual``, raising ValueError when ``given`` is set and differs from it."""
    if given is not None and float(given) != actual:
        raise ValueError(f"{name}={given!r} differs from {owner} {name}={actual!r}; "
                         f"leave {name} out to record {owner} value")
    return actual


class AuditedCoordinator(Coordinator):
    """A :class:`~fedmed_lab.rounds.Coordinator` that writes one audit entry per round.

    Pass it as ``coordinator=`` to :func:`fedmed_lab.rounds.run_federated`.
    Each entry records the round, status, participants, their n_k, each
    update's L2 distance from the broadcast model, the clipping norm and
    noise multiplier, the sample rate and delta of the accountant, epsilon
    spent so far, the configuration hash and the new model's hash.

    Parameters
    ----------
    initial_parameters : array of shape (p,)
        The starting global model.
    audit_log : AuditLog
        Where entries go.
    config_hash : str
        Hash of the approved training configuration.
    clipping_norm, noise_multiplier : float or None
        The privacy settings, recorded as given (None when not used). When
        ``aggregator=`` is a :class:`fedmed_lab.privacy.DPFedAvg`, its
        settings are recorded and these may be left out.
    epsilon : float, callable or None
        Epsilon spent after each round: a constant, a function of the round
        number such as :class:`fedmed_lab.privacy.RoundAccountant`, or None
        when no DP is used. An accountant's ``sample_rate`` and ``delta`` are
        recorded too, so an auditor can recompute epsilon from the entry.
    admission : callable, optional
        ``admission(site_id, server_round)`` raises when the site may not
        contribute; :class:`fedmed_lab.governance.GovernanceRegistry` provides
        ``check_admission`` for this.
    **coordinator_kwargs
        Passed to :class:`~fedmed_lab.rounds.Coordinator` (``aggregator=``).

    Raises
    ------
    ValueError
        When ``clipping_norm`` or ``noise_multiplier`` differs from the
        DPFedAvg aggregator's, or the accountant's noise multiplier differs
        from the one recorded: the log would then claim a guarantee the run
        does not have.

    Notes
    -----
    ``epsilon_spent`` is ``null`` in an entry when no finite epsilon bound
    holds: the run adds no noise (no ``epsilon`` given), or the accountant
    returns infinity (noise multiplier 0). It is never written as 0, which
    would claim perfect privacy. ``sample_rate`` and ``delta`` are ``null``
    unless ``epsilon`` is a :class:`~fedmed_lab.privacy.RoundAccountant`.
    """

    def __init__(self, initial_parameters: np.ndarray, audit_log: AuditLog, *, config_hash: str,
                 clipping_norm: float | None = None, noise_multiplier: float | None = None,
                 epsilon: EpsilonSource = None, admission: Callable[[str, int], None] | None = None,
                 **coordinator_kwargs):
        super().__init__(initial_parameters, **coordinator_kwargs)
        self.audit_log = audit_log
        self.config_hash = config_hash
        if isinstance(self._aggregator, DPFedAvg):
            clipping_norm = _agreeing(clipping_norm, self._aggregator.clipping_norm, "clipping_norm",
                                      "the DPFedAvg aggregator's")
            noise_multiplier = _agreeing(noise_multiplier, self._aggregator.noise_multiplier, "noise_multiplier",
                                         "the DPFedAvg aggregator's")
        self.sample_rate: float | None = None
        self.delta: float | None = None
        if isinstance(epsilon, RoundAccountant):
            noise_multiplier = _agreeing(noise_multiplier, epsilon.noise_multiplier, "noise_multiplier",
                                         "the accountant's")
            self.sample_rate, self.delta = epsilon.sample_rate, epsilon.delta
        self.clipping_norm = clipping_norm
        self.noise_multiplier = noise_multiplier
        self._epsilon = epsilon
        self._admission = admission
        self._server_round = 1
        self._update_norms: dict[str, float] = {}

    def receive_update(self, update: ModelUpdate) -> None:
        """Check admission for the current round, then accept the update and record its norm."""
        if self._admission is not None and isinstance(update, ModelUpdate):
            self._admission(update.site_id, self._server_round)
        super().receive_update(update)
        self._update_norms[update.site_id] = float(np.linalg.norm(update.parameters - self._parameters))

    def epsilon_spent(self, server_round: int) -> float | None:
        """Return epsilon spent after ``server_round``, or None when no finite bound holds."""
        if self._epsilon is None:
            return None
        value = float(self._epsilon(server_round) if callable(self._epsilon) else self._epsilon)
        return value if math.isfinite(value) else None

    def finish_round(self, server_round: int, bytes_down: int) -> RoundRecord:
        """Aggregate as the base coordinator does, then append the round's audit entry."""
        record = super().finish_round(server_round, bytes_down)
        norms, self._update_norms = self._update_norms, {}
        self.audit_log.append({
            "event": "round",
            "server_round": server_round,
            "status": record.status,
            "participants": list(record.participants),
            "num_examples": list(record.num_examples),
            "update_norms": [round(norms[site], 12) for site in record.participants],
            "clipping_norm": self.clipping_norm,
            "noise_multiplier": self.noise_multiplier,
            "sample_rate": self.sample_rate,
            "delta": self.delta,
            "epsilon_spent": self.epsilon_spent(server_round),
            "config_hash": self.config_hash,
            "model_hash": model_hash(record.parameters),
        })
        self._server_round = server_round + 1
        return record
