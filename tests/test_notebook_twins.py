"""The notebook twins read well in plain Jupyter: MyST translated, code cells untouched."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import textwrap

import jupytext
import pytest

from gradynamics import booktools

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = booktools.myst_notebooks(ROOT / "book")
MACROS = booktools.book_macros(ROOT)

CHAPTER = textwrap.dedent("""\
    ---
    jupytext:
      text_representation:
        extension: .md
        format_name: myst
        format_version: 0.13
    kernelspec:
      display_name: Python 3 (ipykernel)
      language: python
      name: python3
    ---

    (demo-chapter)=
    # Demo chapter

    Let $z \\in \\R^n$ and $p = \\softmax(z)$, with $A\\T$ and $\\Theta \\top$ kept, as cited by
    {cite:t}`amari1998natural` and {cite:p}`amari1998natural,bridle1990softmax`.

    $$
    F = \\E[s s\\T]
    $$ (demo-eq-first)

    ````{prf:theorem} Main result
    :label: demo-thm-main

    It holds that

    $$
    J = \\diag(p) - pp\\T
    $$ (demo-eq-second)
    ````

    ```{prf:proof}
    Differentiate.
    ```

    ```{note}
    A note with `\\R` in code and {eq}`demo-eq-first` in prose.
    ```

    See {eq}`demo-eq-second`, {prf:ref}`demo-thm-main`, {numref}`demo-fig-plot`,
    {numref}`Figure %s shows it <demo-fig-plot>`, {ref}`demo-chapter` and ``{eq}`literal` ``.

    ```python
    print("{eq}`untouched` \\R")
    ```

    ```{code-cell} ipython3
    ---
    mystnb:
      figure:
        name: demo-fig-plot
        caption: |
          The plot of $\\R$-valued data.
    ---
    x = 1
    ```

    ````{exercise}
    :label: demo-ex-one

    Prove it.
    ````

    ````{solution} demo-ex-one
    :class: dropdown

    By $\\KL \\ge 0$.
    ````

    ````{solution-start} demo-ex-one
    :class: dropdown
    ````

    Code follows.

    ```{code-cell} ipython3
    y = 2
    ```

    ````{solution-end}
    ````
    """)


@pytest.fixture()
def demo(tmp_path):
    for name in ("_config.yml", "references.bib"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "book").mkdir()
    md = tmp_path / "book" / "demo.md"
    md.write_text(CHAPTER)
    return md


def _markdown(notebook) -> str:
    return "\n\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")


def test_translation_of_every_construct(demo):
    notebook = booktools.expected_notebook(demo)
    text = _markdown(notebook)
    assert booktools.leftover_myst(text, MACROS) == []
    # macros expanded, lookalikes (\Theta, \top) kept, code spans and fences untouched
    assert "z \\in \\mathbb{R}^n" in text and "\\operatorname{softmax}(z)" in text
    assert "A^{\\top}" in text and "\\Theta \\top" in text
    assert "`\\R`" in text and "print(\"{eq}`untouched` \\R\")" in text
    assert "``{eq}`literal` ``" in text
    # citations: author-year, linked to a References cell listing both works
    assert "[Amari (1998)](#ref-amari1998natural)" in text
    assert "([Amari, 1998](#ref-amari1998natural); [Bridle, 1990](#ref-bridle1990softmax))" in text
    assert notebook.cells[-1].source.startswith("## References")
    assert '<a id="ref-bridle1990softmax"></a>Bridle, John (1990)' in notebook.cells[-1].source
    # numbered per chapter, as the book numbers them; equations tagged
    assert "\\tag{1}" in text and "\\tag{2}" in text
    assert '<a id="demo-thm-main"></a>**Theorem 1 (Main result).**' in text
    assert "*Proof.* Differentiate. $\\blacksquare$" in text
    assert "See [(2)](#demo-eq-second), [Theorem 1](#demo-thm-main), [Fig. 1](#demo-fig-plot)," \
        in text
    assert "[Figure 1 shows it](#demo-fig-plot)" in text
    assert "[Demo chapter](#demo-chapter)" in text
    assert "> **Note.** A note with `\\R` in code and [(1)](#demo-eq-first) in prose." in text
    assert "**Exercise 1.** Prove it." in text
    assert "<details>\n<summary><b>Solution to Exercise 1</b></summary>" in text
    assert "By $\\mathrm{KL} \\ge 0$." in text
    assert "**Solution to Exercise 1.**" in text and "*End of the solution.*" in text


def test_figure_cell_gets_a_numbered_caption(demo):
    cells = booktools.expected_notebook(demo).cells
    k = next(i for i, c in enumerate(cells) if c.cell_type == "code" and c.source == "x = 1")
    assert cells[k].metadata["mystnb"]["figure"]["name"] == "demo-fig-plot"
    caption = cells[k + 1]
    assert caption.cell_type == "markdown"
    assert caption.source == ('<a id="demo-fig-plot"></a>**Figure 1.** The plot of '
                              "$\\mathbb{R}$-valued data.")


def test_cross_chapter_reference_links_the_other_twin(tmp_path, demo):
    other = demo.parent / "sub" / "other.md"
    other.parent.mkdir()
    other.write_text(CHAPTER.replace("demo-", "other-").replace("# Demo chapter", "# Other"))
    other.with_suffix(".ipynb").write_text("{}")
    demo.write_text(CHAPTER + "\nAs in {prf:ref}`other-thm-main` of {ref}`other-chapter`.\n")
    booktools._label_index.cache_clear()
    text = _markdown(booktools.expected_notebook(demo))
    assert "[Theorem 1](sub/other.ipynb#other-thm-main) of [Other](sub/other.ipynb#other-chapter)" \
        in text


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_twin_has_no_myst_and_no_book_only_macro(md):
    twin = json.loads(md.with_suffix(".ipynb").read_text())
    for k, cell in enumerate(twin["cells"]):
        if cell["cell_type"] == "markdown":
            left = booktools.leftover_myst("".join(cell["source"]), MACROS)
            assert not left, f"{md.name}, markdown cell {k}: {left}"


@pytest.mark.parametrize("md", NOTEBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_twin_code_cells_are_the_chapter_code_cells(md):
    source = jupytext.read(md, fmt="md:myst")
    twin = json.loads(md.with_suffix(".ipynb").read_text())
    assert [c.source for c in source.cells if c.cell_type == "code"] == \
        ["".join(c["source"]) for c in twin["cells"] if c["cell_type"] == "code"]


def test_sync_is_deterministic(tmp_path):
    for name in ("_config.yml", "references.bib"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book" / "toolkit", tmp_path / "book" / "toolkit")
    (tmp_path / "book" / "toolkit" / "softmax_fisher.ipynb").unlink()
    assert len(booktools.sync(tmp_path / "book")) == 1
    assert booktools.sync(tmp_path / "book") == [], "re-syncing an unchanged chapter rewrote it"


def test_leftover_detector_finds_myst():
    assert booktools.leftover_myst("see {eq}`x`", MACROS) == ["{eq}`"]
    assert booktools.leftover_myst("```{note}\nhi\n```", MACROS) == ["```{"]
    assert booktools.leftover_myst("(lbl)=\n# T", MACROS) == ["(lbl)="]
    assert booktools.leftover_myst("$a\\T b$", MACROS) == ["\\T"]
    assert booktools.leftover_myst("``{eq}`x` `` and `\\T` are code", MACROS) == []


def test_install_cell_installs_library_and_peers_without_deps():
    cell = booktools.install_cell_source(ROOT)
    assert booktools.is_install_cell(cell)
    assert "--no-deps" in cell and "gradynamics @ git+" in cell
    for peer in ("skglm", "torchdeq", "pytorch-optimizer"):
        assert f'"{peer}>=' in cell
    for kept in ("torch", "numpy", "sympy"):
        assert not re.search(rf'"{kept}([<>=!~"]|$)', cell), f"the install cell reinstalls {kept}"


def test_fix_install_cell_rewrites_only_the_install_cell(demo):
    old = ("```{code-cell} ipython3\ntry:\n    import gradynamics  # noqa: F401\n"
           "except ImportError:\n"
           '    %pip install --quiet --no-deps "gradynamics @ git+https://x@main"\n```\n')
    demo.write_text(CHAPTER.replace("(demo-chapter)=", old + "\n(demo-chapter)=", 1))
    assert booktools.fix_install_cell(demo)
    cells = [c for c in jupytext.read(demo, fmt="md:myst").cells if c.cell_type == "code"]
    assert cells[0].source == booktools.install_cell_source(demo.parent)
    assert cells[1].source.startswith("x = 1")
    assert not booktools.fix_install_cell(demo), "a canonical install cell is left as it is"
