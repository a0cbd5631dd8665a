"""The report page in a real browser (headless Chromium): every image loads, a table sorts on a click and
filters on what is typed above it.

Needs Debian's `chromium` package (CI installs it); without it the test is skipped and says so."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

from scarce.cli.main import main

CHECK = """
<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const table = document.querySelector("table");
  const col = Array.from(table.tHead.rows[0].cells).findIndex(th => th.textContent.trim() === "val_loss");
  const values = () => Array.from(table.tBodies[0].rows).map(r => parseFloat(r.cells[col].textContent));
  const before = values();
  table.tHead.rows[0].cells[col].click();
  const up = values();
  table.tHead.rows[0].cells[col].click();
  const down = values();
  const box = table.previousElementSibling, first = table.tBodies[0].rows[0].cells[0].textContent.trim();
  box.value = first;
  box.dispatchEvent(new Event("input"));
  const shown = Array.from(table.tBodies[0].rows).filter(r => !r.hidden).map(r => r.cells[0].textContent.trim());
  box.value = "";
  box.dispatchEvent(new Event("input"));
  const cleared = Array.from(table.tBodies[0].rows).filter(r => !r.hidden).length;
  const out = document.createElement("pre");
  out.id = "scarce-check";
  out.textContent = JSON.stringify({images: images.length,
    loaded: images.filter(i => i.complete && i.naturalWidth > 0).length, before, up, down,
    first, shown, cleared,
    marker: table.tHead.rows[0].cells[col].getAttribute("aria-sort")});
  document.body.appendChild(out);
});
</script>
"""


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no headless browser: install Debian's chromium package (apt-get install chromium) to run the "
                "report's browser check")


def test_report_page_loads_every_image_sorts_and_filters_in_a_browser(sweep_store, tmp_path):
    browser = _browser()
    out = tmp_path / "r"
    assert main(["report", "--results", str(sweep_store / "res"), "--out", str(out)]) == 0
    page = (out / "report.html").read_text()
    check = out / "check.html"
    check.write_text(page.replace("</body>", CHECK + "</body>"))
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
                          "--dump-dom", check.as_uri()], capture_output=True, text=True, timeout=120).stdout
    found = re.search(r'<pre id="scarce-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"'))
    assert result["images"] == page.count("<img") >= 4 and result["loaded"] == result["images"]
    assert len(result["before"]) == 4
    assert result["up"] == sorted(result["before"]) and result["down"] == sorted(result["before"], reverse=True)
    assert result["marker"] == "descending"
    assert result["shown"] == [result["first"]] and result["cleared"] == 4  # run ids are unique: one row kept
