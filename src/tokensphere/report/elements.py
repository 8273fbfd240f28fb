"""What a report is made of: sections holding text, PNG figures, tables, verdict rows and interactive fragments.

These are plain data; :mod:`tokensphere.report.html` renders them and :mod:`tokensphere.report.viewer` builds the
interactive fragments. Both import this module, never each other's page logic.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Figure", "Fragment", "Section", "Verdict", "png_bytes"]


@dataclass(frozen=True)
class Verdict:
    """One row of a verdict table: what was measured against what, and the outcome.

    name: the statement (a theorem, an invariant, a completeness condition); measured: the value found;
    reference: the bound or exact value; passed: True (pass), False (fail) or None (not applicable /
    information only); detail: the setting, in a few words. A theorem check
    (:class:`tokensphere.experiments.theorems.CheckResult`) becomes a Verdict with :meth:`from_result`.
    """

    name: str
    measured: str
    reference: str
    passed: bool | None
    detail: str = ""

    @classmethod
    def from_result(cls, result: Any) -> Verdict:
        """A Verdict from any object with name, measured, reference, passed (and optional detail) attributes."""
        return cls(
            str(result.name), str(result.measured), str(result.reference),
            None if result.passed is None else bool(result.passed), str(getattr(result, "detail", "") or ""),
        )

    @property
    def outcome(self) -> str:
        """"pass", "fail" or "n/a"."""
        return "n/a" if self.passed is None else "pass" if self.passed else "fail"


@dataclass(frozen=True)
class Figure:
    """A PNG image: a file path, or the PNG bytes themselves (``data``), with a caption."""

    path: Path | None = None
    caption: str = ""
    data: bytes | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.data is None):
            raise ValueError("a Figure needs exactly one of path (a PNG file) or data (PNG bytes)")
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path))

    def png_bytes(self) -> bytes:
        """The PNG file's bytes. Raises ValueError when the file is unreadable or not a PNG."""
        if self.data is not None:
            raw = self.data
        else:
            try:
                raw = self.path.read_bytes()  # type: ignore[union-attr]
            except OSError as exc:
                raise ValueError(f"figure is not readable: {self.path} ({exc.strerror})") from None
        if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
            where = self.path if self.path is not None else "data"
            raise ValueError(f"figure must be a PNG image, got {where}")
        return raw


@dataclass(frozen=True)
class Fragment:
    """Interactive HTML placed as is in a section. plotly=True asks the page to inline plotly.js once."""

    html: str
    plotly: bool = False


@dataclass
class Section:
    """One part of the report.

    title: heading. text: a short paragraph (plain text; blank lines separate paragraphs).
    figures: PNG paths, ``(path, caption)`` pairs or :class:`Figure` objects; embedded as data URIs.
    tables: {table name: {key: value}}; nested dicts are flattened to dotted keys.
    verdicts: :class:`Verdict` rows. html: interactive parts (:class:`Fragment`, or raw HTML strings).
    """

    title: str
    text: str = ""
    figures: Sequence[Any] = ()
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    verdicts: Sequence[Verdict] = ()
    html: Sequence[Fragment | str] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError(f"section title must be a non-empty string, got {self.title!r}")
        self.figures = [_as_figure(f) for f in self.figures]
        self.verdicts = list(self.verdicts)
        for v in self.verdicts:
            if not isinstance(v, Verdict):
                raise ValueError(f"section verdicts must be Verdict objects, got {type(v).__name__}")
        self.html = [h if isinstance(h, Fragment) else Fragment(str(h), plotly="Plotly." in str(h)) for h in self.html]
        self.tables = dict(self.tables)


def _as_figure(f: Any) -> Figure:
    if isinstance(f, Figure):
        return f
    if isinstance(f, (tuple, list)) and len(f) == 2:
        return Figure(path=Path(f[0]), caption=str(f[1]))
    if isinstance(f, (str, os.PathLike)):
        return Figure(path=Path(f))
    raise ValueError(f"figures must be PNG paths, (path, caption) pairs or Figure objects, got {type(f).__name__}")


def png_bytes(fig: Any, dpi: int = 110) -> bytes:
    """A matplotlib figure (as :mod:`tokensphere.plot` draws them: no pyplot state) as PNG bytes, for
    :class:`Figure` ``data``."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()
