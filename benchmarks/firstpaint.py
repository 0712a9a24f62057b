"""`make bench-ui [ARGS=--rounds 5]`: first paint in headless Chromium, live pages against static copies (P13).

Goal P13 (PERF-REL-SEC.md): first paint of the incident list and of the 10k-event timeline in headless
Chromium (Debian's /usr/bin/chromium) at most 2 times the same page served as static HTML, and no request
over 2 s.

Steps: the bench database (its own, `watchpost_bench_ui`, seeded like `make bench`: 100k incidents and a
case with 10,000 timeline events), gunicorn on a free port (2 sync workers), a plain static file server
(Python's ThreadingHTTPServer) on another port. Each page is fetched once with the bench login and saved,
byte for byte, into the static server's folder with the app's CSS and htmx beside it: the reference is
exactly the same document, served without Django. Then, per round and interleaved (static, live), a fresh
browser context (cold cache) loads the page and reads `first-contentful-paint` from the Paint Timing API,
and every request's duration from Resource/Navigation Timing. The median over the rounds is compared.

A measurement, not a test: the exit status is 0 even when a goal fails (printed as FAIL).
Results go to benchmarks/results/firstpaint.json.
"""

import argparse
import functools
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
os.environ.setdefault("WATCHPOST_BENCH_DB", "watchpost_bench_ui")  # gunicorn inherits it

import django  # noqa: E402
import requests  # noqa: E402

from benchmarks.common import code_version, database_ensure  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CHROMIUM = os.environ.get("WATCHPOST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RATIO_GOAL = 2.0
INFO_ONLY = {"dashboard"}  # P13 names the list and the timeline; the managers' home is shown for information
REQUEST_CEILING_MS = 2000.0
# Read in the page once it has loaded: first contentful paint, and the slowest request of the load.
# The paint entry can be queued a little after `load`: wait for it (buffered observer), 10 s at most.
PAINT_JS = """() => new Promise(resolve => {
  const finish = fcp => {
    const nav = performance.getEntriesByType('navigation')[0];
    const spans = performance.getEntriesByType('resource').map(e => ({url: e.name, ms: e.responseEnd - e.startTime}));
    spans.push({url: nav.name, ms: nav.responseEnd - nav.startTime});
    resolve({fcp: fcp, requests: spans});
  };
  new PerformanceObserver(list => {
    const entry = list.getEntriesByName('first-contentful-paint')[0];
    if (entry) finish(entry.startTime);
  }).observe({type: 'paint', buffered: true});
  setTimeout(() => finish(null), 10000);
})"""


@dataclass
class Side:
    url: str
    fcp_ms: list[float] = field(default_factory=list)
    slowest_ms: float = 0.0
    slowest_url: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.fcp_ms) if self.fcp_ms else float("nan")


@dataclass
class Pair:
    name: str
    live: Side
    static: Side

    @property
    def ratio(self) -> float:
        return self.live.median / self.static.median

    @property
    def passed(self) -> bool:
        slowest = max(self.live.slowest_ms, self.static.slowest_ms)
        return self.ratio <= RATIO_GOAL and slowest <= REQUEST_CEILING_MS

    @property
    def verdict(self) -> str:
        if self.name in INFO_ONLY:  # measured for information, not a P13 page
            return "info" if max(self.live.slowest_ms, self.static.slowest_ms) <= REQUEST_CEILING_MS else "FAIL (>2 s)"
        return "PASS" if self.passed else "FAIL <<<"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        # A browser context closed while a favicon was still in flight: a broken pipe, not a result.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def static_server(folder: Path, port: int) -> ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = QuietServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def static_copy(folder: Path, base: str, cookies: dict[str, str], pages: dict[str, str]) -> dict[str, str]:
    """Save each live page as it is served, next to the app's static files; returns name → static path."""
    from django.conf import settings

    shutil.copytree(ROOT / "static", folder / settings.STATIC_URL.strip("/"), dirs_exist_ok=True)
    saved = {}
    for name, path in pages.items():
        response = requests.get(base + path, cookies=cookies, timeout=30)
        response.raise_for_status()
        (folder / f"{name}.html").write_bytes(response.content)
        saved[name] = f"/{name}.html"
    return saved


def load_once(browser: Any, url: str, cookies: list[dict[str, Any]], side: Side) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})  # a cold cache every time
    if cookies:
        context.add_cookies(cookies)
    page = context.new_page()
    try:
        response = page.goto(url, wait_until="load", timeout=30_000)
        if response is None or response.status != 200:
            raise RuntimeError(f"{url}: HTTP {response.status if response else 'no response'}")
        result = page.evaluate(PAINT_JS)
    finally:
        context.close()
    if result["fcp"] is None:
        raise RuntimeError(f"{url}: no first-contentful-paint entry")
    side.fcp_ms.append(result["fcp"])
    for request in result["requests"]:
        if request["ms"] > side.slowest_ms:
            side.slowest_ms, side.slowest_url = request["ms"], request["url"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="loads per side and page (default 7; median kept)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from benchmarks.run import bench_user_ensure, free_port, gunicorn_start, gunicorn_stop, login

    version = code_version()
    print(f"Code under test: {version}")
    django.setup()
    from django.core.management import call_command

    from benchmarks.seed import seed

    print("Bench database (watchpost_bench_ui)")
    database_ensure()
    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)  # the live pages' CSS and htmx, as in production
    data = seed()
    bench_user_ensure()
    big = data["big_incident_id"]
    pages = {"list": "/incidents/", "timeline": f"/incidents/{big}/timeline/", "dashboard": "/incidents/dashboard/"}

    port, static_port = free_port(), free_port()
    base, static_base = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{static_port}"
    folder = Path(tempfile.mkdtemp(prefix="wp-firstpaint-"))
    RESULTS.mkdir(exist_ok=True)
    server = gunicorn_start(port, 2, RESULTS / "firstpaint-gunicorn.log")
    static = static_server(folder, static_port)
    pairs: list[Pair] = []
    try:
        cookies = login(base)
        saved = static_copy(folder, base, cookies, pages)
        browser_cookies = [{"name": k, "value": v, "url": base} for k, v in cookies.items()]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
            for name, path in pages.items():
                pair = Pair(name, Side(base + path), Side(static_base + saved[name]))
                load_once(browser, pair.live.url, browser_cookies, Side(""))  # warm-up: server caches, plans
                for _ in range(args.rounds):
                    load_once(browser, pair.static.url, [], pair.static)
                    load_once(browser, pair.live.url, browser_cookies, pair.live)
                pairs.append(pair)
            browser.close()
    finally:
        gunicorn_stop(server)
        static.shutdown()
        shutil.rmtree(folder, ignore_errors=True)

    lines = [
        f"P13 first paint, headless Chromium ({CHROMIUM}), {args.rounds} cold loads per side, median ms",
        f"{'page':10} {'live':>8} {'static':>8} {'ratio':>6} {'slowest request ms (live/static)':>34}  result",
    ]
    for pair in pairs:
        verdict = pair.verdict
        slowest = f"{pair.live.slowest_ms:.0f} / {pair.static.slowest_ms:.0f}"
        medians = f"{pair.live.median:8.0f} {pair.static.median:8.0f} {pair.ratio:6.2f}"
        lines.append(f"{pair.name:10} {medians} {slowest:>34}  {verdict}")
    lines.append(f"goal: live ≤ {RATIO_GOAL} × static, no request over {REQUEST_CEILING_MS:.0f} ms")
    print("\n".join(lines))
    record = {
        "code_version": version,
        "at": datetime.now(UTC).isoformat(),
        "load": os.getloadavg(),
        "pairs": [asdict(p) | {"ratio": p.ratio, "verdict": p.verdict} for p in pairs],
    }
    (RESULTS / "firstpaint.json").write_text(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
