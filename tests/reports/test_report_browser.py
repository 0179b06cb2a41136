"""The HTML report in a real headless browser (Debian's ``chromium``).

It must render with no console error (the page's Content-Security-Policy turns
any external load into one), and the sequence diagram and memory plot must be
in the rendered DOM and visible on the screenshot. Set ``BALLAST_SCREENSHOT_DIR``
to keep the screenshot (for example as a CI artifact).

CI needs the Debian package ``chromium`` (``apt-get install -y chromium``); there
the test fails rather than skips when it is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from ballast.reports.page import write_report

WIDTH, HEIGHT = 1280, 2400
# Colours drawn only by the diagram (failing-step band) and the plot (host free line).
BAND = (0xFD, 0xE2, 0xE2)
PLOT_LINE = (0x17, 0xBE, 0xCF)


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is required in CI: apt-get install -y chromium")
        pytest.skip("Debian's chromium is not installed here (apt-get install chromium); "
                    "CI runs this test")
    return exe


def run_browser(page: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--no-first-run", f"--user-data-dir={profile}", "--hide-scrollbars",
             "--enable-logging=stderr", "--v=0", *extra, page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, check=False)


def console_messages(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


def colour_pixels(png: Path, rgb: tuple[int, int, int], tol: int = 6) -> int:
    from matplotlib.image import imread
    img = imread(str(png))[:, :, :3] * 255.0
    diff = abs(img - rgb).max(axis=2)
    return int((diff <= tol).sum())


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from report_fixtures import reclaim_trace
    from ballast.model.trace import write_trace
    folder = tmp_path_factory.mktemp("browser")
    trace = folder / "reclaim_keeps_mapping.jsonl"
    write_trace(trace, reclaim_trace())
    [html] = write_report(trace, folder, ("html",))
    return html


def test_renders_without_console_errors_and_has_diagram_and_plot(page: Path) -> None:
    done = run_browser(page, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    dom = done.stdout
    assert re.search(r'<svg[^>]*class="sequence"', dom)
    assert re.search(r'<img[^>]*id="plot"[^>]*src="data:image/png;base64,', dom) or \
        re.search(r'<img[^>]*src="data:image/png;base64,[^"]*"[^>]*id="plot"', dom)
    assert "ballooned_pages_unbacked is violated" in dom


def test_screenshot_shows_diagram_and_plot(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = run_browser(page, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}")
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    assert console_messages(done.stderr) == []
    keep = os.environ.get("BALLAST_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / "counterexample-report.png")
    # The failing step's band spans the diagram; the plot's lines are drawn.
    assert colour_pixels(shot, BAND) > 20_000
    assert colour_pixels(shot, PLOT_LINE) > 300


def test_console_check_catches_a_page_that_loads_from_outside(page: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text(page.read_text(encoding="utf-8").replace(
        "<main>", '<main><img src="http://example.invalid/logo.png" alt="">', 1), encoding="utf-8")
    done = run_browser(bad, "--dump-dom")
    assert any("Content Security Policy" in m for m in console_messages(done.stderr))
