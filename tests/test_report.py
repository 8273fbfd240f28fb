"""The HTML report: built from a tiny run, a tiny phase diagram and a figure folder, it is self-contained
(no http(s) resource, images as data URIs, plotly.js inlined once), it renders in headless Chromium without
script errors or broken images, its checks can fail, and ``tokensphere report`` rejects bad input with one line
and exit code 2."""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure as MplFigure
from typer.testing import CliRunner

import tokensphere as ts
from tokensphere import Trajectory
from tokensphere.cli import app
from tokensphere.plot import frame_indices
from tokensphere.report import (
    Figure,
    Section,
    Verdict,
    energy_verdicts,
    render_report,
    viewer_figure,
    write_report,
)
from tokensphere.report.viewer import MAX_FRAMES, plotly_js
from tokensphere.sweep.phase import PhaseDiagram, run_phase_diagram
from tokensphere.theory import uniform_pair_probability

runner = CliRunner()
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
# --enable-unsafe-swiftshader: software WebGL for the plotly 3-D view on a machine without a GPU (the automatic
# fallback is deprecated in Chromium); the page is our own, trusted content.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--enable-unsafe-swiftshader", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
    "--hide-scrollbars", "--virtual-time-budget=5000",
]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium not found (CI installs it: .ci/install-chromium)")


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, word: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and word in lines[0], lines[0]
    assert "Traceback" not in result.output


def _png(path: Path, seed: int = 0) -> Path:
    fig = MplFigure(figsize=(3, 2))
    ax = fig.subplots()
    ax.plot(np.random.default_rng(seed).standard_normal(20))
    fig.savefig(path, dpi=60)
    return path


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_inputs")
    traj = ts.simulate(ts.Uniform(batch=2, n=6, d=3, seed=0), torch.tensor([1.0, 4.0]), t_max=2.0, save_at=5)
    traj.save(root / "run.zarr")
    spec = PhaseDiagram(dims=(2, 3), betas=(0.5, 2.0), t_max=1.0, n_times=3, n=4, batch=2, betas_per_unit=2)
    run_phase_diagram(spec, root / "phase.zarr")
    figures = root / "figures"
    figures.mkdir()
    _png(figures / "histogram.png")
    (figures / "histogram.json").write_text(json.dumps({"caption": "a test histogram", "bins": [0, 1, 2]}))
    return {"run": root / "run.zarr", "phase": root / "phase.zarr", "figures": figures}


@pytest.fixture(scope="module")
def report(inputs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "site"
    res = invoke("report", inputs["run"], inputs["phase"], inputs["figures"], "--out", out)
    assert res.exit_code == 0, res.output
    index = out / "index.html"
    assert res.stdout.strip().splitlines()[-1] == str(index)
    return index


class _Resources(HTMLParser):
    """Every src/href/srcset/data/poster attribute and every <link>, outside script text."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str, str]] = []
        self.links: list[dict] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action") and value is not None:
                self.urls.append((tag, name, value))
        if tag == "link":
            self.links.append(dict(attrs))


def test_report_is_self_contained(report, inputs):
    page = report.read_text(encoding="utf-8")
    parser = _Resources()
    parser.feed(page)
    external = [u for u in parser.urls if re.match(r"\s*(https?:)?//", u[2], re.IGNORECASE)]
    assert not external, external[:5]
    assert not parser.links, parser.links  # no stylesheet or font links at all
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*https?://""", page.replace(plotly_js(), ""), re.IGNORECASE)
    assert "@import" not in page and "@font-face" not in page
    images = [u for u in parser.urls if u[0] == "img"]
    assert images and all(u[2].startswith("data:image/png;base64,") for u in images)
    # trajectory energy figure, phase-diagram heat map, the folder's PNG (embedded byte for byte)
    assert len(images) == 3
    png = base64.b64encode((inputs["figures"] / "histogram.png").read_bytes()).decode()
    assert f"data:image/png;base64,{png}" in page
    assert 'class="plotly-graph-div"' in page
    assert page.count(plotly_js()[:300]) == 1  # plotly.js inlined once for the two views
    assert page.count('class="plotly-graph-div"') == 2  # one view per β (β = 1, 4)
    assert "a test histogram" in page  # the JSON next to the PNG became a table and a caption
    assert "real-model issue" not in page and "Figure 1 —" not in page  # no developer placeholder on the page
    assert '<td class="outcome">pass</td>' in page and '<td class="outcome">fail</td>' not in page
    assert "step through all 5 saved times" in page  # the viewer text for T = 5 ≤ MAX_FRAMES
    assert f"tokensphere {ts.__version__} ·" in page


def _dump_dom(page: Path, profile: Path) -> tuple[dict[str, str], str]:
    """Load ``page`` in headless Chromium; return the self-check attributes of <body> and Chromium's log."""
    res = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
         "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    body = re.search(r"<body([^>]*)>", res.stdout)
    assert body, res.stdout[:500]
    attrs = dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))
    assert attrs.get("ready") == "1", attrs  # the load handler ran
    return attrs, res.stderr


# Appended to a copy of the page by the browser test: after load, jump every 3-D view to its last animation
# frame (what the slider's end does), so invalid frames would raise in the page.
_ANIMATE = """<script>window.addEventListener("load", function () {
  var views = Array.prototype.slice.call(document.querySelectorAll(".js-plotly-plot"));
  Promise.all(views.map(function (gd) {
    return Plotly.animate(gd, [String(gd._transitionData._frames.length - 1)],
                          {mode: "immediate", frame: {duration: 0, redraw: true}, transition: {duration: 0}});
  })).then(function () { document.body.dataset.animated = String(views.length); });
});</script></body>"""


@needs_chromium
def test_report_renders_in_chromium(report, tmp_path):
    probe = tmp_path / "index.html"  # the page plus the animation probe (its images are inline: any folder works)
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", _ANIMATE), encoding="utf-8")
    attrs, log = _dump_dom(probe, tmp_path / "profile-dom")
    assert attrs["js-errors"] == "0", attrs.get("js-error-messages")
    assert attrs["broken-images"] == "0", attrs.get("broken-image-names")
    assert attrs["images"] == "3"
    assert attrs["external-requests"] == "0"
    assert attrs["plotly-views"] == "2"  # plotly drew both views (it adds .js-plotly-plot)
    assert attrs.get("animated") == "2", attrs
    uncaught = [line for line in log.splitlines() if "CONSOLE" in line and "Uncaught" in line]
    assert not uncaught, uncaught

    shot = tmp_path / "page.png"
    res = subprocess.run(
        [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile-shot'}", f"--screenshot={shot}",
         "--window-size=1280,2000", report.resolve().as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert res.returncode == 0 and shot.exists(), res.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        assert im.format == "PNG" and im.size == (1280, 2000)
        pixels = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 10  # not a blank page
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 100  # text, figures and colours, not a flat fill


@needs_chromium
def test_chromium_self_check_sees_script_errors_and_broken_images(tmp_path):
    """The browser test can fail: a throwing script and an undecodable image are both reported."""
    bad = Section("broken", html=['<img alt="bad" src="data:image/png;base64,AAAA">',
                                  "<script>window.noSuchFunction();</script>"])
    attrs, _ = _dump_dom(write_report([bad], tmp_path / "site"), tmp_path / "profile")
    assert attrs["js-errors"] == "1" and "noSuchFunction" in attrs["js-error-messages"]
    assert attrs["broken-images"] == "1" and attrs["broken-image-names"] == "bad"


def test_energy_verdict_passes_on_the_flow_and_fails_when_time_runs_backwards(inputs):
    traj = Trajectory.load(inputs["run"])
    rows = energy_verdicts(traj)
    assert len(rows) == 2 and all(r.passed for r in rows)  # one row per β
    backwards = Trajectory(traj.times, traj.positions.flip(0), traj.model, traj.solver, traj.steps, traj.rejected,
                           traj.event_time, traj.metadata)
    assert not any(r.passed for r in energy_verdicts(backwards))


def test_energy_verdict_repulsive_and_not_applicable():
    rep = ts.simulate(ts.Uniform(batch=2, n=5, d=3, seed=1), 2.0, V="repulsive", t_max=1.0, save_at=6)
    rows = energy_verdicts(rep)
    assert all(r.passed for r in rows) and "non-increasing" in rows[0].name
    general = ts.simulate(ts.Uniform(batch=1, n=5, d=3, seed=1), 2.0, QK=torch.eye(3) * 0.5, t_max=1.0, save_at=3)
    rows = energy_verdicts(general)
    assert len(rows) == 1 and rows[0].passed is None


def test_viewer_text_names_the_frames_shown():
    from tokensphere.report import trajectory_sections

    traj = ts.simulate(ts.Uniform(batch=1, n=4, d=3, seed=0), 1.0, t_max=1.0, save_at=MAX_FRAMES + 5)
    view = trajectory_sections(traj, "long", figures=False)[-1]
    assert f"step through {MAX_FRAMES} of the {MAX_FRAMES + 5} saved times" in view.text


def test_uniform_pair_probability_closed_forms():
    delta = 1e-3
    assert math.isclose(uniform_pair_probability(3, delta), delta / 2, rel_tol=1e-12)  # Archimedes
    assert math.isclose(uniform_pair_probability(2, delta), math.acos(1 - delta) / math.pi, rel_tol=1e-10)


def test_viewer_frames_and_circle():
    assert frame_indices(10, max_frames=MAX_FRAMES).tolist() == list(range(10))
    idx = frame_indices(151, max_frames=MAX_FRAMES)
    assert len(idx) == MAX_FRAMES == 60 and idx[0] == 0 and idx[-1] == 150
    x = torch.nn.functional.normalize(torch.randn(151, 2, 5, 2, dtype=torch.float64), dim=-1)
    fig = viewer_figure(x, torch.linspace(0, 1, 151), system=1)
    assert len(fig.frames) == len(idx) and len(fig.layout.sliders[0].steps) == len(idx)
    assert np.allclose(np.asarray(fig.frames[-1].data[0].z, dtype=float), 0)  # d = 2 on the equator
    with pytest.raises(ValueError, match="d = 4"):
        viewer_figure(torch.zeros(3, 1, 2, 4), torch.arange(3.0))
    with pytest.raises(ValueError, match="system"):
        viewer_figure(x, torch.linspace(0, 1, 151), system=2)


def test_section_api_escapes_colours_and_refuses_bad_input(tmp_path):
    png = _png(tmp_path / "f.png")
    sections = [
        Section("A <b>title</b>", "text with <script>alert(1)</script>", figures=[(png, "caption")],
                tables={"settings": {"n": 3, "nested": {"beta": [1.0, 2.0]}}},
                verdicts=[Verdict("good", "1", "≤ 2", True), Verdict("bad", "3", "≤ 2", False),
                          Verdict("info", "-", "-", None)]),
        Section("Bytes", figures=[Figure(data=png.read_bytes(), caption="from bytes")]),
    ]
    page = render_report(sections, "T")
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert '<tr class="fail">' in page and '<tr class="pass">' in page and '<tr class="na">' in page
    assert "1 passed, 1 failed, 1 not applicable" in page
    assert "nested.beta" in page and "[1, 2]" in page
    assert page.count("data:image/png;base64,") == 2
    index = write_report(sections, tmp_path / "site")
    assert index.read_text(encoding="utf-8") .startswith("<!DOCTYPE html>")
    with pytest.raises(ValueError, match="overwrite"):
        write_report(sections, tmp_path / "site")
    write_report(sections, tmp_path / "site", overwrite=True)
    assert [p.name for p in (tmp_path / "site").iterdir()] == ["index.html"]  # no temporary file left behind
    (tmp_path / "not.png").write_text("hello")
    with pytest.raises(ValueError, match="PNG"):
        render_report([Section("x", figures=[tmp_path / "not.png"])])


def test_report_cli_errors(tmp_path, inputs):
    assert_one_line_error(invoke("report", tmp_path / "missing", "--out", tmp_path / "o1"), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(invoke("report", tmp_path / "empty", "--out", tmp_path / "o2"), "holds no")
    (tmp_path / "notes.txt").write_text("x")
    assert_one_line_error(invoke("report", tmp_path / "notes.txt", "--out", tmp_path / "o3"), "run must be")
    (tmp_path / "taken").mkdir()
    assert_one_line_error(invoke("report", inputs["figures"], "--out", tmp_path / "taken"), "--overwrite")
    assert_one_line_error(
        invoke("report", inputs["run"], "--system", "7", "--out", tmp_path / "o4"), "system must be"
    )
    # a bad input anywhere in the list is found before any page is written
    res = invoke("report", inputs["figures"], tmp_path / "missing", "--out", tmp_path / "o5")
    assert_one_line_error(res, "does not exist")
    assert not (tmp_path / "o5").exists()
    res = invoke("report", inputs["figures"], "--out", tmp_path / "taken", "--overwrite")
    assert res.exit_code == 0 and (tmp_path / "taken" / "index.html").exists()
    # never into a run it reads: the store itself, or a folder inside it
    before = sorted(p.name for p in inputs["run"].iterdir())
    for out in (inputs["run"], inputs["run"] / "page"):
        assert_one_line_error(invoke("report", inputs["run"], "--out", out, "--overwrite"), "inside")
    assert sorted(p.name for p in inputs["run"].iterdir()) == before


def test_a_folder_with_a_foreign_zarr_store_still_reports(tmp_path):
    """A probe folder holds figures and a zarr store that is neither a run nor a phase diagram: the report
    lists the store instead of refusing the folder."""
    import xarray as xr

    from tokensphere.report import sections_for

    fig = MplFigure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [0, 1])
    fig.savefig(tmp_path / "fig1_probe.png")
    xr.Dataset({"x": ("i", np.arange(3.0))}).to_zarr(tmp_path / "probe_positions.zarr", consolidated=False)
    sections = sections_for(tmp_path)
    assert len(sections) == 1 and "probe_positions.zarr" in sections[0].text
    assert len(sections[0].figures) == 1


def test_a_sweep_store_becomes_a_section_with_its_config_and_statistics(tmp_path):
    """`tokensphere report` reads a `tokensphere sweep` store: kind "sweep", the config table, one figure of the
    summarised statistics, and the done-units verdict."""
    from tokensphere.report.sections import input_kind, sweep_sections
    from tokensphere.sweep import parse_config, run_sweep

    cfg = parse_config("[sweep]\nseeds = 2\nt_max = 1.0\nn_times = 3\nstatistics = [\"pair_fraction\"]\n"
                       "summaries = [\"mean\", \"se\"]\n[model]\nn = 4\nd = 2\n[grid]\nbeta = [1.0, 2.0]\n")
    store = tmp_path / "s.zarr"
    run_sweep(cfg, store)
    assert input_kind(store) == "sweep"
    (sec,) = sweep_sections(store)
    assert sec.verdicts[0].passed and sec.figures and sec.tables["config"]["grid"] == [["beta", [1.0, 2.0]]]


def test_energy_verdict_is_not_applicable_to_a_noisy_run():
    """Monotone energy is a property of the deterministic flow: a run with noise gets "n/a", not a failure."""
    traj = ts.simulate(ts.Uniform(batch=2, n=6, d=3, seed=0), 1.0, noise=0.5, solver="geodesic", dt=0.01,
                       t_max=1.0, save_at=11, seed=3)
    rows = energy_verdicts(traj)
    assert len(rows) == 1 and rows[0].passed is None and "no noise" in rows[0].reference
