"""Headless Chromium for the listening-page tests: a screenshot, and what the page loaded.

`probe` copies the page beside itself with a test-only script appended; after the page's load event the script
waits (in Chromium's virtual time) until every ``<audio>`` has its metadata or an error, then writes into the DOM
what each player and picture loaded and how wide the document is. ``--dump-dom`` returns that DOM.
Run as a script, it screenshots a page: ``python tests/browser.py PAGE PNG [WIDTH HEIGHT]``.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--disable-dev-shm-usage", "--mute-audio", "--autoplay-policy=user-gesture-required"]
PHONE = (390, 844)

PROBE = """
<script>
window.addEventListener('load', function () {
  var tries = 0;
  function done(a) { return a.readyState >= 1 || a.error !== null; }
  function report() {
    var audio = Array.prototype.slice.call(document.querySelectorAll('audio'));
    if (!audio.every(done) && tries++ < 100) { setTimeout(report, 50); return; }
    var out = {
      audio: audio.map(function (a) { return {src: a.getAttribute('src'), readyState: a.readyState,
        error: a.error ? a.error.code : 0, duration: isFinite(a.duration) ? a.duration : -1}; }),
      images: Array.prototype.map.call(document.images, function (i) {
        return {src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth}; }),
      innerWidth: window.innerWidth, scrollWidth: document.documentElement.scrollWidth,
      missing: document.querySelectorAll('.missing').length
    };
    var pre = document.createElement('pre');
    pre.id = 'v2s-probe';
    pre.textContent = JSON.stringify(out);
    document.body.appendChild(pre);
  }
  report();
});
</script>
"""


def find_chromium() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(page: Path, extra: list[str], timeout: float = 60) -> str:
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("chromium is not installed")
    with tempfile.TemporaryDirectory(prefix="v2s-chromium-") as profile:
        result = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *extra, page.resolve().as_uri()],
                                capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"chromium exited with {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def screenshot(page: Path, png: Path, size: tuple[int, int] = PHONE, budget_ms: int = 3000) -> Path:
    """A PNG of the page's first ``size`` pixels, as a browser window of that size shows it."""
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    _run(page, [f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}"])
    if not png.is_file():
        raise RuntimeError("chromium wrote no screenshot")
    return png


def probe(page: Path, size: tuple[int, int] = PHONE, budget_ms: int = 10000) -> dict:
    """Load ``page`` from file:// and return what it loaded: ``{"audio": [{src, readyState, error, duration}],
    "images": [{src, complete, width}], "innerWidth", "scrollWidth", "missing"}``."""
    page = Path(page)
    copy = page.with_name(f".probe-{page.name}")
    copy.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"), encoding="utf-8")
    try:
        dom = _run(copy, ["--dump-dom", f"--window-size={size[0]},{size[1]}", f"--virtual-time-budget={budget_ms}"])
    finally:
        copy.unlink()
    found = re.search(r'<pre id="v2s-probe">(.*?)</pre>', dom, re.S)
    if not found:
        raise RuntimeError("the probe wrote nothing: the page did not finish loading")
    return json.loads(html.unescape(found.group(1)))


if __name__ == "__main__":
    width, height = (int(sys.argv[3]), int(sys.argv[4])) if len(sys.argv) > 4 else PHONE
    print(screenshot(Path(sys.argv[1]), Path(sys.argv[2]), (width, height)))
