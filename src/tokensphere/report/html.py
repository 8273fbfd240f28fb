"""Page assembly: sections → one self-contained HTML file that opens offline.

A report is a list of :class:`~tokensphere.report.elements.Section` objects (title, short text, PNG figures
embedded as base64 ``data:`` URIs, key/value tables, :class:`~tokensphere.report.elements.Verdict` rows coloured
pass/fail, and optional interactive HTML fragments such as the plotly viewer). :func:`render_report` turns them
into a string; :func:`write_report` writes ``DIR/index.html`` atomically. Nothing on the page refers to the
network: no CDN, no web font; the plotly JavaScript, when a fragment needs it, is inlined once in ``<head>``.

The page carries a tiny self-test script: it counts script errors (``window.onerror``, unhandled promise
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
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..io import atomic_path, validate_output_path, package_version
from .elements import Figure, Section, Verdict
from .viewer import plotly_js

__all__ = ["flatten", "render_report", "write_report"]

MAX_TABLE_ROWS = 80  # longer tables are cut, with a final "… k more" row
MAX_CELL_CHARS = 240  # long values (lists of β, seeds) are shortened in the middle


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


def _verdicts_html(verdicts: Sequence[Verdict]) -> str:
    rows = []
    for v in verdicts:
        detail = f"<div class=\"detail\">{_e(v.detail)}</div>" if v.detail else ""
        rows.append(
            f"<tr class=\"{v.outcome.replace('/', '')}\"><td>{_e(v.name)}{detail}</td><td>{_e(v.measured)}</td>"
            f"<td>{_e(v.reference)}</td><td class=\"outcome\">{v.outcome}</td></tr>"
        )
    return (
        "<table class=\"verdicts\"><thead><tr><th>statement</th><th>measured</th>"
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
    parts = [f"<section id=\"{anchor}\">", f"<h2>{_e(section.title)}</h2>", _paragraphs(section.text)]
    if section.verdicts:
        parts.append(_verdicts_html(section.verdicts))
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
    rows = [v for s in sections for v in s.verdicts]
    return (sum(v.passed is True for v in rows), sum(v.passed is False for v in rows),
            sum(v.passed is None for v in rows))


def render_report(sections: Sequence[Section], title: str = "tokensphere report") -> str:
    """The whole page as one HTML string: head (style, self-test, plotly.js if needed), contents, sections."""
    sections = list(sections)
    for s in sections:
        if not isinstance(s, Section):
            raise ValueError(f"report sections must be Section objects, got {type(s).__name__}")
    anchors = _slugs(s.title for s in sections)
    needs_plotly = any(f.plotly for s in sections for f in s.html)
    passed, failed, na = _summary(sections)
    verdict = (
        f"<p class=\"overall {'fail' if failed else 'pass'}\">verdicts: {passed} passed, {failed} failed"
        + (f", {na} not applicable" if na else "") + "</p>"
        if passed + failed + na else ""
    )
    bad = " <span class=\"bad\">(a verdict failed)</span>"
    toc = "".join(
        f"<li><a href=\"#{a}\">{_e(s.title)}</a>{bad if any(v.passed is False for v in s.verdicts) else ''}</li>"
        for a, s in zip(anchors, sections)
    )
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    head = [
        "<!DOCTYPE html>",
        "<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_SELF_TEST_JS}</script>",
    ]
    if needs_plotly:
        head.append(f"<script>{_script_safe(plotly_js())}</script>")
    body = [
        "</head><body>",
        f"<header><h1>{_e(title)}</h1><p class=\"meta\">tokensphere {_e(package_version())} · generated {stamp} · "
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
    """Render ``sections`` and write ``out_dir/index.html`` atomically (:func:`tokensphere.io.atomic_path`).

    out_dir is created if needed. An existing index.html is replaced only with ``overwrite``; other files in
    out_dir are left alone. Returns the path of index.html. Raises ValueError for an unusable out_dir.
    """
    folder = Path(out_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"out must be a directory, got the file {folder}")
    page = render_report(sections, title)  # before touching the disk: a failure leaves nothing behind
    index = validate_output_path(folder / "index.html", overwrite=overwrite)  # checks; the write makes out_dir
    with atomic_path(index) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return index


def _script_safe(js: str) -> str:
    """Inline JavaScript must not contain "</script" (it would end the element early)."""
    return re.sub(r"</(script)", r"<\\/\1", js, flags=re.IGNORECASE)


# The self-test: records script errors, broken images and network fetches as data attributes on <body>.
_SELF_TEST_JS = r"""
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
table.verdicts { width: 100%; margin: .6rem 0; }
table.verdicts thead th { background: var(--bg-soft); }
table.verdicts td.outcome { font-weight: 700; text-transform: uppercase; text-align: center; width: 5.5rem; }
table.verdicts tr.pass td.outcome { color: var(--pass-fg); background: var(--pass-bg); }
table.verdicts tr.fail td { background: var(--fail-bg); }
table.verdicts tr.fail td.outcome { color: #fff; background: #cf222e; }
table.verdicts tr.na td.outcome { color: var(--muted); background: var(--na-bg); }
.detail { color: var(--muted); font-size: .8rem; }
.interactive { margin: .8rem 0; border: 1px solid var(--line); border-radius: 4px; }
footer { color: var(--muted); font-size: .8rem; border-top: 1px solid var(--line); padding-top: .6rem; }
"""
