"""Checks for exercise test cells: strict about types, explicit about the likely mistake.

Each check raises :class:`AssertionError` with a message a student can act on.
Values are converted and compared by numpy only after their type is checked,
so an object that claims to equal everything (``__eq__`` returning True)
fails instead of passing.
"""

from __future__ import annotations

import numbers

import numpy as np


def _describe(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_float(value: object, expected: float, *, rtol: float = 1e-7, atol: float = 0.0, name: str = "value",
                hint: str = "") -> None:
    """Assert that ``value`` is a real number (Python or numpy) close to ``expected``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating, np.integer)):
        raise AssertionError(f"{name} must be a number, got {type(value).__name__} {_describe(value)}")
    actual = float(value)
    if not np.isclose(actual, expected, rtol=rtol, atol=atol):
        message = f"{name} is {actual:.6g}, expected {expected:.6g} (relative tolerance {rtol:g})"
        raise AssertionError(f"{message}. {hint}".strip() if hint else message)


def check_array(value: object, expected, *, rtol: float = 1e-7, atol: float = 0.0, name: str = "array",
                hint: str = "") -> None:
    """Assert that ``value`` is a numeric numpy array of the expected shape, close to ``expected``."""
    expected = np.asarray(expected, dtype=float)
    if type(value) is not np.ndarray:
        raise AssertionError(f"{name} must be a numpy.ndarray, got {type(value).__name__} {_describe(value)}")
    if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
        raise AssertionError(f"{name} must hold numbers, got dtype {value.dtype}")
    if value.shape != expected.shape:
        raise AssertionError(f"{name} has shape {value.shape}, expected {expected.shape}")
    if not np.allclose(value.astype(float), expected, rtol=rtol, atol=atol):
        worst = float(np.max(np.abs(value.astype(float) - expected)))
        message = f"{name} differs from the expected values by up to {worst:.3g}"
        raise AssertionError(f"{message}. {hint}".strip() if hint else message)


def check_int(value: object, expected: int, *, name: str = "value", hint: str = "") -> None:
    """Assert that ``value`` is an integer (Python or numpy, not bool) equal to ``expected``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, np.integer)):
        raise AssertionError(f"{name} must be an integer, got {type(value).__name__} {_describe(value)}")
    if int(value) != int(expected):
        message = f"{name} is {int(value)}, expected {int(expected)}"
        raise AssertionError(f"{message}. {hint}".strip() if hint else message)


def check_raises(function, exception: type[BaseException], *, name: str = "call", hint: str = "") -> None:
    """Assert that calling ``function()`` raises ``exception``."""
    try:
        function()
    except exception:
        return
    except Exception as error:  # noqa: BLE001 - any other exception is the wrong answer, reported as such
        raise AssertionError(f"{name} raised {type(error).__name__}, expected {exception.__name__}. {hint}".strip())
    raise AssertionError(f"{name} raised nothing, expected {exception.__name__}. {hint}".strip())
