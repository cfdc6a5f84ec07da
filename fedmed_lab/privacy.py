"""Differential privacy for federated averaging: clipping, Gaussian noise and an RDP accountant.

Clipping and noise act on whole site updates (site-level privacy): each site's
update delta is clipped to L2 norm ``C`` and Gaussian noise of standard
deviation ``sigma * C`` is added to the sum, as in DP-FedAvg (McMahan et al.,
"Learning Differentially Private Recurrent Language Models", ICLR 2018,
arXiv:1710.06963). Three places to add the noise are modelled: a trusted
coordinator (central DP), each site on its own (local DP), and each site a
share of variance ``sigma^2 C^2 / K`` under secure aggregation (distributed DP).

The accountant tracks Renyi differential privacy (Mironov, "Renyi
Differential Privacy", CSF 2017, arXiv:1702.07476):

- the Gaussian mechanism with L2 sensitivity 1 and noise multiplier sigma
  has RDP ``alpha / (2 sigma^2)`` at order alpha;
- the Poisson-subsampled Gaussian mechanism (each site included with
  probability q) follows Mironov, Talwar and Zhang, "Renyi Differential
  Privacy of the Sampled Gaussian Mechanism", 2019, arXiv:1908.10530:
  a finite binomial sum for integer orders (their Section 3.2) and two
  infinite series split at ``z0 = sigma^2 log(1/q - 1) + 1/2`` for
  fractional orders (their Section 3.3);
- RDP composes additively over rounds;
- RDP converts to (epsilon, delta) with the bound
  ``epsilon = rdp + log(1 - 1/alpha) - (log(delta) + log(alpha)) / (alpha - 1)``
  (Canonne, Kamath and Steinke, "The Discrete Gaussian for Differential
  Privacy", 2020, arXiv:2004.00010, Proposition 12), minimised over orders.

Every approximation rounds toward a larger epsilon: a series that does not
converge counts as infinite RDP at that order, and a bound that cannot be
computed at any order is infinite with a :class:`~fedmed_lab.FedMedWarning`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from fedmed_lab import FedMedWarning
from fedmed_lab._checks import check_non_negative_int, check_rng
from fedmed_lab.rounds import run_federated
from fedmed_lab.sites import ModelUpdate

# Orders alpha at which RDP is tracked: dense near 1, where small epsilons are
# decided, and sparse up to 1024, where large noise multipliers are decided.
DEFAULT_ORDERS: tuple[float, ...] = tuple(
    [round(1.0 + step / 10.0, 1) for step in range(1, 100)]
    + list(range(11, 65))
    + [80, 96, 128, 160, 192, 256, 384, 512, 768, 1024]
)

# A series term this far (in natural log) below the running total no longer
# changes the result at double precision.
_LOG_TOLERANCE = 30.0
_MAX_SERIES_TERMS = 2**20


# ---------------------------------------------------------------------------
# Parameter checks: one per constraint, naming the value received.
# ---------------------------------------------------------------------------

def _check_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def check_noise_multiplier(noise_multiplier: object) -> float:
    """Return ``noise_multiplier`` as a float, raising ValueError unless it is finite and >= 0."""
    value = _check_real(noise_multiplier, "noise_multiplier")
    if not math.isfinite(value) or value < 0.0:
        raise ValueError(
            f"noise_multiplier must be a finite number >= 0 (noise std divided by the clipping norm), "
            f"got {noise_multiplier!r}"
        )
    return value


def check_clipping_norm(clipping_norm: object) -> float:
    """Return ``clipping_norm`` as a float, raising ValueError unless it is finite and > 0."""
    value = _check_real(clipping_norm, "clipping_norm")
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"clipping_norm must be a finite number > 0, got {clipping_norm!r}")
    return value


def check_sample_rate(sample_rate: object) -> float:
    """Return ``sample_rate`` as a float, raising ValueError unless it is in [0, 1]."""
    value = _check_real(sample_rate, "sample_rate")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"sample_rate must be a probability in [0, 1], got {sample_rate!r}")
    return value


def check_delta(delta: object) -> float:
    """Return ``delta`` as a float, raising ValueError unless 0 < delta < 1."""
    value = _check_real(delta, "delta")
    if not 0.0 < value < 1.0:
        raise ValueError(
            f"delta must be in the open interval (0, 1), got {delta!r}; "
            "a common choice is below 1 / (number of sites)"
        )
    return value


def _check_orders(orders: Sequence[float] | None) -> np.ndarray:
    array = np.asarray(DEFAULT_ORDERS if orders is None else orders, dtype=float)
    if array.ndim != 1 or array.size == 0 or not np.all(array > 1.0) or not np.all(np.isfinite(array)):
        raise ValueError(f"orders must be a non-empty 1-D sequence of finite numbers > 1, got {orders!r}")
    return array


# ---------------------------------------------------------------------------
# Clipping and noise.
# ---------------------------------------------------------------------------

def clip_update(update: np.ndarray, *, clipping_norm: float) -> np.ndarray:
    """Scale ``update`` so that its L2 norm is at most ``clipping_norm``.

    The update is multiplied by ``1 / max(1, ||update|| / C)``, so an update
    already inside the ball, including the zero vector, is returned unchanged
    and no division by a zero norm can happen.

    Parameters
    ----------
    update : array of shape (p,)
        One site's update (new parameters minus the broadcast ones).
    clipping_norm : float
        C, the L2 bound, > 0.

    Returns
    -------
    ndarray of shape (p,)
        A new array; ``update`` is not modified.
    """
    clipping_norm = check_clipping_norm(clipping_norm)
    vector = np.array(update, dtype=float, copy=True)
    if vector.ndim != 1:
        raise ValueError(f"update must be a 1-D vector, got shape {vector.shape}")
    norm = float(np.linalg.norm(vector))
    return vector / max(1.0, norm / clipping_norm)


def gaussian_noise(shape: int | tuple[int, ...], *, noise_multiplier: float, clipping_norm: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Draw Gaussian noise of standard deviation ``noise_multiplier * clipping_norm``."""
    std = check_noise_multiplier(noise_multiplier) * check_clipping_norm(clipping_norm)
    return check_rng(rng).normal(0.0, std, size=shape)


def _clipped_stack(updates: Sequence[np.ndarray], clipping_norm: float) -> np.ndarray:
    if len(updates) == 0:
        raise ValueError("updates is empty; a noisy sum needs at least one site update")
    return np.array([clip_update(u, clipping_norm=clipping_norm) for u in updates])


def central_dp_sum(updates: Sequence[np.ndarray], *, clipping_norm: float, noise_multiplier: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Clip each update, sum, and add one draw of noise with std ``sigma * C`` (a trusted aggregator).

    Returns an array of shape (p,). The coordinator sees every raw update.
    """
    clipped = _clipped_stack(updates, clipping_norm)
    noise = gaussian_noise(clipped.shape[1], noise_multiplier=noise_multiplier, clipping_norm=clipping_norm, rng=rng)
    return clipped.sum(axis=0) + noise


def local_dp_updates(updates: Sequence[np.ndarray], *, clipping_norm: float, noise_multiplier: float,
                     rng: np.random.Generator) -> np.ndarray:
    """Clip each update and let each site add its own noise of std ``sigma * C`` (local DP).

    Returns an array of shape (K, p): what each site sends. Each row alone is
    (epsilon, delta)-private, so the coordinator need not be trusted, but the
    sum carries K times the noise variance of :func:`central_dp_sum`.
    """
    clipped = _clipped_stack(updates, clipping_norm)
    return clipped + gaussian_noise(clipped.shape, noise_multiplier=noise_multiplier,
                                    clipping_norm=clipping_norm, rng=rng)


def distributed_dp_updates(updates: Sequence[np.ndarray], *, clipping_norm: float, noise_multiplier: float,
                           rng: np.random.Generator) -> np.ndarray:
    """Clip each update and let each of the K sites add noise of variance ``sigma^2 C^2 / K``.

    Returns an array of shape (K, p). Summed under secure aggregation, the
    noise variances add to ``sigma^2 C^2``, the same as :func:`central_dp_sum`,
    while the coordinator only ever sees the sum. A single row is protected
    only by ``sigma / sqrt(K)``, so the rows must never be revealed one by one.
    """
    clipped = _clipped_stack(updates, clipping_norm)
    share = check_noise_multiplier(noise_multiplier) / math.sqrt(clipped.shape[0])
    return clipped + gaussian_noise(clipped.shape, noise_multiplier=share, clipping_norm=clipping_norm, rng=rng)


def noise_std_of_mean(*, mode: str, num_sites: int, noise_multiplier: float, clipping_norm: float) -> float:
    """Return the noise standard deviation per coordinate of the average of K clipped updates.

    ``mode`` is ``"central"`` or ``"distributed"`` (``sigma C / K``) or
    ``"local"`` (``sigma C / sqrt(K)``: K independent draws of std ``sigma C``).
    """
    num_sites = check_non_negative_int(num_sites, "num_sites")
    if num_sites == 0:
        raise ValueError("num_sites must be at least 1, got 0")
    std = check_noise_multiplier(noise_multiplier) * check_clipping_norm(clipping_norm)
    if mode in ("central", "distributed"):
        return std / num_sites
    if mode == "local":
        return std / math.sqrt(num_sites)
    raise ValueError(f"mode must be 'central', 'local' or 'distributed', got {mode!r}")


def aggregation_sensitivity(weights: Sequence[float], *, clipping_norm: float) -> float:
    """Return the L2 sensitivity ``C * max_k w_k`` of a weighted sum of clipped updates.

    With fixed weights ``1 / K`` one site moves the aggregate by at most
    ``C / K``; with sample weights ``n_k / N`` the largest site moves it by
    ``C n_max / N``, and the noise must be scaled to that largest contribution.

    Parameters
    ----------
    weights : sequence of float
        Non-negative aggregation weights, one per site.
    clipping_norm : float
        C, the bound on each site's update norm.
    """
    clipping_norm = check_clipping_norm(clipping_norm)
    array = np.asarray(weights, dtype=float)
    if array.ndim != 1 or array.size == 0 or np.any(array < 0) or not np.all(np.isfinite(array)):
        raise ValueError(f"weights must be a non-empty 1-D sequence of finite numbers >= 0, got {weights!r}")
    return clipping_norm * float(array.max())


# ---------------------------------------------------------------------------
# Renyi DP of the Gaussian and the Poisson-subsampled Gaussian mechanism.
# ---------------------------------------------------------------------------

def gaussian_rdp(*, noise_multiplier: float, orders: Sequence[float] | None = None) -> np.ndarray:
    """Return the RDP ``alpha / (2 sigma^2)`` of one Gaussian mechanism at each order.

    Infinite at every order when ``noise_multiplier`` is 0.
    """
    sigma = check_noise_multiplier(noise_multiplier)
    alphas = _check_orders(orders)
    if sigma == 0.0:
        return np.full(alphas.shape, np.inf)
    with np.errstate(over="ignore", divide="ignore"):
        return alphas / (2.0 * sigma**2)


def _log_a_integer(q: float, sigma: float, alpha: int) -> float:
    """Return log A_alpha for integer alpha: a finite binomial sum of positive terms."""
    k = np.arange(alpha + 1, dtype=float)
    log_binomial = special.gammaln(alpha + 1) - special.gammaln(k + 1) - special.gammaln(alpha - k + 1)
    log_terms = log_binomial + k * math.log(q) + (alpha - k) * math.log1p(-q) + (k * k - k) / (2 * sigma**2)
    return float(special.logsumexp(log_terms))


def _log_abs_binomial(alpha: float, k: np.ndarray) -> np.ndarray:
    """Return log |binom(alpha, k)| for real alpha and integer k >= 0.

    ``scipy.special.gammaln`` returns log |Gamma(x)| for negative non-integer
    x too, so this stays finite where Gamma itself overflows.
    """
    return special.gammaln(alpha + 1) - special.gammaln(k + 1) - special.gammaln(alpha - k + 1)


def _log_a_fractional(q: float, sigma: float, alpha: float) -> float:
    """Return an upper bound on log A_alpha for fractional alpha, or +inf if the series does not converge.

    A_alpha splits at z0 into two series (Mironov, Talwar and Zhang 2019,
    Section 3.3). For k > alpha the binomial coefficients alternate in sign;
    summing absolute values bounds A_alpha from above, which errs toward a
    larger epsilon.
    """
    z0 = sigma**2 * math.log(1.0 / q - 1.0) + 0.5
    log_q, log_1mq = math.log(q), math.log1p(-q)
    total = -np.inf
    start, chunk = 0, 256

    while start < _MAX_SERIES_TERMS:
        k = np.arange(start, start + chunk, dtype=float)
        j = alpha - k
        log_binomial = _log_abs_binomial(alpha, k)

        # Integral over (-inf, z0]: expand in powers of q * mu_1.
        below = (log_binomial + k * log_q + j * log_1mq + (k * k - k) / (2 * sigma**2)
                 + special.log_ndtr((z0 - k) / sigma))
        # Integral over [z0, inf): expand in powers of (1 - q) * mu_0.
        above = (log_binomial + j * log_q + k * log_1mq + (j * j - j) / (2 * sigma**2)
                 + special.log_ndtr((j - z0) / sigma))

        terms = np.logaddexp(below, above)
        total = float(np.logaddexp(total, special.logsumexp(terms)))
        # NOTE: the tail after the stopping term is not bounded explicitly. The terms
        # decay at least polynomially there, so it is estimated below k * exp(-30) of the total.
        tail = terms[k > alpha + 1]
        if tail.size and np.all(np.diff(tail[-8:]) < 0) and tail[-1] < total - _LOG_TOLERANCE:
            return total
        start, chunk = start + chunk, chunk * 2
    return math.inf


def sampled_gaussian_rdp(*, noise_multiplier: float, sample_rate: float,
                         orders: Sequence[float] | None = None) -> np.ndarray:
    """Return the RDP of one round of the Poisson-subsampled Gaussian mechanism at each order.

    Each site (the unit of privacy) is included with probability
    ``sample_rate``; the sum of included clipped updates gets Gaussian noise
    of std ``noise_multiplier * C``. Neighbouring federations differ by
    adding or removing one site.

    Parameters
    ----------
    noise_multiplier : float
        sigma, the noise std divided by the L2 sensitivity C; >= 0.
    sample_rate : float
        q, in [0, 1].
    orders : sequence of float, optional
        RDP orders alpha > 1 (default :data:`DEFAULT_ORDERS`).

    Returns
    -------
    ndarray of shape (len(orders),)
        RDP at each order; 0 everywhere when q = 0 and infinite when
        sigma = 0 (and q > 0). Each value is at most the unsampled bound
        ``alpha / (2 sigma^2)``, which is also used, with a
        :class:`~fedmed_lab.FedMedWarning`, where the series did not converge.
    """
    sigma = check_noise_multiplier(noise_multiplier)
    q = check_sample_rate(sample_rate)
    alphas = _check_orders(orders)

    if q == 0.0:
        return np.zeros(alphas.shape)
    if sigma == 0.0:
        return np.full(alphas.shape, np.inf)
    with np.errstate(over="ignore", divide="ignore"):
        unsampled = alphas / (2.0 * sigma**2)
    if q == 1.0:
        return unsampled

    rdp = np.empty(alphas.shape)
    for index, alpha in enumerate(alphas):
        if float(alpha).is_integer():
            log_a = _log_a_integer(q, sigma, int(alpha))
        else:
            log_a = _log_a_fractional(q, sigma, float(alpha))
            if math.isinf(log_a):
                warnings.warn(
                    f"the RDP series at order {alpha:g} did not converge (sample_rate={q:g}, "
                    f"noise_multiplier={sigma:g}); using the larger unsampled bound alpha / (2 sigma^2)",
                    FedMedWarning,
                    stacklevel=2,
                )
        # Subsampling never increases the divergence, so the unsampled value caps rounding error.
        rdp[index] = min(max(log_a / (alpha - 1.0), 0.0), unsampled[index])
    return rdp


# ---------------------------------------------------------------------------
# Conversion to (epsilon, delta), the accountant and calibration.
# ---------------------------------------------------------------------------

def rdp_to_epsilon(*, orders: Sequence[float], rdp: Sequence[float], delta: float) -> tuple[float, float]:
    """Convert RDP values to the smallest (epsilon, delta) guarantee over the orders.

    At each order uses ``rdp + log1p(-1/alpha) - (log(delta) + log(alpha)) / (alpha - 1)``
    (Canonne, Kamath and Steinke 2020, Proposition 12). An order whose RDP
    ``r`` satisfies ``1 - exp(-r) < delta^2`` gives epsilon 0, because the
    total variation distance is then below delta (Bretagnolle-Huber bound).

    Returns
    -------
    (epsilon, order) : tuple of float
        The best epsilon (>= 0, possibly infinite) and the order that gives it.
    """
    delta = check_delta(delta)
    alphas = _check_orders(orders)
    values = np.asarray(rdp, dtype=float)
    if values.shape != alphas.shape:
        raise ValueError(f"rdp must have one value per order, got shapes {values.shape} and {alphas.shape}")
    if np.any(values < 0) or np.any(np.isnan(values)):
        raise ValueError("rdp values must be >= 0 and not NaN")

    epsilons = np.full(alphas.shape, np.inf)
    finite = np.isfinite(values)
    a, r = alphas[finite], values[finite]
    epsilons[finite] = r + np.log1p(-1.0 / a) - (math.log(delta) + np.log(a)) / (a - 1.0)
    epsilons[finite & (-np.expm1(-np.where(finite, values, 0.0)) < delta**2)] = 0.0

    best = int(np.argmin(epsilons))
    return max(0.0, float(epsilons[best])), float(alphas[best])


def compute_epsilon(*, noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                    orders: Sequence[float] | None = None) -> float:
    """Return epsilon after ``steps`` rounds of the Poisson-subsampled Gaussian mechanism at ``delta``.

    Parameters
    ----------
    noise_multiplier : float
        sigma >= 0: noise std divided by the clipping norm C.
    sample_rate : float
        q in [0, 1]: the probability that a site takes part in a round.
    steps : int
        Number of rounds (>= 0); RDP adds up over rounds.
    delta : float
        Target delta in (0, 1).
    orders : sequence of float, optional
        RDP orders (default :data:`DEFAULT_ORDERS`).

    Returns
    -------
    float
        0 when ``sample_rate`` or ``steps`` is 0; infinity when
        ``noise_multiplier`` is 0. Infinity with a
        :class:`~fedmed_lab.FedMedWarning` when no order gives a finite bound.

    Raises
    ------
    ValueError
        For a negative noise multiplier, a sample rate outside [0, 1], negative
        steps or delta outside (0, 1).
    """
    sigma = check_noise_multiplier(noise_multiplier)
    q = check_sample_rate(sample_rate)
    steps = check_non_negative_int(steps, "steps")
    delta = check_delta(delta)
    alphas = _check_orders(orders)

    if q == 0.0 or steps == 0:
        return 0.0
    if sigma == 0.0:
        return math.inf

    rdp = steps * sampled_gaussian_rdp(noise_multiplier=sigma, sample_rate=q, orders=alphas)
    epsilon, _ = rdp_to_epsilon(orders=alphas, rdp=rdp, delta=delta)
    if math.isinf(epsilon):
        warnings.warn(
            f"no RDP order gave a finite epsilon for noise_multiplier={sigma:g}, sample_rate={q:g}, "
            f"steps={steps}; returning infinity",
            FedMedWarning,
            stacklevel=2,
        )
    return epsilon


def calibrate_noise_multiplier(*, target_epsilon: float, sample_rate: float, steps: int, delta: float,
                               tolerance: float = 1e-3, orders: Sequence[float] | None = None) -> float:
    """Return the smallest noise multiplier found by bisection whose epsilon is at most ``target_epsilon``.

    The returned sigma always satisfies ``compute_epsilon(sigma) <= target_epsilon``
    (the bisection keeps the upper, private end of its bracket); it exceeds
    the exact minimum by at most ``tolerance`` relative.

    Returns 0.0 when ``sample_rate`` or ``steps`` is 0 (nothing is released).

    Raises
    ------
    ValueError
        For ``target_epsilon <= 0``, invalid ``sample_rate``, ``steps`` or
        ``delta``, or when even sigma = 1e6 does not reach the target.
    """
    target = _check_real(target_epsilon, "target_epsilon")
    if not target > 0.0:
        raise ValueError(f"target_epsilon must be > 0, got {target_epsilon!r}")
    q = check_sample_rate(sample_rate)
    steps = check_non_negative_int(steps, "steps")
    delta = check_delta(delta)
    if q == 0.0 or steps == 0:
        return 0.0

    def epsilon_at(sigma: float) -> float:
        return compute_epsilon(noise_multiplier=sigma, sample_rate=q, steps=steps, delta=delta, orders=orders)

    # Bracket: low always overshoots the target, high never does.
    low, high = 0.0, 1.0
    while epsilon_at(high) > target:
        low, high = high, 2.0 * high
        if high > 1e6:
            raise ValueError(
                f"no noise multiplier up to 1e6 reaches target_epsilon={target!r} with "
                f"sample_rate={q!r}, steps={steps}, delta={delta!r}; raise target_epsilon or delta"
            )

    while high - low > tolerance * high:
        middle = 0.5 * (low + high)
        if epsilon_at(middle) > target:
            low = middle
        else:
            high = middle
    return high


@dataclass(frozen=True)
class RoundAccountant:
    """Epsilon spent after each round of a run, from :func:`compute_epsilon`.

    Call it with a round number t (from 1) to get epsilon after t rounds of
    the Poisson-subsampled Gaussian mechanism with these settings. Every
    round counts, including a round in which no site responded, which errs
    toward a larger epsilon. Pass it as ``epsilon=`` to
    :class:`fedmed_lab.audit.AuditedCoordinator` so each round's audit
    entry records the budget spent so far.

    Attributes
    ----------
    noise_multiplier : float
        sigma >= 0, as in the :class:`DPFedAvg` that adds the noise.
    sample_rate : float
        q in [0, 1]: the probability that a site takes part in a round
        (1.0 under full participation).
    delta : float
        Target delta in (0, 1).
    orders : tuple of float, optional
        RDP orders (default :data:`DEFAULT_ORDERS`).
    """

    noise_multiplier: float
    sample_rate: float
    delta: float
    orders: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "noise_multiplier", check_noise_multiplier(self.noise_multiplier))
        object.__setattr__(self, "sample_rate", check_sample_rate(self.sample_rate))
        object.__setattr__(self, "delta", check_delta(self.delta))
        if self.orders is not None:
            object.__setattr__(self, "orders", tuple(float(a) for a in _check_orders(self.orders)))

    def __call__(self, server_round: int) -> float:
        """Return epsilon after rounds 1 to ``server_round``; infinity when ``noise_multiplier`` is 0."""
        return compute_epsilon(noise_multiplier=self.noise_multiplier, sample_rate=self.sample_rate,
                               steps=server_round, delta=self.delta, orders=self.orders)


# ---------------------------------------------------------------------------
# DP-FedAvg for the round driver.
# ---------------------------------------------------------------------------

class DPFedAvg:
    """An aggregator for :func:`~fedmed_lab.rounds.run_federated` with site-level DP.

    Each round it clips every site's update delta (new minus broadcast
    parameters) to ``clipping_norm``, adds the noise of ``mode`` and moves the
    global parameters by the noisy sum divided by ``expected_sites``. The fixed
    denominator, not the number of sites that responded, keeps the L2
    sensitivity at ``clipping_norm / expected_sites``; sample weights n_k / N
    would let the largest site move the average by more (see
    :func:`aggregation_sensitivity`).

    Parameters
    ----------
    initial_parameters : array of shape (p,)
        The parameters the run starts from; must equal ``run_federated``'s.
    clipping_norm : float
        C > 0.
    noise_multiplier : float
        sigma >= 0; the noise on the sum has std ``sigma * C``.
    expected_sites : int
        The expected number of responding sites per round (q K).
    rng : numpy.random.Generator
        Source of the noise.
    mode : {"central", "local", "distributed"}
        Where the noise is added.

    Notes
    -----
    A coordinator that honours ``needs_global_parameters`` passes the
    broadcast parameters as ``global_parameters``. Otherwise the aggregator
    uses its own copy, which stays correct as long as the coordinator adopts
    every value it returns; an empty round calls no aggregator and changes
    nothing.
    """

    needs_global_parameters = True

    def __init__(self, initial_parameters: np.ndarray, *, clipping_norm: float, noise_multiplier: float,
                 expected_sites: int, rng: np.random.Generator, mode: str = "central"):
        self.clipping_norm = check_clipping_norm(clipping_norm)
        self.noise_multiplier = check_noise_multiplier(noise_multiplier)
        self.expected_sites = check_non_negative_int(expected_sites, "expected_sites")
        if self.expected_sites == 0:
            raise ValueError("expected_sites must be at least 1, got 0")
        if mode not in ("central", "local", "distributed"):
            raise ValueError(f"mode must be 'central', 'local' or 'distributed', got {mode!r}")
        self.mode = mode
        self.rng = check_rng(rng)
        self.global_parameters = np.array(initial_parameters, dtype=float, copy=True)
        self.clipped_fraction: list[float] = []

    def __call__(self, updates: Sequence[ModelUpdate], global_parameters: np.ndarray | None = None) -> np.ndarray:
        if global_parameters is not None:
            self.global_parameters = np.array(global_parameters, dtype=float, copy=True)
        deltas = [u.parameters - self.global_parameters for u in updates]
        norms = np.array([np.linalg.norm(d) for d in deltas])
        self.clipped_fraction.append(float(np.mean(norms > self.clipping_norm)))
        noise_arguments = dict(clipping_norm=self.clipping_norm, noise_multiplier=self.noise_multiplier, rng=self.rng)

        if self.mode == "central":
            noisy_sum = central_dp_sum(deltas, **noise_arguments)
        elif self.mode == "local":
            noisy_sum = local_dp_updates(deltas, **noise_arguments).sum(axis=0)
        else:
            noisy_sum = distributed_dp_updates(deltas, **noise_arguments).sum(axis=0)

        self.global_parameters = self.global_parameters + noisy_sum / self.expected_sites
        return self.global_parameters.copy()


@dataclass(frozen=True)
class PrivacyAccuracyPoint:
    """One point of the privacy-accuracy curve: epsilon and each site's test AUROC."""

    noise_multiplier: float
    clipping_norm: float
    epsilon: float
    auroc: dict[str, float]

    @property
    def mean_auroc(self) -> float:
        return float(np.mean(list(self.auroc.values())))

    @property
    def worst_auroc(self) -> float:
        return float(min(self.auroc.values()))


def privacy_accuracy_point(hospitals, model, *, noise_multiplier: float, clipping_norm: float, rounds: int,
                           local, delta: float, rng: np.random.Generator) -> PrivacyAccuracyPoint:
    """Train with central DP-FedAvg, every site in every round, and score each site's test split.

    Epsilon is accounted with sample rate 1 over ``rounds`` rounds at
    ``delta``, for site-level neighbours (one hospital added or removed).
    ``noise_multiplier=0`` trains without noise (clipping only) and gives
    epsilon infinity.
    """
    initial = model.initial_parameters(hospitals[0].num_features)
    aggregator = DPFedAvg(initial, clipping_norm=clipping_norm, noise_multiplier=noise_multiplier,
                          expected_sites=len(hospitals), rng=rng)
    history = run_federated(hospitals, model, rounds=rounds, local=local, rng=rng, aggregator=aggregator,
                            initial_parameters=initial)
    auroc = {h.site_id: h.evaluate(history.final_parameters, model).metrics["auroc"] for h in hospitals}
    epsilon = compute_epsilon(noise_multiplier=noise_multiplier, sample_rate=1.0, steps=rounds, delta=delta)
    return PrivacyAccuracyPoint(float(noise_multiplier), float(clipping_norm), epsilon, auroc)
