"""Tests about the book itself: table of contents, notebook pairs, environments, config."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess

import pytest
import tomllib
import yaml

from gradynamics import booktools

ROOT = pathlib.Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = booktools.myst_notebooks(BOOK)


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part.get("chapters", [])]
        for chapter in part.get("chapters", []):
            files += [section["file"] for section in chapter.get("sections", [])]
    return files


def _config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def test_there_are_notebooks():
    assert NOTEBOOKS, "no MyST notebooks found under book/"


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_notebook_is_in_toc(md):
    entry = str(md.relative_to(ROOT).with_suffix(""))
    assert entry in _toc_files(), f"{entry} is not listed in _toc.yml"


def test_every_toc_entry_exists():
    for entry in _toc_files():
        candidates = [ROOT / f"{entry}{ext}" for ext in (".md", ".ipynb")]
        assert any(c.exists() for c in candidates), f"_toc.yml names {entry}, which does not exist"


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_pair_in_sync_and_output_free(md):
    problems = booktools.pair_problems(md)
    assert not problems, "\n".join(problems)


def test_no_ipynb_without_md_source():
    for ipynb in BOOK.rglob("*.ipynb"):
        if ".ipynb_checkpoints" in ipynb.parts:
            continue
        assert ipynb.with_suffix(".md") in NOTEBOOKS, f"{ipynb} has no MyST .md source"


def test_committed_notebooks_have_no_outputs():
    tracked = subprocess.run(["git", "ls-files", "*.ipynb"], cwd=ROOT, capture_output=True,
                             text=True, check=False).stdout.split()
    for name in tracked:
        path = ROOT / name
        if not path.exists():
            continue
        cells = json.loads(path.read_text())["cells"]
        assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code"), name


def test_pair_check_detects_drift(tmp_path):
    md = NOTEBOOKS[0]
    for name in ("_config.yml", "references.bib"):
        (tmp_path / name).write_text((ROOT / name).read_text())
    copy_md = tmp_path / md.name
    copy_md.write_text(md.read_text() + "\n```{code-cell} ipython3\n1 + 1\n```\n")
    copy_ipynb = copy_md.with_suffix(".ipynb")
    copy_ipynb.write_text(md.with_suffix(".ipynb").read_text())
    assert any("cells differ" in p for p in booktools.pair_problems(copy_md))
    nb = json.loads(copy_ipynb.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": "x"}]
    copy_ipynb.write_text(json.dumps(nb))
    assert any("outputs" in p for p in booktools.pair_problems(copy_md))


def _requirement_names(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        spec = spec.strip()
        if spec.startswith("-e") or spec in ("pip",) or spec.startswith("python"):
            continue
        name = re.split(r"[<>=!~ \[]", spec, maxsplit=1)[0].lower().replace("_", "-")
        out[name] = spec.replace(" ", "")
    return out


def test_environment_yml_agrees_with_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        wanted += extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_specs = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e ." in pip_specs, "environment.yml must install the library with -e ."
    assert _requirement_names(pip_specs) == _requirement_names(wanted)


def test_config_fails_on_errors_and_excludes_non_pages():
    config = _config()
    assert config["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert config["execute"]["allow_errors"] is False
    assert config["only_build_toc_files"] is True
    for pattern in (".venv", "lib", "tests", "_build", "**.ipynb"):
        assert pattern in config["exclude_patterns"]
    assert config["repository"]["branch"] == "main"
    assert config["launch_buttons"]["binderhub_url"] and config["launch_buttons"]["colab_url"]


CHAPTERS = [p for p in NOTEBOOKS if "gradynamics" in p.read_text()]


def _code_cells(md: pathlib.Path) -> list:
    import jupytext

    return [c for c in jupytext.read(md, fmt="md:myst").cells if c.cell_type == "code"]


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_chapter_follows_template(md):
    text = md.read_text()
    cells = _code_cells(md)
    assert cells[0].source == booktools.install_cell_source(ROOT), (
        "the first code cell must be the book's install cell exactly (it installs the library "
        "and the peer libraries with --no-deps); print it with "
        "`python -m gradynamics.booktools install-cell`")
    assert booktools.is_setup_cell(cells[1].source), \
        "the second code cell imports gradynamics and prints gd.describe_runtime(...)"
    for needle in ("prf:theorem", "assert_sympy_zero", "ClaimsLedger", "get_device",
                   "seed_everything", "{exercise}", "## Summary"):
        assert needle in text, f"{md.name}: missing {needle}"
    assert ".cuda()" not in text, f"{md.name}: use gradynamics.get_device(), not .cuda()"
    assert cells[-1].source.strip().splitlines()[-1].strip() == "ledger", \
        "the last cell displays the claims ledger (the book-wide claims page collects it)"
    assert "see ledger" not in text.lower(), "summary tables state the measured numbers"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_code_lines_fit_the_page(md):
    """At most 100 characters (ruff's limit) in every code cell but the install cell, which
    the HTML book leaves out; the book's CSS also wraps what is longer."""
    for cell in _code_cells(md)[1:]:
        for line in cell.source.splitlines():
            assert len(line) <= 100, f"{md.name}: {len(line)} characters: {line[:60]}..."


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_figures_are_numbered_captioned_and_referenced(md):
    text = md.read_text()
    for cell in _code_cells(md):
        if "plt.show()" not in cell.source and "subplots(" not in cell.source:
            continue
        figure = cell.metadata.get("mystnb", {}).get("figure", {})
        first = cell.source.strip().splitlines()[0]
        assert figure.get("name") and str(figure.get("caption", "")).strip(), \
            f"{md.name}: the figure cell starting {first!r} needs mystnb: figure: name, caption"
        assert f"{{numref}}`{figure['name']}`" in text or f"<{figure['name']}>`" in text, \
            f"{md.name}: the prose never cites figure {figure['name']} with {{numref}}"
        assert cell.source.rstrip().endswith("plt.show()"), \
            f"{md.name}: end the figure cell {figure['name']} with plt.show() (no stray repr)"


@pytest.mark.parametrize("md", CHAPTERS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_book_only_macros_in_chapter_sources(md):
    """New text writes ^\\top, \\mathbb{R}, ... explicitly (the twins expand macros anyway)."""
    macros = booktools.book_macros(ROOT)
    found = booktools.leftover_myst(md.read_text(), macros)
    found = [f for f in found if f.startswith("\\")]
    assert not found, f"{md.name}: book-only macros {sorted(set(found))}"


@pytest.mark.parametrize("page", sorted(BOOK.rglob("*.md")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_control_characters_or_corruption(page):
    """A TAB in '\\times' once turned into a tab + 'imes' (rendered '2.18imes')."""
    text = page.read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        bad = [hex(ord(ch)) for ch in line if ord(ch) < 32 and ch != "\n"]
        assert not bad, f"{page.name}:{number}: control characters {bad}"
        assert "\ufffd" not in line, f"{page.name}:{number}: replacement character (bad encoding)"
    for broken in ("imes", "ext{", "rac{", "eta_", "heta"):
        for match in re.finditer(rf"(?<![\\A-Za-z]){broken}", text):
            context = text[max(0, match.start() - 12):match.end() + 4]
            if re.search(r"\$[^$]*$", text[:match.start()].rsplit("\n", 1)[-1]):
                raise AssertionError(f"{page.name}: a TeX command lost its backslash: {context!r}")
