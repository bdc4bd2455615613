"""Playwright drives the system Chromium (Playwright's own browser download is not needed)."""

from __future__ import annotations

import os
import shutil

import pytest


def chromium_path() -> str | None:
    """$GRADYNAMICS_CHROMIUM, else a Chromium or Chrome on the PATH, else None."""
    candidates = [os.environ.get("GRADYNAMICS_CHROMIUM", ""), "chromium", "chromium-browser",
                  "google-chrome", "google-chrome-stable"]
    for name in candidates:
        found = name and (shutil.which(name) or (os.path.isfile(name) and name))
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args, pytestconfig):
    if pytestconfig.getoption("--built-book") is None:
        pytest.skip("the browser checks run with `make check-html`")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set GRADYNAMICS_CHROMIUM)")
    return {**browser_type_launch_args, "executable_path": path,
            "args": ["--no-sandbox", "--disable-gpu"]}
