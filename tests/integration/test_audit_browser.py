"""The HTML audit report in a real headless browser (Debian's chromium): it renders, its inline script runs,
the filter box, the "failing only" switch and the sortable columns work, from a file:// address with no
network. A screenshot is kept as a test artifact under build/test-artifacts/."""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness.ansible_run import COLLECTION_ROOT

from test_audit import AUDIT_PLAYBOOK, audit_vars

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = COLLECTION_ROOT / "build" / "test-artifacts" / "audit-report"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--hide-scrollbars"]


def chromium(*args: str, timeout: int = 120) -> str:
    """Run chromium once with a fresh profile; its stdout."""
    with tempfile.TemporaryDirectory(prefix="af-chromium-") as profile:
        proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


class Rows(HTMLParser):
    """Per table id: its body rows in document order, each (image name, hidden, data-status)."""

    def __init__(self):
        super().__init__()
        self.tables, self.attributes = {}, {}
        self._table = self._row = None
        self._depth_in_cell = 0
        self._text = ""

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.attributes[attrs["id"]] = attrs
        if tag == "body":
            self.attributes["body"] = attrs
        if tag == "table":
            self._table = attrs.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table and "data-status" in attrs:
            self._row = {"hidden": "hidden" in attrs, "status": attrs["data-status"], "cells": 0, "codes": 0}
            self._text = ""
        elif tag in ("td", "th") and self._row is not None:
            self._row["cells"] += 1
        elif tag == "code" and self._row is not None and self._row["cells"] == 1:
            self._row["codes"] += 1

    def handle_endtag(self, tag):
        if tag == "code" and self._row is not None and self._row["codes"] == 1:
            self._row["codes"] += 1
        if tag == "tr" and self._row is not None:
            self.tables[self._table].append((self._text.strip(), self._row["hidden"], self._row["status"]))
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        # The image name: the first <code> of the row's first cell.
        if self._row is not None and self._row["cells"] == 1 and self._row["codes"] == 1:
            self._text += data


def dom(report: Path, fragment: str = "") -> Rows:
    parser = Rows()
    parser.feed(chromium("--dump-dom", report.as_uri() + fragment))
    return parser


@pytest.fixture(scope="module")
def report(open_registry, tmp_path_factory):
    from harness.ansible_run import run_playbook
    report_dir = tmp_path_factory.mktemp("browser-report")
    run_playbook(AUDIT_PLAYBOOK, extra_vars=audit_vars(
        open_registry, report_dir, "fixtures/multi:latest", "fixtures/dockerlist:latest", "fixtures/single:amd64",
        "fixtures/single:arm64", "fixtures/no-such-repo:latest", audit_require_platforms=["linux/amd64", "linux/arm64"],
        # The built-in policies, as documented, without the two every fixture fails: two images pass.
        audit_policies="{{ audit_default_policies | rejectattr('name', 'in', ['source-annotation', 'multi-platform']) }}"))
    path = report_dir / "audit.html"
    assert path.exists()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / "audit.html")
    return path


def test_report_renders_and_filters_in_chromium(report, open_registry):
    h = open_registry.host
    started = time.monotonic()

    page = dom(report)
    assert page.attributes["body"].get("data-ready") == "1", "the inline script did not run"
    matrix = page.tables["matrix"]
    # Failing images first, then passing ones (input order within each).
    assert [name for name, _hidden, _status in matrix] == [
        f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64", f"{h}/fixtures/no-such-repo:latest",
        f"{h}/fixtures/multi:latest", f"{h}/fixtures/dockerlist:latest"]
    assert [status for *_rest, status in matrix] == ["error", "error", "error", "pass", "pass"]
    assert not any(hidden for _name, hidden, _status in matrix)

    filtered = dom(report, "#filter=SINGLE")   # case-insensitive, over the whole row, in both tables
    for table in ("matrix", "results"):
        assert [name for name, hidden, _status in filtered.tables[table] if not hidden] == [
            f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64"]

    # Several words must all match; a digest matches the rows that show it.
    multi_digest = open_registry.fixtures["multi"]["digest"]
    by_digest = dom(report, f"#filter=fixtures {multi_digest[7:30]}")
    assert [name for name, hidden, _status in by_digest.tables["matrix"] if not hidden] == [f"{h}/fixtures/multi:latest"]

    failing = dom(report, "#failing=1")
    assert [name for name, hidden, _status in failing.tables["matrix"] if not hidden] == [
        f"{h}/fixtures/single:amd64", f"{h}/fixtures/single:arm64", f"{h}/fixtures/no-such-repo:latest"]
    failing_arm64 = dom(report, "#failing=1&filter=arm64")
    assert [name for name, hidden, _status in failing_arm64.tables["matrix"] if not hidden] == [
        f"{h}/fixtures/single:arm64"]

    # Sorting: the image column of the policy results, descending.
    ordered = dom(report, "#sort=results.0.desc")
    names = [name for name, _hidden, _status in ordered.tables["results"]]
    assert names == sorted(names, reverse=True)
    assert ordered.attributes  # rendered

    screenshot = ARTIFACTS / "audit-report.png"
    screenshot.unlink(missing_ok=True)
    chromium(f"--screenshot={screenshot}", "--window-size=1400,1100", report.as_uri())
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20000
    elapsed = time.monotonic() - started
    (ARTIFACTS / "timing.txt").write_text(f"7 chromium runs (6 DOM dumps, 1 screenshot): {elapsed:.1f}s\n")


def png_pixels(path: Path) -> tuple:
    """(width, height, rows of RGBA bytes) of an 8-bit, non-interlaced RGB or RGBA PNG (what chromium writes)."""
    import struct
    import zlib
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunks.setdefault(kind, []).append(data[position + 8:position + 8 + length])
        position += 12 + length
    width, height, depth, colour, _compression, _filter, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"][0])
    assert depth == 8 and colour in (2, 6) and interlace == 0, (depth, colour, interlace)
    channels = 4 if colour == 6 else 3
    raw = zlib.decompress(b"".join(chunks[b"IDAT"]))
    stride = width * channels
    rows, previous = [], bytearray(stride)
    for row_index in range(height):
        start = row_index * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            up_left = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - up_left
                best = min((abs(estimate - left), 0, left), (abs(estimate - up), 1, up),
                           (abs(estimate - up_left), 2, up_left))[2]
                line[i] = (line[i] + best) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, channels, rows


@pytest.fixture(scope="module")
def wide_report(open_registry, tmp_path_factory):
    """A report as wide as audits get: eight required platforms, every built-in policy and the supply-chain
    columns, long image names."""
    from harness.ansible_run import run_playbook
    report_dir = tmp_path_factory.mktemp("wide-report")
    run = run_playbook(AUDIT_PLAYBOOK, extra_vars=audit_vars(
        open_registry, report_dir, "fixtures/multi:latest", "fixtures/dockerlist:latest", "fixtures/single:amd64",
        "fixtures/no-such-repo-with-a-rather-long-name-for-a-repository:release-candidate-2026-12-05",
        audit_require_platforms=["linux/amd64", "linux/arm64", "linux/arm/v7", "linux/arm/v6", "linux/ppc64le",
                                 "linux/s390x", "linux/riscv64", "linux/386"],
        audit_referrers=True, audit_fail_on_error=False))
    assert run.rc == 0, run.output
    path = report_dir / "audit.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / "audit-wide.html")
    return path


def test_the_report_fits_1280_pixels_without_horizontal_scrolling(wide_report):
    # The page's own measure: laid out no wider than the window.
    page = dom(wide_report)
    assert page.attributes["body"].get("data-ready") == "1"
    # --dump-dom runs at the default 800x600 unless told: measure at 1280.
    with tempfile.TemporaryDirectory(prefix="af-chromium-") as profile:
        proc = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,1000",
                               "--dump-dom", wide_report.as_uri()], capture_output=True, text=True, timeout=120,
                              check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    measured = Rows()
    measured.feed(proc.stdout)
    assert int(measured.attributes["body"]["data-scroll-width"]) <= 1280

    # The screenshot: the page's right margin (24 px of body margin) is background only; a table wider than
    # the window would run through it.
    screenshot = ARTIFACTS / "audit-report-1280.png"
    screenshot.unlink(missing_ok=True)
    chromium(f"--screenshot={screenshot}", "--window-size=1280,2400", wide_report.as_uri())
    width, height, channels, rows = png_pixels(screenshot)
    assert width == 1280
    margin = [(y, x) for y in range(height) for x in range(width - 16, width)
              if rows[y][x * channels:x * channels + 3] != b"\xff\xff\xff"]
    assert margin == [], f"{len(margin)} non-background pixels in the right margin, first at {margin[:3]}"
    # The tables do reach across the page (the check above is not vacuous).
    middle = height // 3
    assert any(rows[middle][x * channels:x * channels + 3] != b"\xff\xff\xff" for x in range(width - 200, width - 24))
