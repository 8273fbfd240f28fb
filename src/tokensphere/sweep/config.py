"""Sweep configurations: what to vary, what to hold fixed, what to record — parsed from TOML and validated once.

A configuration has seven tables (all optional but ``[grid]``); docs/sweeps.md lists every key::

    [sweep]    seeds, seed, t_max, n_times, statistics, summaries, per_seed, delta, betas_per_unit
    [model]    n, d, beta, normalization, heads, head_reduction, causal, uniform_count, projection, time_scale, V,
               noise
    [init]     kind, angle, gamma0
    [solver]   method, rtol, atol, dt, anchor
    [weights]  score, value, share, redraw, weights_seed
    [grid]     any key of [model], [init], [solver], [weights] → a non-empty list of values (the swept axes)
    [names]    stored variable → new name

The swept axes, in the order of ``[grid]``, then ``seed`` and ``t`` are the store's dimensions. A work unit is
one value of every swept axis except β and a block of ``betas_per_unit`` consecutive β values (β is a batch
dimension of :class:`~tokensphere.Model`), with all seeds: units never share a chunk of the store.
Errors are ValueErrors naming the key: an unknown key (with the allowed ones), a wrong type, an empty list.
"""

from __future__ import annotations

import itertools
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..ensembles import SCORES, SHARING, VALUES
from ..init import INITIALS
from ..integrate.sde import SDE_METHODS
from ..integrate.solver import LIE, METHODS
from ..model import NORMALIZATIONS
from ..validate import validate_int, validate_real
from .statistics import QUANTILES, STATISTICS, SUMMARIES

__all__ = ["PARAMS", "SWEEP_KEYS", "SECTIONS", "Param", "SweepConfig", "canonical", "config_from_dict", "load_config",
           "parse_config", "to_toml"]


@dataclass(frozen=True)
class Param:
    """A parameter that may be fixed in its table or swept in ``[grid]``: its table, type, default (None:
    absent, the object's own default) and allowed values for strings."""

    section: str
    kind: type
    default: Any
    choices: tuple[str, ...] = ()
    help: str = ""


PARAMS: dict[str, Param] = {
    "n": Param("model", int, 32, help="tokens per system"),
    "d": Param("model", int, 3, help="dimension: tokens on the sphere S^{d-1}"),
    "beta": Param("model", float, 1.0, help="inverse temperature (batched: units hold blocks of beta)"),
    "normalization": Param("model", str, "softmax", NORMALIZATIONS,
                           "softmax (SA), uniform (USA), sinkhorn (doubly stochastic) or hardmax (β → ∞)"),
    "heads": Param("model", int, 1, help="attention heads; weights are drawn per head (QK = I with identity)"),
    "head_reduction": Param("model", str, "sum", ("sum", "mean"), "heads summed (2.7) or averaged"),
    "causal": Param("model", bool, False, help="token i attends to j <= i"),
    "uniform_count": Param("model", str, "n", ("n", "attended"), "USA divisor with masks"),
    "projection": Param("model", bool, True, help="tangent projection (False: pure self-attention (9.1))"),
    "time_scale": Param("model", str, "original", ("original", "exp_beta"), "USA time scale"),
    "V": Param("model", str, "identity", ("identity", "repulsive"), "value matrix by name (V = I or -I)"),
    "noise": Param("model", float, 0.0, help="noise sigma >= 0 (Problem 7): needs a stochastic method and dt"),
    "kind": Param("init", str, "uniform", tuple(INITIALS), "initial positions (tokensphere.init)"),
    "angle": Param("init", float, None, help="cap half-angle (kind = cap; kind = hemisphere takes π/2 only)"),
    "gamma0": Param("init", float, None, help="pairwise inner product (kind = equiangular)"),
    "method": Param("solver", str, "dopri5", tuple(dict.fromkeys(METHODS + SDE_METHODS)), "integration method"),
    "rtol": Param("solver", float, 1e-6, help="relative tolerance (adaptive methods)"),
    "atol": Param("solver", float, 1e-8, help="absolute tolerance (adaptive methods)"),
    "dt": Param("solver", float, None, help="step (fixed-step methods; initial step of adaptive ones)"),
    "anchor": Param("solver", bool, False, help="the authors' Euler scheme, step 0.1 (tokensphere.anchor_solver)"),
    "score": Param("weights", str, "identity", SCORES, "random score matrix QᵀK (Figure 5)"),
    "value": Param("weights", str, "identity", VALUES, "random value matrix V (Figure 5)"),
    "share": Param("weights", str, "independent", SHARING, "matrix sharing across systems"),
    "redraw": Param("weights", float, None, help="redraw the matrices every tau time units (layers)"),
    "weights_seed": Param("weights", int, None, help="seed of the matrix draws (default: [sweep] seed)"),
}

# [sweep]: how the sweep runs and what it records (not sweepable)
SWEEP_KEYS: dict[str, tuple[type, Any]] = {
    "seeds": (int, 8),
    "seed": (int, 0),
    "t_max": (float, 10.0),
    "n_times": (int, 11),
    "statistics": (list, ["pair_fraction", "cluster_count"]),
    "summaries": (list, []),
    "per_seed": (bool, True),
    "delta": (float, 1e-3),
    "betas_per_unit": (int, 8),
}
SECTIONS = ("sweep", "model", "init", "solver", "weights", "grid", "names")
TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false", list: "a list"}


def _type_error(where: str, kind: type, value: Any) -> ValueError:
    return ValueError(f"{where} must be {TYPE_WORDS[kind]}, got {value!r} ({type(value).__name__})")


def _typed(where: str, kind: type, value: Any, choices: tuple[str, ...] = ()) -> Any:
    """``value`` checked against ``kind`` (a float key takes integers too) and ``choices``; raises naming ``where``."""
    ok = {
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
        bool: isinstance(value, bool),
        list: isinstance(value, list),
    }[kind]
    if not ok:
        raise _type_error(where, kind, value)
    if kind is float:
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, got {value}")
    if choices and value not in choices:
        raise ValueError(f"{where} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _unknown(key: str, section: str, allowed: list[str]) -> ValueError:
    hint = ""
    if key in PARAMS and section != "grid":
        hint = f" ({key} belongs in [{PARAMS[key].section}] or [grid])"
    elif key in SWEEP_KEYS and section != "sweep":
        hint = f" ({key} belongs in [sweep])"
    return ValueError(f"unknown key {key!r} in [{section}]{hint}; allowed keys: {', '.join(sorted(allowed))}")


@dataclass(frozen=True, eq=False)
class SweepConfig:
    """A validated sweep: ``fixed`` parameters (every key of :data:`PARAMS` that has a value), the swept
    ``axes`` ((name, values) in grid order), the [sweep] settings, and ``names`` (renamed variables).
    ``text`` is the TOML it came from (recorded in the store; it plays no part in equality, which compares
    :meth:`to_dict`). Build one with :func:`parse_config` or :func:`load_config`."""

    fixed: tuple[tuple[str, Any], ...]
    axes: tuple[tuple[str, tuple[Any, ...]], ...]
    seeds: int
    seed: int
    t_max: float
    n_times: int
    statistics: tuple[str, ...]
    summaries: tuple[tuple[str, tuple[str, ...]], ...]
    per_seed: bool
    delta: float
    betas_per_unit: int
    names: tuple[tuple[str, str], ...] = ()
    text: str = ""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SweepConfig) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    # ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The canonical form (defaults filled in, absent keys left out): the identity of a store."""
        tables: dict[str, Any] = {s: {} for s in ("model", "init", "solver", "weights")}
        for name, value in self.fixed:
            tables[PARAMS[name].section][name] = value
        out = {
            "sweep": {
                "seeds": self.seeds, "seed": self.seed, "t_max": self.t_max, "n_times": self.n_times,
                "statistics": list(self.statistics), "summaries": {k: list(v) for k, v in self.summaries},
                "per_seed": self.per_seed, "delta": self.delta, "betas_per_unit": self.betas_per_unit,
            },
            **tables,
            "grid": [[name, list(values)] for name, values in self.axes],
            "names": dict(self.names),
        }
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def differences(self, other: Mapping[str, Any]) -> list[str]:
        """The dotted keys whose values differ from ``other`` (a :meth:`to_dict`), for a refusal message. Both
        sides are compared in their :func:`canonical` form: a change that cannot alter a stored value (the order
        of the statistics, a default written out, …) is no difference."""
        a, other = canonical(self.to_dict()), canonical(other)
        out = []
        for section in sorted(set(a) | set(other)):
            x, y = a.get(section), other.get(section)
            if isinstance(x, dict) and isinstance(y, dict):
                out += [f"{section}.{k}" for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
            elif x != y:
                out.append(section)
        return out

    # ------------------------------------------------------------------------------------------------
    @property
    def axis_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        """Grid shape (one length per swept axis)."""
        return tuple(len(values) for _, values in self.axes)

    @property
    def times(self) -> np.ndarray:
        """Output times linspace(0, t_max, n_times)."""
        return np.linspace(0.0, self.t_max, self.n_times)

    @property
    def chunks(self) -> dict[str, int]:
        """Chunk length per dimension: 1 along every swept axis but β (``betas_per_unit``), whole otherwise."""
        out = {name: 1 for name in self.axis_names}
        if "beta" in out:
            out["beta"] = min(self.betas_per_unit, len(dict(self.axes)["beta"]))
        out.update(seed=self.seeds, t=self.n_times, quantile=len(QUANTILES))
        return out

    def units(self) -> list[tuple[tuple[int, int], ...]]:
        """Work units: per swept axis a range (start, stop); length 1 on every axis but β, whose blocks follow
        the chunks. Units are listed in grid (row-major) order."""
        ranges = []
        for name, values in self.axes:
            step = self.chunks[name]
            ranges.append([(a, min(a + step, len(values))) for a in range(0, len(values), step)])
        return [tuple(u) for u in itertools.product(*ranges)]

    def unit_points(self, unit: tuple[tuple[int, int], ...]) -> np.ndarray:
        """Flat (row-major) grid indices of the unit's points, in β order: (K,) int64."""
        if not self.axes:
            return np.zeros(1, dtype=np.int64)
        idx = np.meshgrid(*[np.arange(a, b) for a, b in unit], indexing="ij")
        return np.ravel_multi_index([i.reshape(-1) for i in idx], self.shape).astype(np.int64)

    def unit_params(self, unit: tuple[tuple[int, int], ...]) -> tuple[dict[str, Any], list[float]]:
        """(parameters shared by the unit's points, the unit's β values)."""
        params = dict(self.fixed)
        betas = [params.get("beta", PARAMS["beta"].default)]
        for (name, values), (a, b) in zip(self.axes, unit):
            if name == "beta":
                betas = [float(v) for v in values[a:b]]
            else:
                params[name] = values[a]
        params.pop("beta", None)
        return params, betas

    def variables(self) -> dict[str, tuple[str, ...]]:
        """Stored variable name (after ``names``) → its dimensions, for every statistic and summary."""
        axes = self.axis_names
        rename = dict(self.names)
        out: dict[str, tuple[str, ...]] = {}
        for stat in self.statistics:
            if self.per_seed:
                out[rename.get(stat, stat)] = (*axes, "seed", "t")
            for summary in dict(self.summaries).get(stat, ()):
                raw = f"{stat}_{summary}"
                out[rename.get(raw, raw)] = (*axes, "quantile", "t") if summary == "quantile" else (*axes, "t")
        return out

    def raw_variables(self) -> list[str]:
        """Variable names before renaming (what ``names`` may rename)."""
        out = []
        for stat in self.statistics:
            out += [stat] if self.per_seed else []
            out += [f"{stat}_{s}" for s in dict(self.summaries).get(stat, ())]
        return out


def canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """A :meth:`SweepConfig.to_dict` (or one read back from a store) with the choices that cannot change any
    stored value made uniform, so that two stores are "the same sweep" exactly when their numbers are:

    * the statistics, and each statistic's summaries, sorted: each is computed and stored on its own;
    * ``betas_per_unit`` as the β block it gives, min(betas_per_unit, number of β values), and left out when β is
      not swept: it groups nothing then (units and chunks are the same);
    * an absent ``weights_seed`` as the value it defaults to, ``[sweep] seed``.
    """
    out = json.loads(json.dumps(config))  # a deep copy; the stored form is JSON anyway
    sweep = out.get("sweep")
    if not isinstance(sweep, dict):
        return out
    if isinstance(sweep.get("statistics"), list):
        sweep["statistics"] = sorted(map(str, sweep["statistics"]))
    if isinstance(sweep.get("summaries"), dict):
        sweep["summaries"] = {k: sorted(map(str, v)) if isinstance(v, list) else v
                              for k, v in sweep["summaries"].items()}
    try:
        grid = {name: values for name, values in out.get("grid", [])}
    except (TypeError, ValueError):  # not the stored form: compared as it is
        return out
    per_unit = sweep.get("betas_per_unit")
    if "beta" not in grid:
        sweep.pop("betas_per_unit", None)
    elif isinstance(per_unit, int) and isinstance(grid["beta"], list):
        sweep["betas_per_unit"] = min(per_unit, len(grid["beta"]))
    weights = out.get("weights")
    if isinstance(weights, dict) and "weights_seed" not in weights and "weights_seed" not in grid:
        weights["weights_seed"] = sweep.get("seed")
    return out


def load_config(path: str, overrides: list[str] | None = None) -> SweepConfig:
    """Read a TOML file (and ``overrides``, TOML lines such as ``"sweep.seeds = 4"``) into a SweepConfig.

    The file is UTF-8 text (TOML's encoding; a leading byte-order mark is dropped). Raises ValueError naming
    the file when it is missing, unreadable, not UTF-8 or not TOML."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise ValueError(f"config must be a TOML file, got {path} ({'a directory' if p.is_dir() else 'no such file'})")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ValueError(f"config {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ValueError(f"config {path} is not UTF-8 text (TOML files are UTF-8): byte 0x{data[exc.start]:02x} on "
                         f"line {line} cannot be decoded; save the file as UTF-8") from None
    return parse_config(text, overrides, source=str(path))


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def parse_config(text: str, overrides: list[str] | None = None, *, source: str | None = None) -> SweepConfig:
    """Parse and validate TOML ``text`` (plus ``overrides``: TOML lines with dotted keys, e.g.
    ``"grid.beta = [1, 2]"``, applied on top). Raises ValueError naming the offending key (and ``source``, the
    file the text came from, when the text is not TOML)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        where = f"config {source}" if source is not None else "config"
        raise ValueError(f"{where} is not valid TOML: {exc}") from None
    for line in overrides or ():
        try:
            data = _merge(data, tomllib.loads(line))
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"override {line!r} is not a TOML line 'table.key = value': {exc}") from None
    config = config_from_dict(data, text=text)
    if overrides:  # the file's text with dotted lines appended would not be TOML: write the result out in full
        config = replace(config, text=_overridden_text(config, overrides))
    return config


def _overridden_text(config: SweepConfig, overrides: list[str]) -> str:
    """The TOML text recorded for a configuration with overrides: every key of the effective configuration
    (:func:`to_toml`, which :func:`parse_config` reads back equal), the overrides named in a comment."""
    lines = ["# the configuration file with these overrides (--set) applied, written out in full:"]
    lines += [f"#   {line}" for line in overrides]
    return "\n".join(lines) + "\n" + to_toml(config)


def config_from_dict(data: Mapping[str, Any], *, text: str = "") -> SweepConfig:
    """Validate the parsed tables (the structure of the TOML file) and build the SweepConfig."""
    for section, table in data.items():
        if section not in SECTIONS:
            raise ValueError(f"unknown section [{section}] in the config; allowed sections: {', '.join(SECTIONS)}")
        if not isinstance(table, Mapping):
            raise ValueError(f"[{section}] must be a table of keys, got {table!r}")
    sweep = _sweep_table(data.get("sweep", {}))
    fixed: dict[str, Any] = {}
    for section in ("model", "init", "solver", "weights"):
        allowed = [k for k, p in PARAMS.items() if p.section == section]
        for key, value in data.get(section, {}).items():
            if key not in allowed:
                raise _unknown(key, section, allowed)
            fixed[key] = _typed(f"{section}.{key}", PARAMS[key].kind, value, PARAMS[key].choices)
    axes = _grid_table(data.get("grid"), fixed)
    _check_combinations(fixed, dict(axes))
    for key, p in PARAMS.items():
        if key not in fixed and p.default is not None and key not in dict(axes):
            fixed[key] = p.default
    statistics, summaries = sweep.pop("statistics"), sweep.pop("summaries")
    cfg = SweepConfig(fixed=tuple(sorted(fixed.items())), axes=axes, statistics=statistics, summaries=summaries,
                      text=text, names=(), **sweep)
    names = _names_table(data.get("names", {}), cfg)
    return SweepConfig(**{**cfg.__dict__, "names": names})


# lower bounds the layers below would check only once a unit runs (or not at all for a sweep)
_MINIMUM = {"n": 2, "weights_seed": 0}


def _check_combinations(fixed: Mapping[str, Any], grid: Mapping[str, tuple[Any, ...]]) -> None:
    """Refuse, naming the keys, what would only fail (or be silently ignored) inside a work unit."""
    def values(key: str) -> tuple[Any, ...]:
        if key in grid:
            return grid[key]
        return (fixed.get(key, PARAMS[key].default),)

    for key, low in _MINIMUM.items():
        for v in values(key):
            if v is not None and v < low:
                where = f"grid.{key}" if key in grid else f"{PARAMS[key].section}.{key}"
                why = " (the statistics compare pairs of tokens)" if key == "n" else ""
                raise ValueError(f"{where} must be >= {low}{why}, got {v}")
    if "repulsive" in values("V") and any(v != "identity" for v in values("value")):
        raise ValueError("model.V = 'repulsive' and a random weights.value both set the value matrix: give one "
                         "(weights.value = 'identity' keeps V by name)")
    noises, methods = values("noise"), values("method")
    sde_only = [m for m in methods if m in SDE_METHODS and m not in METHODS]
    if sde_only and any(v == 0 for v in noises):
        raise ValueError(f"solver.method {sde_only[0]!r} is a stochastic method and needs model.noise > 0, but the "
                         "noise is 0 (at some grid point); use a method that serves both, such as 'heun', or "
                         "sweep only noise > 0")
    plain = [m for m in methods if m not in SDE_METHODS]
    if any(v > 0 for v in noises) and plain:
        raise ValueError(f"model.noise > 0 needs a stochastic solver.method ({', '.join(SDE_METHODS)}), got "
                         f"{plain[0]!r}")
    if any(v > 0 for v in noises) and "dt" not in fixed and "dt" not in grid:
        raise ValueError("model.noise > 0 needs solver.dt (> 0): the stochastic methods take fixed steps")
    # the grid is a full product: a value of one key meets every value of another at some grid point
    if True in values("anchor") and any(v > 0 for v in noises):
        raise ValueError("solver.anchor = true (the authors' deterministic Euler scheme) cannot integrate "
                         "model.noise > 0 (at some grid point): set solver.anchor = false to use the stochastic "
                         "solver.method")
    lie = [m for m in methods if m in LIE]
    if lie and False in values("projection"):
        raise ValueError(f"solver.method {lie[0]!r} moves tokens on the sphere; model.projection = false (pure "
                         f"self-attention in R^d, at some grid point) needs a Runge-Kutta method such as 'rk4' or "
                         f"'dopri5'")


def _sweep_table(table: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in table.items():
        if key not in SWEEP_KEYS:
            raise _unknown(key, "sweep", list(SWEEP_KEYS))
        if not (key == "summaries" and isinstance(value, Mapping)):  # a table: {statistic = [summaries]}
            value = _typed(f"sweep.{key}", SWEEP_KEYS[key][0], value)
        out[key] = value
    for key, (_, default) in SWEEP_KEYS.items():
        out.setdefault(key, default)
    out["seeds"] = validate_int("sweep.seeds", out["seeds"], minimum=1)
    out["seed"] = validate_int("sweep.seed", out["seed"], minimum=0)
    out["t_max"] = validate_real("sweep.t_max", out["t_max"], minimum=0.0, strict_minimum=True)
    out["n_times"] = validate_int("sweep.n_times", out["n_times"], minimum=2)
    out["delta"] = validate_real("sweep.delta", out["delta"], minimum=0.0, maximum=2.0, strict_minimum=True)
    out["betas_per_unit"] = validate_int("sweep.betas_per_unit", out["betas_per_unit"], minimum=1)
    stats = out["statistics"]
    if not stats:
        raise ValueError(f"sweep.statistics is empty: name at least one of {', '.join(STATISTICS)}")
    for i, s in enumerate(stats):
        _typed(f"sweep.statistics[{i}]", str, s, tuple(STATISTICS))
    if len(set(stats)) < len(stats):
        raise ValueError(f"sweep.statistics lists a statistic twice: {stats}")
    summ = out["summaries"]
    per_stat = dict(summ) if isinstance(summ, Mapping) else {s: summ for s in stats}
    for stat, names in per_stat.items():
        if stat not in stats:
            raise ValueError(f"sweep.summaries names {stat!r}, which is not in sweep.statistics ({', '.join(stats)})")
        _typed(f"sweep.summaries.{stat}", list, names)
        for i, s in enumerate(names):
            _typed(f"sweep.summaries.{stat}[{i}]", str, s, tuple(SUMMARIES))
        twice = next((s for s in names if names.count(s) > 1), None)
        if twice is not None:  # the key as written: the list (given for every statistic) or the table's entry
            where = f"sweep.summaries.{stat}" if isinstance(summ, Mapping) else "sweep.summaries"
            raise ValueError(f"{where} lists the summary {twice!r} twice: give each summary once")
        if "se" in names and out["seeds"] < 2:
            raise ValueError("sweep.summaries 'se' needs sweep.seeds >= 2")
    if not out["per_seed"] and not any(per_stat.values()):
        raise ValueError("sweep.per_seed = false with no summaries would record nothing: add sweep.summaries")
    unsummarized = [s for s in stats if not per_stat.get(s)]
    if not out["per_seed"] and unsummarized:  # it would be computed for every system, then thrown away
        raise ValueError(f"sweep.statistics lists {unsummarized[0]!r}, which has no sweep.summaries, and "
                         "sweep.per_seed = false keeps no per-seed values: it would be computed and thrown away; "
                         "give it summaries or remove it")
    out["statistics"] = tuple(stats)
    out["summaries"] = tuple((s, tuple(per_stat[s])) for s in stats if per_stat.get(s))
    return out


def _grid_table(table: Any, fixed: Mapping[str, Any]) -> tuple[tuple[str, tuple[Any, ...]], ...]:
    allowed = sorted(PARAMS)
    if not table:
        raise ValueError(f"grid is empty: [grid] must sweep at least one parameter (allowed: {', '.join(allowed)})")
    axes = []
    for key, values in table.items():
        if key not in PARAMS:
            raise _unknown(key, "grid", allowed)
        if key in fixed:
            raise ValueError(f"{key} is both fixed in [{PARAMS[key].section}] and swept in [grid]; give it once")
        if not isinstance(values, list):
            raise ValueError(f"grid.{key} must be a list of values, got {values!r}")
        if not values:
            raise ValueError(f"grid.{key} is empty: give at least one value")
        p = PARAMS[key]
        checked = tuple(_typed(f"grid.{key}[{i}]", p.kind, v, p.choices) for i, v in enumerate(values))
        if len(set(checked)) < len(checked):
            dup = next(v for v in checked if checked.count(v) > 1)
            raise ValueError(f"grid.{key} holds the value {dup!r} twice; values of an axis must be distinct")
        axes.append((key, checked))
    return tuple(axes)


def _names_table(table: Mapping[str, Any], cfg: SweepConfig) -> tuple[tuple[str, str], ...]:
    raw = cfg.raw_variables()
    reserved = {*cfg.axis_names, "seed", "t", "quantile", "done"}
    out = []
    for key, value in table.items():
        if key not in raw:
            raise _unknown(key, "names", raw)
        new = _typed(f"names.{key}", str, value)
        if not new.isidentifier() or new in reserved:
            raise ValueError(f"names.{key} must be a new variable name (not {', '.join(sorted(reserved))}), "
                             f"got {new!r}")
        out.append((key, new))
    final = [dict(out).get(v, v) for v in raw]
    if len(set(final)) < len(final):
        raise ValueError(f"names gives two variables the same name: {final}")
    return tuple(out)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(config: SweepConfig) -> str:
    """The configuration as TOML text (every key written out); :func:`parse_config` reads it back equal."""
    d = config.to_dict()
    d["grid"] = dict(d["grid"])
    lines = []
    for section in SECTIONS:
        table = d.get(section) or {}
        if table:
            lines += ["" if lines else None, f"[{section}]"] + [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(line for line in lines if line is not None) + "\n"
