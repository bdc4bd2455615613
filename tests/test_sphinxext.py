"""The book's Sphinx extension: setup cells, per-page numbering, the book-wide claims ledger."""

from __future__ import annotations

import json
import pathlib
import re
import textwrap

import pytest

import gradynamics as gd
from gradynamics import booktools, sphinxext

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _chapter(install: str, setup: str) -> str:
    return ("---\njupytext: {}\nkernelspec: {}\n---\n# T\n\n"
            f"```{{code-cell}} ipython3\n{install}\n```\n\n"
            f"```{{code-cell}} ipython3\n{setup}\n```\n\n"
            "```{code-cell} ipython3\nx = 1\n```\n")


SETUP = "import gradynamics as gd\nprint(gd.describe_runtime())"


def test_install_cell_removed_and_setup_cell_folded():
    text = sphinxext.tag_setup_cells(_chapter(booktools.install_cell_source(ROOT), SETUP))
    blocks = text.split("```{code-cell} ipython3\n")
    assert blocks[1].startswith(":tags: [remove-cell]\n# On Colab")
    assert blocks[2].startswith(":tags: [hide-input]\nimport gradynamics")
    assert blocks[3].startswith("x = 1")
    assert sphinxext.tag_setup_cells(text) == text, "tagging twice must change nothing"


def test_tags_merge_into_a_yaml_header():
    setup = "---\nmystnb:\n  number_source_lines: true\n---\n" + SETUP
    text = sphinxext.tag_setup_cells(_chapter(booktools.install_cell_source(ROOT), setup))
    assert "```{code-cell} ipython3\n---\ntags: [hide-input]\nmystnb:" in text


def test_pages_without_an_install_cell_are_untouched():
    text = _chapter("print('no install here')", SETUP)
    assert sphinxext.tag_setup_cells(text) == text


def test_renumber_per_page_keeps_order_and_restarts_at_one():
    numbers = {"a": {"theorem": {"t1": (3,), "t2": (4,)}, "displaymath": {"e": (7,)}},
               "b": {"theorem": {"t3": (6,), "t4": (5,)}},
               "c": {"figure": {"f": (2, 1)}}}  # section-numbered: left alone
    sphinxext.renumber_per_page(numbers)
    assert numbers == {"a": {"theorem": {"t1": (1,), "t2": (2,)}, "displaymath": {"e": (1,)}},
                       "b": {"theorem": {"t3": (2,), "t4": (1,)}},
                       "c": {"figure": {"f": (2, 1)}}}


def test_ledger_html_round_trips_through_the_collector():
    ledger = gd.ClaimsLedger("A </script> chapter")
    ledger.check("error of $x$ small", "autograd", 1e-14, 1e-12)
    ledger.check("rate", "fit", 2.5, 2.0, relation=">=")
    (found,) = sphinxext.claims_in_html("<p>before</p>" + ledger._repr_html_())
    assert found == json.loads(ledger.to_json())
    assert found["chapter"] == "A </script> chapter" and len(found["rows"]) == 2
    assert "\\(x\\)" in ledger._repr_html_(), "inline $...$ in a claim renders as math"


def test_readable_download_takes_outputs_only_when_code_matches():
    twin = {"cells": [{"cell_type": "markdown", "source": "**Theorem 1.**"},
                      {"cell_type": "code", "source": "1 + 1", "outputs": [],
                       "execution_count": None}]}
    run = {"cells": [{"cell_type": "markdown", "source": "```{prf:theorem}"},
                     {"cell_type": "code", "source": "1 + 1", "execution_count": 1,
                      "outputs": [{"output_type": "execute_result", "data": {"text/plain": "2"}}]}]}
    merged = sphinxext.readable_download(json.loads(json.dumps(twin)), run)
    assert merged["cells"][0]["source"] == "**Theorem 1.**"
    assert merged["cells"][1]["outputs"][0]["data"]["text/plain"] == "2"
    run["cells"][1]["source"] = "2 + 2"
    assert sphinxext.readable_download(json.loads(json.dumps(twin)), run) == twin


@pytest.fixture(scope="module")
def mini_book(tmp_path_factory):
    """A two-chapter book built with the extension (MyST pages, no notebook execution)."""
    from sphinx.application import Sphinx

    src = tmp_path_factory.mktemp("book")
    (src / "conf.py").write_text(textwrap.dedent("""\
        extensions = ["myst_parser", "sphinx_proof", "gradynamics.sphinxext"]
        myst_enable_extensions = ["dollarmath", "amsmath"]
        numfig = True
        """))
    (src / "index.md").write_text("# Book\n\n```{toctree}\none\ntwo\nclaims\n```\n")

    def chapter(name: str, title: str, claim: str) -> str:
        ledger = gd.ClaimsLedger(title)
        ledger.check(claim + " of $x$", "autograd", 1e-14, 1e-12)
        return textwrap.dedent(f"""\
            # {title}

            ```{{prf:theorem}} First
            :label: {name}-thm

            $$ a = b $$ ({name}-eq)
            ```

            See {{eq}}`{name}-eq` and {{prf:ref}}`{name}-thm`.

            ```{{raw}} html
            {ledger._repr_html_()}
            ```
            """)

    (src / "one.md").write_text(chapter("one", "Chapter one", "first claim"))
    (src / "two.md").write_text(chapter("two", "Chapter two", "second claim"))
    (src / "claims.md").write_text("# Claims\n\n```{claims-ledger}\n```\n")
    out = src / "_build"
    app = Sphinx(str(src), str(src), str(out), str(out / ".doctrees"), "html",
                 status=None, warning=None, freshenv=True)
    app.build()
    return out


def test_numbering_restarts_in_every_chapter(mini_book):
    two = (mini_book / "two.html").read_text()
    assert "Theorem 1" in two and "Theorem 2" not in two
    assert '<span class="eqno">(1)' in two and "(2)" not in two


def test_claims_page_collects_every_chapter(mini_book):
    page = (mini_book / "claims.html").read_text()
    assert "2 claims from 2 chapters" in page and "2 of them passed" in page
    assert page.index("first claim") < page.index("second claim"), "table of contents order"
    assert 'href="one.html"' in page and 'href="two.html"' in page
    assert re.search(r'<script[^>]+src="[^"]*mathjax', page), \
        "the claims page loads MathJax for the math in the claims"
    assert "\\(x\\)" in page
    rows = json.loads((mini_book / "claims.json").read_text())
    assert [r["chapter"] for r in rows] == ["Chapter one", "Chapter two"]


def test_readable_download_compares_sources_split_into_lines():
    twin = {"cells": [{"cell_type": "code", "source": ["a = 1\n", "a"], "outputs": []}]}
    run = {"cells": [{"cell_type": "code", "source": "a = 1\na", "execution_count": 1,
                      "outputs": [{"output_type": "stream", "name": "stdout", "text": "1"}]}]}
    assert sphinxext.readable_download(twin, run)["cells"][0]["outputs"][0]["text"] == "1"
