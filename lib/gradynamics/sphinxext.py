"""Sphinx extension of the book (listed in ``_config.yml``): what every chapter gets for free.

- **Per-chapter numbering.** Equations, theorems, exercises and figures are numbered from 1 on
  every page (Sphinx numbers them across the whole book when the table of contents is not
  section-numbered). The notebook twins (:mod:`gradynamics.booktools`) use the same numbers.
- **Setup cells out of the reader's way.** A chapter's Colab install cell is removed from the
  HTML page (it is for Colab only) and its imports/device/seeding cell is collapsed behind a
  toggle; keyed on the cells' content (:func:`booktools.is_install_cell`,
  :func:`booktools.is_setup_cell`), so no chapter needs tags.
- **The book-wide claims ledger.** Each chapter's ``ClaimsLedger`` display embeds its rows as
  JSON (``<script type="application/json" class="gradynamics-claims">``). After the chapters
  are executed and read, the ``{claims-ledger}`` directive renders every claim of the book,
  with a link to its chapter. The same rows are written to ``_build/html/claims.json``.
- **Readable downloads.** The "download .ipynb" button serves the notebook twin (theorems,
  citations and macros translated for plain Jupyter) with the outputs of the book's run.
- **One THEBE_JS_URL.** sphinx-thebe adds its configuration script twice on rebuilds, which
  logs a console error on every page; duplicates are dropped.
- **Accessible citations.** The bibliography's entries get ``role="listitem"`` (docutils gives
  them ``doc-biblioentry`` inside a ``role="list"``, an ARIA error).
"""

from __future__ import annotations

import html
import json
import pathlib
import re

from docutils import nodes
from docutils.parsers.rst import Directive

from gradynamics import booktools

CLAIMS_SCRIPT = re.compile(
    r'<script type="application/json" class="gradynamics-claims">(?P<data>.*?)</script>', re.S)

_CODE_CELL = re.compile(r"^(?P<fence>`{3,})\{code-cell\}[^\n]*\n(?P<body>.*?)^(?P=fence)[ \t]*$",
                        re.M | re.S)


# --------------------------------------------------------------------------------------------
# Setup cells
# --------------------------------------------------------------------------------------------


def _add_tag(header_and_body: str, tag: str) -> str:
    """Add ``tag`` to a code cell's options (``:tags:`` line or YAML header)."""
    if header_and_body.startswith("---\n"):
        head, sep, rest = header_and_body[4:].partition("\n---\n")
        if re.search(r"^tags:", head, re.M):
            return header_and_body
        return f"---\ntags: [{tag}]\n{head}{sep}{rest}"
    if re.match(r"^:tags:", header_and_body):
        return header_and_body
    return f":tags: [{tag}]\n{header_and_body}"


def tag_setup_cells(text: str) -> str:
    """Tag a chapter's install cell ``remove-cell`` and its setup cell ``hide-input``."""
    matches = list(_CODE_CELL.finditer(text))
    edits = []
    for k, match in enumerate(matches):
        if booktools.is_install_cell(match.group("body")):
            edits.append((match, "remove-cell"))
            if k + 1 < len(matches) and booktools.is_setup_cell(matches[k + 1].group("body")):
                edits.append((matches[k + 1], "hide-input"))
            break
    for match, tag in reversed(edits):
        start, end = match.span("body")
        text = text[:start] + _add_tag(match.group("body"), tag) + text[end:]
    return text


def _on_source_read(app, docname: str, source: list[str]) -> None:
    if source and source[0].startswith("---") and "jupytext:" in source[0][:600]:
        source[0] = tag_setup_cells(source[0])


# --------------------------------------------------------------------------------------------
# Per-page numbering
# --------------------------------------------------------------------------------------------


def renumber_per_page(fignumbers: dict[str, dict[str, dict[str, tuple[int, ...]]]]) -> None:
    """Renumber every enumerable type from 1 on each page, keeping the order of the page."""
    for per_type in fignumbers.values():
        for ids in per_type.values():
            if any(len(number) != 1 for number in ids.values()):
                continue  # a section-numbered toctree already numbers per chapter
            for k, node_id in enumerate(sorted(ids, key=ids.__getitem__), 1):
                ids[node_id] = (k,)


def _on_env_updated(app, env) -> list[str]:
    renumber_per_page(env.toc_fignumbers)
    return []


# --------------------------------------------------------------------------------------------
# Claims ledger
# --------------------------------------------------------------------------------------------


def claims_in_html(text: str) -> list[dict]:
    """The ledgers (``{"chapter": ..., "rows": [...]}``) embedded in an HTML output."""
    return [json.loads(m.group("data").replace("<\\/", "</")) for m in CLAIMS_SCRIPT.finditer(text)]


def _claims_store(env) -> dict:
    if not hasattr(env, "gradynamics_claims"):
        env.gradynamics_claims = {}
    if not hasattr(env, "gradynamics_claim_pages"):
        env.gradynamics_claim_pages = set()
    return env.gradynamics_claims


def _on_doctree_read(app, doctree) -> None:
    env = app.env
    ledgers = []
    for raw in doctree.findall(nodes.raw):
        if "html" in raw.get("format", "") and "gradynamics-claims" in raw.astext():
            ledgers += claims_in_html(raw.astext())
    store = _claims_store(env)
    if ledgers:
        store[env.docname] = ledgers
    else:
        store.pop(env.docname, None)
    if env.docname in env.gradynamics_claim_pages:
        # The book-wide table has math in its claims; load MathJax on that page.
        env.get_domain("math").data["has_equations"][env.docname] = True


def _on_purge(app, env, docname: str) -> None:
    _claims_store(env).pop(docname, None)
    env.gradynamics_claim_pages.discard(docname)


def _on_merge(app, env, docnames, other) -> None:
    _claims_store(env).update(getattr(other, "gradynamics_claims", {}))
    env.gradynamics_claim_pages |= getattr(other, "gradynamics_claim_pages", set())


def _on_outdated(app, env, added, changed, removed) -> list[str]:
    # The book-wide ledger depends on every chapter: re-read it on every build.
    _claims_store(env)
    return sorted(env.gradynamics_claim_pages - set(removed))


class claims_ledger_node(nodes.General, nodes.Element):
    """Placeholder replaced by the book-wide table once every chapter has been read."""


class ClaimsLedgerDirective(Directive):
    """``{claims-ledger}``: every claim of every chapter of the book, in table order."""

    has_content = False

    def run(self):
        env = self.state.document.settings.env
        _claims_store(env)
        env.gradynamics_claim_pages.add(env.docname)
        return [claims_ledger_node()]


def _fmt(value: float) -> str:
    from gradynamics.ledger import _fmt as ledger_fmt

    return ledger_fmt(value)


def _math(text: str) -> str:
    from gradynamics.ledger import _math as ledger_math

    return ledger_math(text)


def book_claims(env) -> list[tuple[str, dict]]:
    """(docname, ledger) pairs of the book in table-of-contents order."""
    store = _claims_store(env)
    order = {name: k for k, name in enumerate(_toc_order(env))}
    return [(doc, ledger) for doc in sorted(store, key=lambda d: order.get(d, len(order)))
            for ledger in store[doc]]


def _toc_order(env) -> list[str]:
    seen: list[str] = []

    def walk(doc: str) -> None:
        if doc in seen:
            return
        seen.append(doc)
        for child in env.toctree_includes.get(doc, []):
            walk(child)

    walk(env.config.root_doc)
    return seen


def claims_table_html(rows: list[tuple[str, str, dict]]) -> str:
    """The book-wide table: rows of (chapter title, chapter URI, claim row)."""
    head = "".join(f'<th scope="col">{h}</th>' for h in
                   ("chapter", "#", "claim", "method", "measured", "required", "pass"))
    body = []
    counters: dict[str, int] = {}
    for title, uri, row in rows:
        counters[title] = counters.get(title, 0) + 1
        passed = "&#10003;" if row["passed"] else "<strong>FAIL</strong>"
        cells = (f'<a href="{html.escape(uri)}">{html.escape(title)}</a>', str(counters[title]),
                 _math(row["claim"]), _math(row["method"]),
                 _fmt(row["measured"]), html.escape(f'{row["relation"]} {_fmt(row["threshold"])}'),
                 passed)
        classes = ("chapter", "num", "claim", "method", "num", "num", "pass")
        body.append("<tr>" + "".join(f'<td class="{c}">{v}</td>'
                                     for c, v in zip(classes, cells, strict=True)) + "</tr>")
    return ('<div class="claims-ledger-wrapper"><table class="claims-ledger book-claims '
            f'mathjax_process"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>")


def _on_doctree_resolved(app, doctree, docname: str) -> None:
    for node in list(doctree.findall(claims_ledger_node)):
        rows = []
        chapters = set()
        for doc, ledger in book_claims(app.env):
            uri = app.builder.get_relative_uri(docname, doc)
            chapters.add(doc)
            rows += [(ledger["chapter"], uri, row) for row in ledger["rows"]]
        passed = sum(row["passed"] for _, _, row in rows)
        summary = nodes.paragraph(text=(
            f"{len(rows)} claims from {len(chapters)} chapters, collected from this build's "
            f"executed notebooks; {passed} of them passed."))
        missing = _chapters_without_ledger(app, chapters)
        replacement = [summary, nodes.raw("", claims_table_html(rows), format="html")]
        if missing:
            replacement.append(nodes.paragraph(
                text="Chapters that create a claims ledger but did not display it: "
                     + ", ".join(missing) + "."))
        node.replace_self(replacement)


def _chapters_without_ledger(app, found: set[str]) -> list[str]:
    missing = []
    for doc in sorted(app.env.found_docs):
        path = pathlib.Path(app.env.doc2path(doc))
        if doc in found or path.suffix != ".md" or not path.exists():
            continue
        if "ClaimsLedger(" in path.read_text(encoding="utf-8"):
            missing.append(doc)
    return missing


# --------------------------------------------------------------------------------------------
# HTML pages, downloads, build outputs
# --------------------------------------------------------------------------------------------


def _on_page_context(app, pagename, templatename, context, doctree) -> None:
    if "body" in context and 'role="doc-biblioentry"' in context["body"]:
        # docutils puts citations (role doc-biblioentry) in a role="list" container, which
        # requires listitem children (axe: aria-required-children, critical).
        context["body"] = context["body"].replace('role="doc-biblioentry"', 'role="listitem"')
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        attributes = getattr(script, "attributes", {})
        key = (str(getattr(script, "filename", script) or ""), repr(sorted(attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def readable_download(twin: dict, executed: dict) -> dict:
    """The twin's cells with the executed notebook's outputs (matched code cell by code cell)."""
    code_twin = [c for c in twin["cells"] if c["cell_type"] == "code"]
    code_run = [c for c in executed["cells"] if c["cell_type"] == "code"]
    def text(cell: dict) -> str:
        source = cell.get("source", "")
        return "".join(source) if isinstance(source, list) else source

    if [text(c) for c in code_twin] != [text(c) for c in code_run]:
        return twin
    for mine, run in zip(code_twin, code_run, strict=True):
        mine["outputs"] = run.get("outputs", [])
        mine["execution_count"] = run.get("execution_count")
    return twin


def _on_build_finished(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    out = pathlib.Path(app.outdir)
    ledgers = [{"docname": doc, **ledger} for doc, ledger in book_claims(app.env)]
    (out / "claims.json").write_text(json.dumps(ledgers, indent=1), encoding="utf-8")
    import nbformat

    executed_dir = out.parent / "jupyter_execute"
    for doc in app.env.found_docs:
        source = pathlib.Path(app.env.doc2path(doc))
        twin_path = source.with_suffix(".ipynb")
        download = out / "_sources" / f"{doc}.ipynb"
        executed = executed_dir / f"{doc}.ipynb"
        if source.suffix != ".md" or not twin_path.exists() or not download.exists():
            continue
        twin = json.loads(twin_path.read_text(encoding="utf-8"))
        run = json.loads(executed.read_text(encoding="utf-8")) if executed.exists() else twin
        notebook = nbformat.from_dict(readable_download(twin, run))
        download.write_text(nbformat.writes(notebook), encoding="utf-8")


def setup(app):
    """Register the book's Sphinx hooks."""
    app.connect("source-read", _on_source_read)
    app.connect("env-get-updated", _on_env_updated, priority=900)
    app.connect("env-get-outdated", _on_outdated)
    app.connect("doctree-read", _on_doctree_read)
    app.connect("env-purge-doc", _on_purge)
    app.connect("env-merge-info", _on_merge)
    app.connect("doctree-resolved", _on_doctree_resolved)
    app.connect("html-page-context", _on_page_context, priority=900)
    app.connect("build-finished", _on_build_finished)
    app.add_node(claims_ledger_node)
    app.add_directive("claims-ledger", ClaimsLedgerDirective)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True,
            "env_version": 1}
