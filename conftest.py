"""Repository-wide pytest hooks: per-notebook run times for the nbval run of `make test`, and
the ``--built-book`` option of the browser checks (``make check-html``, tests/html/)."""

from __future__ import annotations

from collections import defaultdict

_durations: dict[str, float] = defaultdict(float)
_failed: set[str] = set()


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::")[0]
    if path.endswith(".ipynb"):
        _durations[path] += report.duration
        if report.failed:
            _failed.add(path)


def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    terminalreporter.write_sep("=", "notebook run times (nbval, this machine)")
    for path, seconds in sorted(_durations.items(), key=lambda kv: -kv[1]):
        status = "FAILED" if path in _failed else "ok"
        terminalreporter.write_line(f"{seconds:8.1f} s  {status:6s}  {path}")
    terminalreporter.write_line(f"{sum(_durations.values()):8.1f} s  total")


def pytest_addoption(parser):
    parser.addoption("--built-book", default=None, metavar="DIR",
                     help="the built HTML book to open in Chromium (tests/html/; make check-html)")
