"""The built HTML book in a real browser (Chromium through Playwright), page by page.

Run with ``make check-html`` (after ``make book``): it serves ``_build/html`` on 127.0.0.1 and
opens every page offline (any request that leaves the local server fails the test). Skipped
unless ``--built-book`` is given, so ``pytest tests`` does not need a browser or a build.
"""

from __future__ import annotations

import functools
import http.server
import json
import pathlib
import re
import subprocess
import threading
import urllib.parse

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRAY_REPRS = ("Text(", "<matplotlib.", "Claim(", "ErrorReport(", "Legend at 0x", "ClaimsLedger(")
SERIOUS = ("serious", "critical")


def _is_redirect(path: pathlib.Path) -> bool:
    head = path.read_text(encoding="utf-8", errors="replace")[:300].lower()
    return 'http-equiv="refresh"' in head and "<body" not in head


def _pages(html_dir: pathlib.Path, redirects: bool = False) -> list[str]:
    """The book's pages (or, with ``redirects``, its redirect stubs such as index.html)."""
    skip = {"genindex.html", "search.html", "prf-prf.html"}
    return sorted(str(p.relative_to(html_dir)) for p in html_dir.rglob("*.html")
                  if not ({"_static", "_sources", "reports", "_images"} & set(p.parts))
                  and p.name not in skip and _is_redirect(p) == redirects)


def _html_dir(config) -> pathlib.Path | None:
    option = config.getoption("--built-book", default=None)
    return pathlib.Path(option).resolve() if option else None


def pytest_generate_tests(metafunc):
    if "book_page" in metafunc.fixturenames:
        html_dir = _html_dir(metafunc.config)
        pages = _pages(html_dir) if html_dir and html_dir.is_dir() else []
        metafunc.parametrize("book_page", pages or ["(no built book)"])


@pytest.fixture(scope="session")
def html_dir(pytestconfig) -> pathlib.Path:
    directory = _html_dir(pytestconfig)
    if directory is None:
        pytest.skip("the browser checks run with `make check-html` (--built-book=_build/html)")
    if not (directory / "index.html").is_file():
        pytest.fail(f"--built-book: {directory} has no index.html (run `make book` first)")
    return directory


@pytest.fixture(scope="session")
def server(html_dir):
    handler = functools.partial(_QuietHandler, directory=str(html_dir))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # noqa: D102 - keep the test output readable
        pass


@pytest.fixture(scope="session")
def tracked_notebooks() -> set[str]:
    out = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    return set(out.split())


@pytest.fixture(scope="session")
def axe():
    from axe_playwright_python.sync_playwright import Axe

    return Axe()


@pytest.fixture()
def visit(page, server):
    """Open a page offline; return (problems list, the page). Problems collect as it loads."""
    problems: list[str] = []
    page.set_viewport_size({"width": 1280, "height": 900})

    def route(route):
        if route.request.url.startswith(server) or route.request.url.startswith("data:"):
            route.continue_()
        else:
            problems.append(f"request leaves the book (offline HTML): {route.request.url}")
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda msg: msg.type == "error" and problems.append(
        f"console error: {msg.text}"))
    page.on("pageerror", lambda err: problems.append(f"page error: {err}"))
    page.on("requestfailed", lambda req: req.url.startswith(server) and problems.append(
        f"failed request: {req.url} ({req.failure})"))
    page.on("response", lambda resp: resp.status >= 400 and problems.append(
        f"HTTP {resp.status}: {resp.url}"))

    def go(name: str):
        page.goto(server + name, wait_until="load")
        page.wait_for_function("() => !window.MathJax || (MathJax.startup && "
                               "MathJax.startup.promise)", timeout=20_000)
        page.evaluate("() => window.MathJax ? MathJax.startup.promise : null")
        return problems

    return go


MATH_REPORT = """() => {
  const report = {untypeset: [], errors: [], wide: []};
  document.querySelectorAll('.math, span.math, div.math').forEach(el => {
    if (!el.querySelector('mjx-container')) report.untypeset.push(el.textContent.slice(0, 80));
  });
  document.querySelectorAll('mjx-merror, [data-mjx-error]').forEach(el =>
    report.errors.push((el.getAttribute('data-mjx-error') || el.textContent).slice(0, 120)));
  document.querySelectorAll('mjx-container[display="true"]').forEach(el => {
    const box = el.parentElement.getBoundingClientRect();
    const math = el.querySelector('mjx-math');
    if (!math) return;
    const width = math.getBoundingClientRect().width;
    if (width > box.width + 1) {
      const id = (el.closest('[id]') || {}).id || '';
      report.wide.push(`${id}: ${Math.round(width)} px in a ${Math.round(box.width)} px column`);
    }
  });
  const article = (document.querySelector('article') || document.body
    || document.documentElement).cloneNode(true);
  article.querySelectorAll('pre, code, script, style, mjx-container, mjx-assistive-mml')
    .forEach(el => el.remove());
  const text = article.textContent;
  for (const marker of ['\\\\(', '\\\\[', '$$']) {
    const at = text.indexOf(marker);
    if (at >= 0) report.untypeset.push(text.slice(Math.max(0, at - 40), at + 40));
  }
  return report;
}"""

PAGE_REPORT = """() => ({
  brokenImages: [...document.images].filter(img => !img.complete || img.naturalWidth === 0)
    .map(img => img.getAttribute('src')),
  outputs: [...document.querySelectorAll('.cell_output')].map(el => el.innerText),
  stderr: [...document.querySelectorAll('.cell_output .stderr, .cell_output .output.stderr')]
    .map(el => el.innerText.slice(0, 200)),
  wideTables: [...document.querySelectorAll('div.claims-ledger-wrapper, table.claims-ledger')]
    .filter(el => el.scrollWidth > el.clientWidth + 1)
    .map(el => `${el.scrollWidth} px in ${el.clientWidth} px`),
  wrappedNumbers: [...document.querySelectorAll('table.claims-ledger td.num')]
    .filter(td => {
      const range = document.createRange();
      range.selectNodeContents(td);
      const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top)));
      return lines.size > 1;
    }).map(td => td.innerText),
  launch: [...document.querySelectorAll('a[href]')].map(a => a.href)
    .filter(h => /colab\\.research\\.google\\.com|mybinder\\.org/.test(h)),
})"""


def _launch_path(url: str) -> str | None:
    """The repository path a Binder or Colab launch URL opens."""
    parsed = urllib.parse.urlparse(url)
    if "colab" in parsed.netloc:
        match = re.search(r"/blob/[^/]+/(.+)$", parsed.path)
        return match.group(1) if match else None
    query = urllib.parse.parse_qs(parsed.query)
    path = (query.get("urlpath") or query.get("labpath") or [""])[0]
    match = re.search(r"(?:tree|lab/tree|doc/tree)/(.+)$", path)
    return match.group(1) if match else None


def test_book_has_pages_and_redirects_resolve(html_dir):
    pages = _pages(html_dir)
    assert "book/intro.html" in pages and len(pages) >= 3, pages
    for stub in _pages(html_dir, redirects=True):
        target = re.search(r'url=([^"]+)"', (html_dir / stub).read_text()).group(1)
        assert (html_dir / stub).parent.joinpath(target).is_file(), f"{stub} -> {target}"


def test_page_reads_cleanly(book_page, page, visit, tracked_notebooks, axe, html_dir):
    problems = list(visit(book_page))
    math = page.evaluate(MATH_REPORT)
    problems += [f"formula not typeset: {m}" for m in math["untypeset"]]
    problems += [f"MathJax error: {m}" for m in math["errors"]]
    problems += [f"display equation wider than the column: {m}" for m in math["wide"]]
    report = page.evaluate(PAGE_REPORT)
    problems += [f"broken image: {src}" for src in report["brokenImages"]]
    problems += [f"stderr box under a cell: {text}" for text in report["stderr"]]
    for text in report["outputs"]:
        problems += [f"stray repr {needle!r} in an output: {text[:120]!r}"
                     for needle in STRAY_REPRS if needle in text]
        if re.search(r"^\s*\|\s*:?-{3,}", text, re.M):
            problems.append(f"a Markdown table printed as text: {text[:120]!r}")
    problems += [f"claims ledger wider than the column: {w}" for w in report["wideTables"]]
    problems += [f"a number wraps inside a ledger cell: {n!r}" for n in report["wrappedNumbers"]]
    for url in report["launch"]:
        path = _launch_path(url)
        if path is None or path not in tracked_notebooks:
            problems.append(f"launch button opens {path or url}, not a tracked notebook")
    results = axe.run(page, options={"runOnly": {"type": "tag", "values": [
        "wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}, "resultTypes": ["violations"]})
    for violation in results.response["violations"]:
        if violation["impact"] in SERIOUS:
            targets = [", ".join(node["target"]) for node in violation["nodes"][:3]]
            problems.append(f"accessibility ({violation['impact']}): {violation['id']}: "
                            f"{violation['help']} at {targets}")
    assert not problems, f"{book_page}:\n  " + "\n  ".join(problems)


def test_claims_page_lists_every_chapter_ledger(page, visit, html_dir):
    claims = json.loads((html_dir / "claims.json").read_text())
    assert claims, "claims.json is empty: no chapter displayed its ledger"
    visit("book/claims.html")
    rows = page.locator("table.book-claims tbody tr")
    assert rows.count() == sum(len(ledger["rows"]) for ledger in claims)
    links = {a.get_attribute("href") for a in page.locator("table.book-claims a").all()}
    for ledger in claims:
        assert any(ledger["docname"].split("/")[-1] in (href or "") for href in links)
