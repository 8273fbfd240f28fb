"""Page assembly: sections → one self-contained HTML file (SPEC §6: the report opens offline).

A report is a list of :class:`Section` objects. Each holds a title, a short text, PNG figures (embedded as
base64 ``data:`` URIs), key/value tables, theorem :class:`Check` rows (pass/fail coloured) and optional
interactive HTML :class:`Fragment` objects (the plotly viewer). :func:`render_report` turns them into a string;
:func:`write_report` writes ``DIR/index.html`` atomically. Nothing on the page refers to the network: no CDN,
no web font; the plotly JavaScript, when a fragment needs it, is inlined once in ``<head>``.

The page carries a tiny self-check script: it counts script errors (``window.onerror``, unhandled promise
rejections, ``console.error``), images that failed to decode, and resources fetched over http(s), and writes
them to ``<body data-js-errors data-broken-images data-external-requests data-ready>`` after load, so a
headless browser (``chromium --dump-dom``) can verify the page.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import __version__

__all__ = [
    "Check",
    "Figure",
    "Fragment",
    "Section",
    "figure1_slot",
    "flatten",
    "render_report",
    "write_report",
]

MAX_TABLE_ROWS = 80  # longer tables are cut, with a final "… k more" row
MAX_CELL_CHARS = 240  # long values (lists of β, seeds) are shortened in the middle


# ----------------------------------------------------------------------------------------------------
# the report's data model
@dataclass(frozen=True)
class Check:
    """One row of a theorem-check table: what was checked, the measured value, the bound or reference value,
    and the verdict. passed: True (pass), False (fail) or None (not applicable / information only).

    The fields match :class:`tokensphere.theory.verify.CheckResult`; :meth:`from_result` converts one.
    """

    name: str
    measured: str
    reference: str
    passed: bool | None
    detail: str = ""

    @classmethod
    def from_result(cls, result: Any) -> Check:
        """A Check from any object with name, measured, reference, passed (and optional detail) attributes."""
        return cls(
            str(result.name), str(result.measured), str(result.reference),
            None if result.passed is None else bool(result.passed), str(getattr(result, "detail", "") or ""),
        )

    @property
    def verdict(self) -> str:
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
    tables: {table name: {key: value}}; nested dicts are flattened to dotted keys (see :func:`flatten`).
    checks: theorem-check rows (:class:`Check`). html: interactive parts (:class:`Fragment`, or raw HTML strings).
    slot: True marks a placeholder for content another module will provide (drawn dashed and grey).
    """

    title: str
    text: str = ""
    figures: Sequence[Any] = ()
    tables: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    checks: Sequence[Check] = ()
    html: Sequence[Fragment | str] = ()
    slot: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.title, str) or not self.title.strip():
            raise ValueError(f"section title must be a non-empty string, got {self.title!r}")
        self.figures = [_as_figure(f) for f in self.figures]
        self.checks = list(self.checks)
        for c in self.checks:
            if not isinstance(c, Check):
                raise ValueError(f"section checks must be Check objects, got {type(c).__name__}")
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


def figure1_slot() -> Section:
    """The reserved place of the paper's Figure 1 (trained model), until the real-model pipeline fills it."""
    return Section(
        "Figure 1 — trained model: per-layer cosine similarities (slot)",
        "Trained model: covered by the real-model issue. This slot will hold the per-layer histograms of "
        "pairwise cosine similarities ⟨x_i, x_j⟩ of the token representations of a trained Transformer "
        "(ALBERT-xlarge-v2 in the paper, a bundled small encoder here; SPEC §6, Figure 1). "
        "Build it with Section(...) and pass it to write_report in place of this slot.",
        slot=True,
    )


# ----------------------------------------------------------------------------------------------------
# tables
def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"model": {"beta": 1}} → {"model.beta": 1}: nested mappings become dotted keys; other values are kept."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _format_value(value: Any) -> str:
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else f"{value:.6g}"
    if isinstance(value, str):
        text = value
    elif value is None:
        text = "—"
    elif isinstance(value, (list, tuple)):
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            text = "[" + ", ".join(_format_value(v) for v in value) + "]"
        else:
            text = json.dumps(value, ensure_ascii=False, default=str)
    elif isinstance(value, Mapping):
        text = json.dumps(value, ensure_ascii=False, default=str) if value else "{}"
    else:
        text = str(value)
    if len(text) > MAX_CELL_CHARS:
        half = MAX_CELL_CHARS // 2 - 2
        text = f"{text[:half]} … {text[-half:]}"
    return text


def _table_html(name: str, data: Mapping[str, Any]) -> str:
    rows = list(flatten(data).items())
    extra = len(rows) - MAX_TABLE_ROWS
    if extra > 0:
        rows = rows[:MAX_TABLE_ROWS]
    body = "".join(
        f"<tr><th scope=\"row\">{_e(k)}</th><td>{_e(_format_value(v))}</td></tr>" for k, v in rows
    )
    if extra > 0:
        body += f"<tr><td colspan=\"2\" class=\"more\">… {extra} more rows</td></tr>"
    return f"<table class=\"kv\"><caption>{_e(name)}</caption><tbody>{body}</tbody></table>"


def _checks_html(checks: Sequence[Check]) -> str:
    rows = []
    for c in checks:
        detail = f"<div class=\"detail\">{_e(c.detail)}</div>" if c.detail else ""
        rows.append(
            f"<tr class=\"{c.verdict.replace('/', '')}\"><td>{_e(c.name)}{detail}</td><td>{_e(c.measured)}</td>"
            f"<td>{_e(c.reference)}</td><td class=\"verdict\">{c.verdict}</td></tr>"
        )
    return (
        "<table class=\"checks\"><caption>theorem checks</caption><thead><tr><th>check</th><th>measured</th>"
        "<th>bound or reference</th><th>result</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


# ----------------------------------------------------------------------------------------------------
# the page
def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _paragraphs(text: str) -> str:
    parts = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "".join(f"<p>{_e(' '.join(p.split()))}</p>" for p in parts)


def _figure_html(fig: Figure) -> str:
    data = base64.b64encode(fig.png_bytes()).decode("ascii")
    caption = fig.caption or (fig.path.name if fig.path is not None else "")
    return (
        f"<figure><img src=\"data:image/png;base64,{data}\" alt=\"{_e(caption)}\" loading=\"eager\">"
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _slugs(titles: Iterable[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for t in titles:
        base = re.sub(r"[^a-z0-9]+", "-", t.lower()).strip("-") or "section"
        k = seen.get(base, 0)
        seen[base] = k + 1
        out.append(base if k == 0 else f"{base}-{k + 1}")
    return out


def _section_html(section: Section, anchor: str) -> str:
    parts = [f"<section id=\"{anchor}\" class=\"{'slot' if section.slot else 'content'}\">",
             f"<h2>{_e(section.title)}</h2>", _paragraphs(section.text)]
    if section.checks:
        parts.append(_checks_html(section.checks))
    for frag in section.html:
        parts.append(f"<div class=\"interactive\">{frag.html}</div>")
    if section.figures:
        parts.append("<div class=\"figures\">" + "".join(_figure_html(f) for f in section.figures) + "</div>")
    if section.tables:
        parts.append("<div class=\"tables\">" + "".join(_table_html(k, v) for k, v in section.tables.items())
                     + "</div>")
    parts.append("</section>")
    return "".join(parts)


def _summary(sections: Sequence[Section]) -> tuple[int, int, int]:
    checks = [c for s in sections for c in s.checks]
    return (sum(c.passed is True for c in checks), sum(c.passed is False for c in checks),
            sum(c.passed is None for c in checks))


def render_report(sections: Sequence[Section], title: str = "tokensphere report") -> str:
    """The whole page as one HTML string: head (style, self-check, plotly.js if needed), contents, sections."""
    sections = list(sections)
    for s in sections:
        if not isinstance(s, Section):
            raise ValueError(f"report sections must be Section objects, got {type(s).__name__}")
    anchors = _slugs(s.title for s in sections)
    needs_plotly = any(f.plotly for s in sections for f in s.html)
    passed, failed, na = _summary(sections)
    verdict = (
        f"<p class=\"overall {'fail' if failed else 'pass'}\">theorem checks: {passed} passed, {failed} failed"
        + (f", {na} not applicable" if na else "") + "</p>"
        if passed + failed + na else ""
    )
    bad = " <span class=\"bad\">(a check failed)</span>"
    toc = "".join(
        f"<li><a href=\"#{a}\">{_e(s.title)}</a>{bad if any(c.passed is False for c in s.checks) else ''}</li>"
        for a, s in zip(anchors, sections)
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "<!DOCTYPE html>",
        "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_SELF_CHECK_JS}</script>",
    ]
    if needs_plotly:
        from .viewer import plotly_js

        head.append(f"<script>{_script_safe(plotly_js())}</script>")
    body = [
        "</head><body>",
        f"<header><h1>{_e(title)}</h1><p class=\"meta\">tokensphere {_e(__version__)} · generated {stamp} · "
        "self-contained page (no network access needed)</p>" + verdict + "</header>",
        f"<nav><h2>Contents</h2><ol>{toc}</ol></nav>" if len(sections) > 1 else "",
        "<main>" + "".join(_section_html(s, a) for s, a in zip(sections, anchors)) + "</main>",
        "<footer>Geshkovski, Letrouit, Polyanskiy, Rigollet, “A mathematical perspective on Transformers”, "
        "arXiv:2312.10794.</footer>",
        "</body></html>",
    ]
    return "\n".join(head + body) + "\n"


def write_report(
    sections: Sequence[Section], out_dir: str | os.PathLike, title: str = "tokensphere report", *,
    overwrite: bool = False,
) -> Path:
    """Render ``sections`` and write ``out_dir/index.html`` atomically (temporary sibling, then os.replace).

    out_dir is created if needed. An existing index.html is replaced only with ``overwrite``; other files in
    out_dir are left alone. Returns the path of index.html. Raises ValueError for an unusable out_dir.
    """
    folder = Path(out_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory, got the file {folder}")
    index = folder / "index.html"
    if index.exists() and not overwrite:
        raise ValueError(f"out already holds a report: {index} (pass overwrite=True / --overwrite to replace it)")
    page = render_report(sections, title)  # before touching the disk: a failure leaves nothing behind
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"out is not writable: cannot create {folder} ({exc.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise ValueError(f"out is not writable: {folder}")
    tmp = folder / f".index.html.tmp-{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, index)
    finally:
        if tmp.exists():
            tmp.unlink()
    return index


def _script_safe(js: str) -> str:
    """Inline JavaScript must not contain "</script" (it would end the element early)."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)


# The self-check: records script errors, broken images and network fetches as data attributes on <body>.
_SELF_CHECK_JS = r"""
(function () {
  var errors = [];
  function note(msg) { errors.push(String(msg)); publish(); }
  function publish() {
    if (!document.body) return;
    document.body.dataset.jsErrors = String(errors.length);
    document.body.dataset.jsErrorMessages = errors.join(" | ").slice(0, 2000);
  }
  window.addEventListener("error", function (e) {
    if (e.target && e.target !== window && e.target.tagName) {
      if (e.target.tagName === "IMG") return;  // counted by the broken-image scan after load
      note("failed to load " + e.target.tagName.toLowerCase() + " " + String(e.target.src || e.target.href || "").slice(0, 60));
    } else {
      note((e.message || "script error") + " at " + (e.filename || "page").slice(0, 60) + ":" + (e.lineno || 0));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (e) { note("unhandled rejection: " + (e.reason && e.reason.message || e.reason)); });
  var consoleError = console.error;
  console.error = function () {
    note("console.error: " + Array.prototype.join.call(arguments, " "));
    return consoleError.apply(console, arguments);
  };
  window.addEventListener("load", function () {
    var broken = [];
    Array.prototype.forEach.call(document.images, function (img) {
      if (!img.complete || img.naturalWidth === 0) broken.push(img.alt || "image");
    });
    var external = (performance.getEntriesByType ? performance.getEntriesByType("resource") : []).filter(
      function (r) { return /^https?:/i.test(r.name); });
    var b = document.body;
    b.dataset.images = String(document.images.length);
    b.dataset.brokenImages = String(broken.length);
    b.dataset.brokenImageNames = broken.join(" | ");
    b.dataset.externalRequests = String(external.length);
    b.dataset.plotlyViews = String(document.querySelectorAll(".js-plotly-plot").length);
    publish();
    b.dataset.ready = "1";
  });
})();
"""

_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg-soft: #f6f8fa;
        --pass-fg: #116329; --pass-bg: #dafbe1; --fail-fg: #a40e26; --fail-bg: #ffebe9; --na-bg: #eef1f4; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1180px; padding: 1.5rem 1.5rem 3rem; color: var(--fg); background: #fff;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 1.7rem; margin: 0 0 .2rem; }
h2 { font-size: 1.3rem; margin: 0 0 .6rem; border-bottom: 1px solid var(--line); padding-bottom: .3rem; }
header { margin-bottom: 1rem; }
.meta { color: var(--muted); margin: 0; font-size: .9rem; }
.overall { display: inline-block; margin: .6rem 0 0; padding: .25rem .7rem; border-radius: 4px; font-weight: 600; }
.overall.pass { color: var(--pass-fg); background: var(--pass-bg); }
.overall.fail { color: var(--fail-fg); background: var(--fail-bg); }
nav { background: var(--bg-soft); border: 1px solid var(--line); border-radius: 6px; padding: .6rem 1rem;
      margin-bottom: 1.5rem; }
nav h2 { font-size: 1rem; border: 0; margin: 0; padding: 0; }
nav ol { margin: .3rem 0 0; padding-left: 1.4rem; }
nav .bad { color: var(--fail-fg); font-weight: 600; }
a { color: #0969da; }
section { margin: 0 0 2.2rem; }
section.slot { border: 2px dashed #8c959f; border-radius: 6px; padding: 1rem; background: var(--bg-soft);
               color: var(--muted); }
.figures { display: flex; flex-direction: column; gap: 1rem; margin: .8rem 0; }
figure { margin: 0; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .85rem; margin-top: .2rem; }
.tables { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; margin: .8rem 0; }
table { border-collapse: collapse; font-size: .85rem; }
caption { text-align: left; font-weight: 600; padding: 0 0 .2rem; color: var(--muted); }
th, td { border: 1px solid var(--line); padding: .22rem .5rem; text-align: left; vertical-align: top; }
table.kv { max-width: 100%; }
table.kv th { background: var(--bg-soft); font-weight: 500; white-space: nowrap; }
table.kv td { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace;
              word-break: break-word; max-width: 46rem; }
td.more { color: var(--muted); font-style: italic; }
table.checks { width: 100%; margin: .6rem 0; }
table.checks thead th { background: var(--bg-soft); }
table.checks td.verdict { font-weight: 700; text-transform: uppercase; text-align: center; width: 5.5rem; }
table.checks tr.pass td.verdict { color: var(--pass-fg); background: var(--pass-bg); }
table.checks tr.fail td { background: var(--fail-bg); }
table.checks tr.fail td.verdict { color: #fff; background: #cf222e; }
table.checks tr.na td.verdict { color: var(--muted); background: var(--na-bg); }
.detail { color: var(--muted); font-size: .8rem; }
.interactive { margin: .8rem 0; border: 1px solid var(--line); border-radius: 4px; }
footer { color: var(--muted); font-size: .8rem; border-top: 1px solid var(--line); padding-top: .6rem; }
"""
