#!/usr/bin/env python3
"""Check a built leaderboard site in headless Chromium; print the findings as JSON.

Drives Chromium through the DevTools protocol over ``--remote-debugging-pipe`` (file descriptors
3 and 4, NUL-terminated JSON messages), so nothing but the Python standard library and a Chromium
binary is needed. For the index page and one dataset page it reports: the rendered rows of every
sortable table, the row order after clicking column headers once and twice (real mouse events),
every image with its ``naturalWidth``, every figure link (``<a href>`` around an image, loaded as an
image through the browser), the secondary-metrics checkbox before and after a real click on its label,
JavaScript errors, and every URL the page requested (to prove nothing external is loaded).
Screenshots of both pages are written to ``--screenshots``.

With ``--widths 400,1400`` the dataset page is also laid out at each viewport width (set with
``Emulation.setDeviceMetricsOverride``), screenshotted as ``<page>-<width>.png``, and the
``getBoundingClientRect()`` of the ``--table``'s Model header (the first one) and primary-metric
header (``th.primary``) is reported with the window scrolled down to the table but not sideways,
together with the page's scroll width and the Model header after the table is scrolled sideways to
its end (the Model column is sticky).

Usage::

    python scripts/browser_check.py SITE_DIR --page lb_spec.html --table table-random \
        --column Model --column r2 --screenshots /tmp/shots --widths 400,1400 [--chromium /usr/bin/chromium]

Exit status 0 when the browser could be driven (the caller judges the JSON), 2 otherwise.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-extensions", "--mute-audio", "--hide-scrollbars", "--remote-debugging-pipe"]
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium(explicit: str | None = None) -> str | None:
    """``explicit``, ``$PHONBENCH_CHROMIUM`` or the first Chromium-like binary on PATH."""
    for name in (explicit, os.environ.get("PHONBENCH_CHROMIUM"), *CANDIDATES):
        if name and (path := shutil.which(name)):
            return path
    return None


class Browser:
    """Minimal CDP client over the debugging pipe of a Chromium child process."""

    def __init__(self, binary: str, timeout: float = 30.0):
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="phonbench-chromium-")
        to_r, self._to_w = os.pipe()  # chrome reads commands on fd 3
        self._from_r, from_w = os.pipe()  # chrome writes replies on fd 4

        def wire() -> None:  # runs in the child before exec
            os.dup2(to_r, 3)
            os.dup2(from_w, 4)

        self.proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire, pass_fds=(3, 4),
        )
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._next = 0
        self.events: list[dict] = []
        self.session: str | None = None

    def close(self) -> None:
        try:
            self.send("Browser.close", session=False)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_w, self._from_r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from Chromium before the deadline")
            ready, _, _ = select.select([self._from_r], [], [], left)
            if ready:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"Chromium closed the pipe (exit status {self.proc.poll()})")
                self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        """Send a command (to the attached page unless ``session=False``) and return its result."""
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        for i, ev in enumerate(self.events):
            if ev["method"] == method:
                return self.events.pop(i)
        while True:
            msg = self._read_message(deadline)
            if msg.get("method") == method:
                return msg
            if "method" in msg:
                self.events.append(msg)

    def open_page(self, width: int = 1280, height: int = 900) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")
        self.set_width(width, height)

    def set_width(self, width: int, height: int = 900) -> None:
        self.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def navigate(self, url: str) -> None:
        self.events = [e for e in self.events if e["method"] != "Page.loadEventFired"]
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        res = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails'].get('text')}")
        return res["result"].get("value")

    def click(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            params = {"type": kind, "x": x, "y": y}
            if kind != "mouseMoved":
                params.update(button="left", clickCount=1)
            self.send("Input.dispatchMouseEvent", params)

    def screenshot(self, path: Path) -> None:
        size = self.send("Page.getLayoutMetrics")["cssContentSize"]
        clip = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 8000), "scale": 1}
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip})
        path.write_bytes(base64.b64decode(data["data"]))

    def drain(self) -> None:
        """Read events that are already queued (non-blocking)."""
        while True:
            ready, _, _ = select.select([self._from_r], [], [], 0.2)
            if not ready and b"\0" not in self._buf:
                return
            self.events.append(self._read_message(time.monotonic() + 1))


TABLES_JS = """(() => Array.from(document.querySelectorAll('table.sortable')).map(t => ({
  id: t.id,
  headers: Array.from(t.tHead.rows[0].cells).map(c => c.textContent.trim()),
  rows: Array.from(t.tBodies[0].rows).map(r => Array.from(r.cells).map(c => c.textContent.trim())),
  visible: t.getBoundingClientRect().height > 0
})))()"""

IMAGES_JS = """(async () => {
  const imgs = Array.from(document.images);
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return imgs.map(i => ({src: i.getAttribute('src'), complete: i.complete, naturalWidth: i.naturalWidth,
                         naturalHeight: i.naturalHeight}));
})()"""


FIGURE_LINKS_JS = """(async () => {
  const links = Array.from(document.querySelectorAll('a[href]')).filter(a => a.querySelector('img'));
  return Promise.all(links.map(a => new Promise(done => {
    const probe = new Image();
    const report = () => done({href: a.getAttribute('href'), img_src: a.querySelector('img').getAttribute('src'),
                               loaded: probe.naturalWidth > 0, naturalWidth: probe.naturalWidth});
    probe.onload = probe.onerror = report;
    probe.src = a.href;
  })));
})()"""

def _table_js(table: str | None) -> str:
    return f"document.getElementById({json.dumps(table)})" if table else "document.querySelector('table.sortable')"


def header_center(browser: Browser, table: str | None, column: str) -> tuple[float, float] | None:
    """Viewport coordinates of the centre of the first header of ``table`` starting with ``column``."""
    js = f"""(() => {{
      const t = {_table_js(table)};
      const th = t && Array.from(t.tHead.rows[0].cells).find(c => c.textContent.trim().startsWith({json.dumps(column)}));
      if (!th) return null;
      th.scrollIntoView({{block: 'center'}});
      const r = th.getBoundingClientRect();
      return [r.left + r.width / 2, r.top + r.height / 2];
    }})()"""
    pos = browser.evaluate(js)
    return tuple(pos) if pos else None


def column_state(browser: Browser, table: str | None, column: str) -> dict:
    """Row labels (``data-model`` or first cell), the column's cell texts and its ``aria-sort``."""
    js = f"""(() => {{
      const t = {_table_js(table)};
      const idx = Array.from(t.tHead.rows[0].cells).findIndex(c => c.textContent.trim().startsWith({json.dumps(column)}));
      return {{aria: t.tHead.rows[0].cells[idx].getAttribute('aria-sort'),
               rows: Array.from(t.tBodies[0].rows).map(r => r.getAttribute('data-model') || r.cells[0].textContent.trim()),
               values: Array.from(t.tBodies[0].rows).map(r => r.cells[idx].textContent.trim())}};
    }})()"""
    return browser.evaluate(js)


def check_sorting(browser: Browser, table: str | None, column: str) -> dict:
    """Click ``column``'s header twice with the mouse; report the order before and after each click."""
    out = {"table": table, "column": column}
    pos = header_center(browser, table, column)
    if pos is not None and pos == (0, 0):  # a hidden secondary column: tick the table's checkbox first
        out["revealed"] = "error" not in secondary_toggle(browser, table)
        pos = header_center(browser, table, column)
    if pos is None:
        out["error"] = f"no header starting with {column!r}"
        return out
    out["before"] = column_state(browser, table, column)
    browser.click(*pos)
    out["after_one_click"] = column_state(browser, table, column)
    browser.click(*header_center(browser, table, column))
    out["after_two_clicks"] = column_state(browser, table, column)
    return out


def _rect_js(name: str) -> str:
    return (f"const {name} = el => {{ if (!el) return null; const r = el.getBoundingClientRect(); return "
            "{text: el.textContent.trim(), left: r.left, right: r.right, top: r.top, bottom: r.bottom, "
            "width: r.width}; };")


def secondary_toggle(browser: Browser, table: str | None) -> dict:
    """Visible ``th.secondary`` headers of ``table`` before and after clicking its checkbox label."""
    count = f"Array.from({_table_js(table)}.querySelectorAll('th.secondary')).filter(th => th.offsetWidth > 0).length"
    out = {"total": browser.evaluate(f"{_table_js(table)}.querySelectorAll('th.secondary').length"),
           "visible_before": browser.evaluate(count)}
    pos = browser.evaluate(f"""(() => {{
      const t = {_table_js(table)};
      const label = t && document.querySelector('label[for="more-' + t.id + '"]');
      if (!label) return null;
      label.scrollIntoView({{block: 'center'}});
      const r = label.getBoundingClientRect();
      return [r.left + Math.min(r.width / 2, 40), r.top + r.height / 2];
    }})()""")
    if pos is None:
        out["error"] = "no checkbox label for the table"
        return out
    browser.click(*pos)
    out["visible_after_click"] = browser.evaluate(count)
    return out


def layout_at(browser: Browser, url: str, width: int, table: str | None, shot: Path | None) -> dict:
    """Lay the page out ``width`` CSS px wide; the table's Model and primary headers in the viewport."""
    browser.set_width(width)
    browser.navigate(url)
    if shot is not None:
        browser.screenshot(shot)
    out = browser.evaluate(f"""(() => {{
      {_rect_js("rect")}
      const t = {_table_js(table)};
      const wrap = t.closest('.table-wrap');
      const head = t.tHead.rows[0];
      window.scrollTo(0, Math.max(0, t.getBoundingClientRect().top + window.scrollY - 40));
      const out = {{viewport: {{width: document.documentElement.clientWidth, height: window.innerHeight}},
                   scroll: {{x: window.scrollX, y: window.scrollY}}, page_width: document.documentElement.scrollWidth,
                   model: rect(head.cells[0]), primary: rect(head.querySelector('th.primary'))}};
      if (wrap) {{
        wrap.scrollLeft = wrap.scrollWidth;
        out.table_scrolled_by = wrap.scrollLeft;
        out.model_after_table_scroll = rect(head.cells[0]);
        out.primary_after_table_scroll = rect(head.querySelector('th.primary'));
        wrap.scrollLeft = 0;
      }}
      return out;
    }})()""")
    out["width"] = width
    if shot is not None:
        out["screenshot"] = str(shot)
    return out


def check_page(browser: Browser, url: str, shot: Path | None, table: str | None, columns: list[str]) -> dict:
    browser.navigate(url)
    out: dict = {"url": url, "title": browser.evaluate("document.title"), "tables": browser.evaluate(TABLES_JS),
                 "images": browser.evaluate(IMAGES_JS), "figure_links": browser.evaluate(FIGURE_LINKS_JS)}
    if shot is not None:  # before sorting: the page as generated
        browser.screenshot(shot)
        out["screenshot"] = str(shot)
    if browser.evaluate(f"!!({_table_js(table)}) && !!{_table_js(table)}.querySelector('th.secondary')"):
        out["secondary_toggle"] = secondary_toggle(browser, table)
    out["sorts"] = []
    for column in columns:
        browser.navigate(url)  # fresh page: each column starts from the generated order
        out["sorts"].append(check_sorting(browser, table, column))
    return out


def run(site: Path, page: str, table: str | None, columns: list[str], shots: Path | None, chromium: str,
        widths: list[int] = ()) -> dict:
    browser = Browser(chromium)
    try:
        browser.open_page()
        result = {"chromium": chromium, "version": browser.send("Browser.getVersion", session=False).get("product")}
        if shots is not None:
            shots.mkdir(parents=True, exist_ok=True)
        result["index"] = check_page(browser, (site / "index.html").resolve().as_uri(),
                                     shots / "index.png" if shots else None, "overview", ["Dataset"])
        result["page"] = check_page(browser, (site / page).resolve().as_uri(),
                                    shots / Path(page).with_suffix(".png").name if shots else None, table, columns)
        url = (site / page).resolve().as_uri()
        result["widths"] = [layout_at(browser, url, w, table, shots / f"{Path(page).stem}-{w}.png" if shots else None)
                            for w in widths]
        browser.drain()
        result["requests"] = sorted({e["params"]["request"]["url"] for e in browser.events
                                     if e["method"] == "Network.requestWillBeSent"})
        result["js_errors"] = [e["params"]["exceptionDetails"].get("text", "") for e in browser.events
                               if e["method"] == "Runtime.exceptionThrown"]
        return result
    finally:
        browser.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("site", type=Path, help="site directory holding index.html")
    ap.add_argument("--page", required=True, help="dataset page to check, relative to the site")
    ap.add_argument("--table", default=None, help="id of the table to sort (default: the first sortable one)")
    ap.add_argument("--column", action="append", default=None,
                    help="header (prefix) to click for sorting; repeatable (default: Model)")
    ap.add_argument("--screenshots", type=Path, default=None, help="directory for PNG screenshots")
    ap.add_argument("--widths", type=lambda v: [int(w) for w in v.split(",") if w], default=[],
                    help="comma-separated viewport widths (CSS px) to lay the page out at, e.g. 400,1400")
    ap.add_argument("--chromium", default=None, help="Chromium binary (default: $PHONBENCH_CHROMIUM or PATH)")
    args = ap.parse_args(argv)
    binary = find_chromium(args.chromium)
    if binary is None:
        print(json.dumps({"error": "no Chromium binary found"}))
        return 2
    try:
        result = run(args.site, args.page, args.table, args.column or ["Model"], args.screenshots, binary,
                     args.widths)
    except (OSError, RuntimeError, TimeoutError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        return 2
    print(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
