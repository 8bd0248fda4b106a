"""REPORT.html (#20): one self-contained, printable page per result (dataset, pipeline,
scores, charts, diagnostics, provenance, run notes) and one per ranking linking to them,
opened in a real browser: headless Chromium dumps its DOM and takes a screenshot."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest
from PIL import Image

from n4afs.tree.tree import Tree, parse_path
from n4afs.workspace import Workspace
from tests.tree_reading import listing, read

RESULT_SECTIONS = [
    "Dataset",
    "Pipeline",
    "Scores",
    "Charts",
    "Diagnostics",
    "Provenance",
    "Run notes",
]
RANKING_SECTIONS = ["Dataset", "Ranking", "RMSECV vs components", "Runs"]
NOTE = "Glucose, first calibration: snv then PLS"


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    ws = Workspace(tmp_path_factory.mktemp("report") / "ws")
    template = ["snv", {"pls": {"n_components": {"_or_": [2, 3]}}}]
    ws.run([template], ["chemotools:fermentation"], cv=3, test_size=0.2, name="glucose",
           note=NOTE)  # fmt: skip
    ws.run([["snv", "lda"]], ["chemotools:coffee"], cv=3, name="coffee")
    return ws


def chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    assert exe, "chromium is missing: scripts/setup.sh --test-tools installs it"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    return subprocess.run(
        [exe, *flags, *args], capture_output=True, text=True, timeout=120, check=True
    )


class Headings(HTMLParser):
    """The text of every <h2>, the src of every <img>, the href of every <a>."""

    def __init__(self) -> None:
        super().__init__()
        self.h2: list[str] = []
        self.images: list[str] = []
        self.links: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self._in_h2 = tag == "h2"
        if tag == "h2":
            self.h2.append("")
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "a":
            self.links.append(attrs.get("href", ""))

    def handle_endtag(self, tag):
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, data):
        if self._in_h2:
            self.h2[-1] += data


def in_browser(path) -> Headings:
    dom = chromium("--dump-dom", f"file://{path}").stdout
    parsed = Headings()
    parsed.feed(dom)
    return parsed


def non_blank_bands(png, bands: int = 10) -> int:
    """How many of `bands` horizontal strips of the screenshot hold drawn pixels."""
    image = Image.open(png).convert("L")
    width, height = image.size
    found = 0
    for i in range(bands):
        strip = image.crop((0, i * height // bands, width, (i + 1) * height // bands))
        low, high = strip.getextrema()
        found += high - low > 40
    return found


def test_a_results_report_shows_every_section_in_a_browser(ws, tmp_path):
    label = ws.best("fermentation").row.label
    assert "REPORT.html" in listing(ws, f"runs/fermentation/{label}")
    page = tmp_path / "REPORT.html"
    page.write_bytes(read(ws, f"runs/fermentation/{label}/REPORT.html"))
    dom = in_browser(page)
    assert dom.h2 == RESULT_SECTIONS
    # self-contained: every chart of the result inside, as a data URI
    charts = listing(ws, f"runs/fermentation/{label}/charts")
    assert len(dom.images) == len(charts) and "coefficients.png" in charts
    assert all(src.startswith("data:image/png;base64,") for src in dom.images)
    text = page.read_text("utf-8")
    assert NOTE in text and "RMSECV" in text and "Hotelling T²" in text
    assert not re.search(r"(src|href)=\"(https?:|/)", text)  # nothing fetched from elsewhere
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,2400", f"file://{page}")
    assert non_blank_bands(shot) >= 8


def test_a_classification_report_shows_precision_and_recall(ws, tmp_path):
    label = ws.best("coffee").row.label
    page = tmp_path / "REPORT.html"
    page.write_bytes(read(ws, f"runs/coffee/{label}/REPORT.html"))
    dom = in_browser(page)
    assert dom.h2 == RESULT_SECTIONS
    assert "precision" in page.read_text("utf-8")


def test_the_ranking_report_links_each_results_report(ws, tmp_path):
    page = tmp_path / "REPORT.html"
    page.write_bytes(read(ws, "runs/fermentation/REPORT.html"))
    dom = in_browser(page)
    assert dom.h2 == RANKING_SECTIONS
    labels = [r.row.label for r in ws.results("fermentation")]
    assert sorted(dom.links) == sorted(f"{label}/REPORT.html" for label in labels)
    for link in dom.links:  # relative links that resolve in the tree (and in any copy of it)
        assert ws.tree.lookup(parse_path(f"runs/fermentation/{link}")) is not None
    assert len(dom.images) == 1  # RMSECV vs components
    coffee = tmp_path / "coffee.html"
    coffee.write_bytes(read(ws, "runs/coffee/REPORT.html"))
    assert in_browser(coffee).h2 == ["Dataset", "Ranking", "Runs"]
    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,1400", f"file://{page}")
    assert non_blank_bands(shot) >= 6


def test_reports_are_the_same_bytes_from_a_fresh_tree(ws):
    label = ws.best("fermentation").row.label
    for path in (f"runs/fermentation/{label}/REPORT.html", "runs/fermentation/REPORT.html"):
        other = Tree(ws)
        assert bytes(other.read(other.lookup(parse_path(path)))) == read(ws, path)


def test_a_note_set_later_shows_in_the_report(ws):
    label = ws.best("coffee").row.label
    before = read(ws, f"runs/coffee/{label}/REPORT.html")
    run = ws.best("coffee").row.run_id
    ws.note(run, "coffee origins, LDA after SNV")
    after = read(ws, f"runs/coffee/{label}/REPORT.html")
    assert after != before and b"coffee origins, LDA after SNV" in after
