"""Seeded initial conditions on S^{d−1}, and positions read from arrays or files.

Every sampler draws system b of the batch from its own random stream, seeded by ``(seed, first_system + b)``
with NumPy's SeedSequence, so system b gets the same tokens whatever the batch size or chunking, and the same
seed gives the same numbers on every machine. All return tensors of shape ``(B, n, d)``, float64 by default.

Specs are small frozen dataclasses (:class:`Uniform`, :class:`OrthonormalFrame`, :class:`Cap`, ...), so a
run can record exactly how its initial state was made; :func:`make_initial` builds one from a name.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import math
import os
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .norms import sphere
from .validate import as_tensor, validate_int, validate_real, validate_tensor_finite, validate_unit_norm

__all__ = [
    "Uniform",
    "OrthonormalFrame",
    "Cap",
    "Hemisphere",
    "Equiangular",
    "FromArray",
    "FromFile",
    "ARRAY_SUFFIXES",
    "INITIALS",
    "make_initial",
    "sample_sphere",
    "normalize",
    "read_array",
    "split_array_path",
    "looks_like_array_file",
]


_CAP_GRID = 1 << 14  # grid points for the inverse CDF of the polar angle in Cap


normalize = sphere  # x / |x| row by row, (..., d) → (..., d): the one definition is tokensphere.norms.sphere


def _streams(seed: int, first: int, batch: int) -> list[np.random.Generator]:
    return [np.random.default_rng(np.random.SeedSequence([seed, first + b])) for b in range(batch)]


def _to_tensor(a: np.ndarray, dtype: torch.dtype, device: torch.device | str | None) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype=dtype, device=device)


@dataclass(frozen=True)
class _Spec:
    batch: int = 1
    n: int = 32
    d: int = 2
    seed: int = 0
    first_system: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "batch", validate_int("batch", self.batch, minimum=1))
        object.__setattr__(self, "n", validate_int("n", self.n, minimum=1))
        object.__setattr__(self, "d", validate_int("d", self.d, minimum=2))
        object.__setattr__(self, "seed", validate_int("seed", self.seed, minimum=0))
        object.__setattr__(self, "first_system", validate_int("first_system", self.first_system, minimum=0))

    def describe(self) -> dict:
        return {"kind": type(self).__name__, **asdict(self)}

    def sample(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        """Draw the (B, n, d) initial positions."""
        arr = np.stack([self._one(rng) for rng in _streams(self.seed, self.first_system, self.batch)])
        return normalize(_to_tensor(arr, torch.float64, None)).to(dtype=dtype, device=device)

    def _one(self, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


@dataclass(frozen=True)
class Uniform(_Spec):
    """x_i i.i.d. uniform on S^{d−1}: normalised standard Gaussians (the random starts of Theorems 6.3 and 6.7)."""

    def _one(self, rng):
        return rng.standard_normal((self.n, self.d))


@dataclass(frozen=True)
class OrthonormalFrame(_Spec):
    """n pairwise orthogonal unit vectors (needs d ≥ n): a Haar-random rotation of e_1, …, e_n (Thm 6.8)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.d < self.n:
            raise ValueError(f"d must be >= n for an orthonormal frame, got n = {self.n}, d = {self.d}")

    def _one(self, rng):
        g = rng.standard_normal((self.d, self.n))
        q, r = np.linalg.qr(g)
        q = q * np.sign(np.diag(r))  # Haar measure on the Stiefel manifold
        return q.T


@dataclass(frozen=True)
class Cap(_Spec):
    """Uniform in the spherical cap {x : ⟨x, e⟩ > cos(angle)} around a random direction e (per system).

    angle in (0, π]: angle = π/2 is the open hemisphere of Lemma 6.4; angle < π/2 makes an α-clustered set.
    """

    angle: float = math.pi / 2

    def __post_init__(self) -> None:
        super().__post_init__()
        validate_real("angle", self.angle, minimum=0.0, maximum=math.pi, strict_minimum=True)

    def _one(self, rng):
        # the polar angle θ from the centre has density ∝ sin^{d−2}θ on [0, angle]: sample it by inverting its
        # CDF on a fine grid (weights in log space, so any d works), then a uniform direction orthogonal to e
        d, n = self.d, self.n
        center = rng.standard_normal(d)
        center /= np.linalg.norm(center)
        grid = np.linspace(0.0, self.angle, _CAP_GRID)
        with np.errstate(divide="ignore"):
            logw = (d - 2) * np.log(np.sin(grid)) if d > 2 else np.zeros_like(grid)
        w = np.exp(logw - logw.max())
        cdf = np.concatenate([[0.0], np.cumsum((w[1:] + w[:-1]) / 2)])
        cdf /= cdf[-1]
        theta = np.interp(rng.random(n), cdf, grid)
        u = rng.standard_normal((n, d))
        u -= np.outer(u @ center, center)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        return np.cos(theta)[:, None] * center + np.sin(theta)[:, None] * u


@dataclass(frozen=True)
class Hemisphere(Cap):
    """Uniform on the open hemisphere around a random direction (Cap with angle π/2)."""

    angle: float = math.pi / 2

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.angle != math.pi / 2:
            raise ValueError(f"angle of a hemisphere is π/2, got {self.angle:g}; use kind 'cap' (Cap) for another "
                             "half-angle")


@dataclass(frozen=True)
class Equiangular(_Spec):
    """n unit vectors with all pairwise inner products γ0 ∈ [−1/(n−1), 1) (needs d ≥ n; Theorem 6.8, (6.9)–(6.10)).

    Built as a randomly rotated √(1−γ0)·e_i + c·1 construction; γ0 = 0 is an orthonormal frame and
    γ0 = −1/(n−1) the regular simplex.
    """

    gamma0: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        lo = -1.0 / (self.n - 1) if self.n > 1 else -1.0
        validate_real("gamma0", self.gamma0, minimum=lo, maximum=1.0)
        if self.gamma0 >= 1.0:
            raise ValueError(f"gamma0 must be < 1, got {self.gamma0}")
        if self.d < self.n:
            raise ValueError(f"d must be >= n for an equiangular start, got n = {self.n}, d = {self.d}")

    def _one(self, rng):
        n, g = self.n, self.gamma0
        # Gram G = (1−γ) I + γ 11ᵀ is PSD for γ ≥ −1/(n−1); take its symmetric square root as coordinates
        gram = (1 - g) * np.eye(n) + g * np.ones((n, n))
        w, u = np.linalg.eigh(gram)
        coords = u * np.sqrt(np.clip(w, 0.0, None))  # rows: points in R^n with Gram = gram
        q, r = np.linalg.qr(rng.standard_normal((self.d, self.d)))
        rot = q * np.sign(np.diag(r))  # the sign fix makes the rotation Haar-distributed (QR alone is not)
        return coords @ rot[:n, :]


def _as_positions(name: str, value: object) -> torch.Tensor:
    """``value`` as a floating tensor in its own precision: float32/float16 arrays and tensors stay so (their
    unit-norm check must use their precision); integers, lists and everything else become float64."""
    if isinstance(value, np.ndarray) and value.dtype in (np.float32, np.float16):
        return torch.from_numpy(np.ascontiguousarray(value))
    return as_tensor(name, value)


def _unit_tolerance(dtype: torch.dtype, d: int) -> float | None:
    """Unit-norm tolerance for data of this precision: None (validate_unit_norm's own default, float32 and
    float64), or 4·√d·ε for half precision (rounding each of the d coordinates moves |x| by ≤ √d·ε/2)."""
    if dtype in (torch.float16, torch.bfloat16):
        return 4.0 * math.sqrt(d) * torch.finfo(dtype).eps
    return None


def _checked_positions(
    name: str,
    x: torch.Tensor,
    unit: bool,
    dtype: torch.dtype,
    device: torch.device | str | None,
    tol: float | None = None,
) -> torch.Tensor:
    """Check given positions and return them as (B, n, d) in ``dtype`` on ``device``.

    x: (B, n, d) or (n, d), in the precision it was given. Unit vectors are checked in that precision (tolerance
    ``tol``, else the precision's own), so float32 data normalised in float32 passes. When the data are coarser
    than ``dtype`` (float32 data run in float64, or a loose ``tol`` such as a CSV's printed digits), the accepted
    points are projected onto the sphere in ``dtype``: a change below the data's own rounding, which keeps the
    recorded start on S^{d−1} to working precision. Raises ValueError naming ``name``.
    """
    if x.ndim == 2:
        x = x.unsqueeze(0)
    if x.ndim != 3:
        raise ValueError(f"{name} must have shape (B, n, d) or (n, d), got {tuple(x.shape)}")
    if not unit:
        validate_tensor_finite(name, x)
        return x.to(dtype=dtype, device=device)
    if tol is None:
        tol = _unit_tolerance(x.dtype, x.shape[-1])
    check = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    validate_unit_norm(name, check, tol=tol)
    coarse = tol is not None or torch.finfo(x.dtype).eps > torch.finfo(dtype).eps
    out = x.to(dtype=dtype, device=device)
    return normalize(out) if coarse else out


@dataclass(frozen=True)
class FromArray:
    """Given positions: an array of shape (B, n, d) or (n, d), checked to be finite (and unit vectors unless
    ``unit=False``, for pure self-attention on R^d, (9.1)).

    The unit-norm check uses the array's own precision (a float32 array normalised in float32 passes); such
    coarser data run in a finer dtype are projected onto the sphere in that dtype. Raises ValueError naming x0.
    """

    array: object = None
    unit: bool = True

    def sample(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        return _checked_positions("x0", _as_positions("x0", self.array), self.unit, dtype, device)

    def describe(self) -> dict:
        return {"kind": "FromArray", "shape": list(np.shape(self.array))}


ARRAY_SUFFIXES = (".npy", ".npz", ".csv")
CSV_TOLERANCE = 1e-5  # a CSV has no dtype: accept float32-normalised numbers (validate_unit_norm's float32 default)
_CSV_NUMBER = re.compile(r"[+-]?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?")


def split_array_path(spec: str | os.PathLike) -> tuple[Path, str | None]:
    """``"runs/x.npz:NAME"`` → ``(Path("runs/x.npz"), "NAME")``; any other path → ``(Path(spec), None)``.

    The ``:NAME`` suffix is recognised only after ``.npz`` and when the whole string is not an existing file.
    """
    text = os.fspath(spec)
    head, sep, key = text.rpartition(":")
    if sep and key and head.lower().endswith(".npz") and "/" not in key and not Path(text).exists():
        return Path(head), key
    return Path(text), None


def looks_like_array_file(spec: str | os.PathLike) -> bool:
    """True when ``spec`` names an existing file, or ends in .npy, .npz or .csv (optionally ``.npz:NAME``)."""
    path, key = split_array_path(spec)
    return key is not None or path.is_file() or path.suffix.lower() in ARRAY_SUFFIXES


def read_array(spec: str | os.PathLike, *, name: str = "x0", default_key: str = "x0") -> tuple[np.ndarray, dict]:
    """Read one numeric array from a .npy, .npz or .csv file; returns ``(array, info)``.

    * ``.npy``: the array (no pickles).
    * ``.npz``: the array named by ``PATH.npz:NAME``; without a name, the only array in the file, else the one
      called ``default_key`` (``x0`` for positions, the option's name for matrices).
    * ``.csv``: rows of comma- or space-separated numbers (``#`` starts a comment line): a 2-D array.

    info: JSON-serialisable provenance (absolute path, key, format, shape, dtype, SHA-256 of the file bytes)
    plus ``"tolerance"``: a unit-norm tolerance for CSV text (max of :data:`CSV_TOLERANCE` and the rounding
    of its printed digits), None otherwise. Raises ValueError naming ``name`` for a missing, unreadable or
    non-numeric file.
    """
    path, key = split_array_path(spec)
    suffix = path.suffix.lower()
    if suffix not in ARRAY_SUFFIXES:
        raise ValueError(f"{name}: {path} is not a .npy, .npz or .csv file (got suffix {suffix or 'none'!r})")
    if key is not None and suffix != ".npz":
        raise ValueError(f"{name}: only a .npz file holds named arrays, got {os.fspath(spec)!r}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ValueError(f"{name}: file not found: {path}") from None
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path} ({exc.strerror or exc})") from None
    magic = {".npy": b"\x93NUMPY", ".npz": b"PK"}.get(suffix)
    if magic is not None and not data.startswith(magic):
        raise ValueError(f"{name}: cannot read {path}: not a NumPy {suffix} file")
    tolerance = None
    try:
        if suffix == ".npy":
            array = np.load(io.BytesIO(data), allow_pickle=False)
        elif suffix == ".npz":
            with np.load(io.BytesIO(data), allow_pickle=False) as archive:
                key = _npz_key(name, path, list(archive.files), key, default_key)
                array = archive[key]
        else:
            array, tolerance = _read_csv(data.decode("utf-8"))
    except ValueError as exc:
        if str(exc).startswith(name):
            raise
        if "allow_pickle" in str(exc):  # NumPy's refusal of object arrays, in its own terms
            raise ValueError(f"{name}: {path} holds pickled Python objects, which are not read (they can run "
                             "code); save a numeric array") from None
        raise ValueError(f"{name}: cannot read {path} as {suffix[1:]}: {_first_line(exc)}") from None
    except (OSError, EOFError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
        raise ValueError(f"{name}: cannot read {path} as {suffix[1:]}: {_first_line(exc)}") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        kind = getattr(array, "dtype", type(array).__name__)
        raise ValueError(f"{name}: {path} must hold a real (float or integer) array, got {kind}")
    info = {
        "path": str(path.resolve()),
        "key": key,
        "format": suffix[1:],
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "sha256": hashlib.sha256(data).hexdigest(),
        "tolerance": tolerance,
    }
    return array, info


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _npz_key(name: str, path: Path, keys: list[str], key: str | None, default_key: str) -> str:
    if key is not None:
        if key not in keys:
            raise ValueError(f"{name}: {path} has no array {key!r}; it holds {', '.join(map(repr, keys)) or 'none'}")
        return key
    if len(keys) == 1:
        return keys[0]
    if default_key in keys:
        return default_key
    raise ValueError(
        f"{name}: {path} holds {len(keys)} arrays ({', '.join(map(repr, keys))}); name one as {path}:NAME "
        f"or call it {default_key!r}"
    )


def _read_csv(text: str) -> tuple[np.ndarray, float]:
    """Rows of numbers → (2-D float64 array, unit-norm tolerance for the printed precision)."""
    rows: list[list[float]] = []
    half_ulp = 0.0  # largest rounding error of a printed number: half a unit in its last digit
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        tokens = [t for t in re.split(r"[,\s]+", line) if t]
        try:
            rows.append([float(t) for t in tokens])
        except ValueError:
            raise ValueError(f"line {lineno} is not a row of numbers: {line[:60]!r}") from None
        for t in tokens:
            m = _CSV_NUMBER.fullmatch(t)
            if m:
                half_ulp = max(half_ulp, 0.5 * 10.0 ** (int(m.group(3) or 0) - len(m.group(2) or "")))
        if len(rows[-1]) != len(rows[0]):
            raise ValueError(f"every row must have the same number of values; line {lineno} has {len(rows[-1])}, "
                             f"the first row {len(rows[0])}")
    if not rows:
        raise ValueError("the file holds no rows of numbers")
    array = np.array(rows, dtype=np.float64)
    # |x̃| − |x| ≤ |x̃ − x| ≤ √d · (half ulp), with a factor 2 for the writer's own rounding before printing
    return array, max(CSV_TOLERANCE, 2.0 * math.sqrt(array.shape[1]) * half_ulp)


@dataclass(frozen=True)
class FromFile:
    """Positions read from a file: ``.npy``, ``.npz`` (``PATH.npz:NAME``, or the file's only array, or the one
    named ``x0``) or ``.csv`` (n rows of d numbers); see :func:`read_array`.

    The array has shape (n, d) or (B, n, d) and goes through :class:`FromArray`'s checks: finite, and unit
    vectors (unless ``unit=False``) within the tolerance of the data's own precision: the float64 or float32
    default for .npy/.npz (so float32 data normalised in float32 pass), float32's or the printed digits' for
    CSV text. Accepted coarse data are projected onto the sphere in the run's dtype. :meth:`describe` records
    the path, array name, shape, dtype and SHA-256 of the file. ``name`` prefixes every error (the CLI passes
    ``"--init"``). Raises ValueError for a missing or unreadable file, a wrong shape or non-finite values.
    """

    path: str
    unit: bool = True
    name: str = "x0"

    def _read(self) -> tuple[np.ndarray, dict]:
        cached = self.__dict__.get("_cache")
        if cached is None:  # read once: sample() and describe() see the same bytes
            cached = read_array(self.path, name=self.name, default_key="x0")
            object.__setattr__(self, "_cache", cached)
        return cached

    def sample(self, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None) -> torch.Tensor:
        array, info = self._read()
        label = f"{self.name} {split_array_path(self.path)[0]}"
        return _checked_positions(label, _as_positions(label, array), self.unit, dtype, device, info["tolerance"])

    def describe(self) -> dict:
        _, info = self._read()
        return {"kind": "FromFile", **{k: v for k, v in info.items() if k != "tolerance"}}


INITIALS = {
    "uniform": Uniform,
    "orthonormal": OrthonormalFrame,
    "cap": Cap,
    "hemisphere": Hemisphere,
    "equiangular": Equiangular,
}


def make_initial(kind: str, **kwargs) -> _Spec:
    """Build an initial-condition spec by name: one of ``INITIALS`` (uniform, orthonormal, cap, ...)."""
    from .validate import validate_choice

    validate_choice("init", kind, tuple(INITIALS))
    cls = INITIALS[kind]
    known = set(inspect.signature(cls).parameters)
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise ValueError(f"init {kind!r} takes the options {sorted(known)}, got unknown {unknown}")
    return cls(**kwargs)


def sample_sphere(batch: int, n: int, d: int, seed: int = 0, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Uniform random tokens on S^{d−1}: shape (batch, n, d), seeded. Shorthand for ``Uniform(...).sample()``."""
    return Uniform(batch=batch, n=n, d=d, seed=seed).sample(dtype)
