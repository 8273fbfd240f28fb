"""Input validation shared by every public entry point (parameters, shapes, unit norms).

Every check raises ``ValueError`` with a message that names the parameter, the value received and what is
allowed, e.g. ``beta must be a finite number >= 0, got -1.0``. The CLI prints that one line and exits with
code 2. Checks live here once; numerical code downstream assumes validated input.
"""

from __future__ import annotations

import numbers

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "validate_choice",
    "validate_int",
    "validate_real",
    "validate_tensor_finite",
    "validate_unit_norm",
    "as_tensor",
]


def validate_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """Return ``value`` as an int, or raise ``ValueError`` naming ``name`` and the allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) and not (
        isinstance(value, float) and value.is_integer()
    ):
        raise ValueError(f"{name} must be an integer{_range(minimum, maximum)}, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be an integer{_range(minimum, maximum)}, got {value}")
    return value


def validate_real(
    name: str,
    value: Any,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_minimum: bool = False,
) -> float:
    """Return ``value`` as a finite float within bounds, or raise ``ValueError`` naming ``name``."""
    op = ">" if strict_minimum else ">="
    allowed = "a finite number" + (f" {op} {minimum:g}" if minimum is not None else "")
    if maximum is not None:
        allowed += f" and <= {maximum:g}"
    if isinstance(value, bool) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")  # a flag, not a number (True would be 1)
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be {allowed}, got {value!r}") from None
    if not math.isfinite(v):
        raise ValueError(f"{name} must be {allowed}, got {v}")
    if minimum is not None and (v < minimum or (strict_minimum and v == minimum)):
        raise ValueError(f"{name} must be {allowed}, got {v:g}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be {allowed}, got {v:g}")
    return v


def validate_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``; otherwise raise ``ValueError`` listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def as_tensor(name: str, value: Any, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Convert array-likes to a floating tensor (float64 unless ``value`` is already a float tensor)."""
    if isinstance(value, torch.Tensor):
        t = value
        if t.is_complex():
            raise ValueError(f"{name} must be a real array, got a complex tensor")
        if not t.is_floating_point():
            t = t.to(torch.float64)
    else:
        if "complex" in str(getattr(value, "dtype", "")) or isinstance(value, complex):
            raise ValueError(f"{name} must be a real array, got complex values")
        try:
            t = torch.as_tensor(value, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            raise ValueError(f"{name} must be a real array, got {type(value).__name__}") from None
    if dtype is not None:
        t = t.to(dtype)
    return t


def validate_tensor_finite(name: str, t: torch.Tensor) -> None:
    """Raise ``ValueError`` if ``t`` holds NaN or ±inf."""
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must hold only finite values (found NaN or inf)")


def validate_unit_norm(name: str, x: torch.Tensor, *, tol: float | None = None) -> None:
    """Raise ``ValueError`` unless every row ``x[..., i, :]`` has unit Euclidean norm within ``tol``.

    The default tolerance is 1e-10 in float64 and 1e-5 in float32 (a few hundred ulps of the norm).
    """
    validate_tensor_finite(name, x)
    if tol is None:
        tol = 1e-10 if x.dtype == torch.float64 else 1e-5
    dev = (torch.linalg.vector_norm(x, dim=-1) - 1).abs()
    worst = float(dev.max()) if dev.numel() else 0.0
    if worst > tol:
        raise ValueError(
            f"{name} must hold unit vectors (|x_i| = 1 within {tol:g}); worst deviation {worst:.3g}. "
            "Normalise it first, e.g. x / x.norm(dim=-1, keepdim=True)"
        )


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""
