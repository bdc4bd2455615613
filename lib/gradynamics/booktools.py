"""Book maintenance: the MyST ``.md`` notebooks and their output-free ``.ipynb`` pairs.

The ``.md`` file is the source people read and review; the ``.ipynb`` beside it exists for
Colab, Binder and nbval and must hold exactly the same cells, with no outputs.
``python -m gradynamics.booktools sync`` rewrites every pair from its ``.md``;
``python -m gradynamics.booktools check`` lists the pairs that are out of sync.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import sys


def myst_notebooks(book_dir: pathlib.Path | str = "book") -> list[pathlib.Path]:
    """All MyST Markdown notebooks (``.md`` with a jupytext header) under ``book_dir``."""
    root = pathlib.Path(book_dir)
    if not root.is_dir():
        raise ValueError(f"book_dir: {root} is not a directory")
    found = []
    for path in sorted(root.rglob("*.md")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        head = path.read_text(encoding="utf-8")[:600]
        if head.startswith("---") and "jupytext:" in head and "kernelspec:" in head:
            found.append(path)
    return found


def _cells(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


def expected_notebook(md_path: pathlib.Path):
    """The output-free notebook that the ``.md`` file defines."""
    import jupytext

    notebook = jupytext.read(md_path, fmt="md:myst")
    notebook.metadata.pop("jupytext", None)
    for index, cell in enumerate(notebook.cells):
        # Deterministic cell ids: re-syncing an unchanged .md rewrites nothing.
        cell.id = hashlib.sha1(f"{index}:{cell.source}".encode()).hexdigest()[:8]
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return notebook


def pair_problems(md_path: pathlib.Path) -> list[str]:
    """Why the ``.ipynb`` beside ``md_path`` is not a faithful, output-free copy (empty: fine)."""
    ipynb = md_path.with_suffix(".ipynb")
    if not ipynb.exists():
        return [f"{ipynb}: missing (run `make sync`)"]
    try:
        raw = json.loads(ipynb.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        return [f"{ipynb}: not valid JSON ({err})"]
    problems = []
    for k, cell in enumerate(raw.get("cells", [])):
        if cell.get("cell_type") == "code" and (cell.get("outputs") or cell.get("execution_count")):
            problems.append(f"{ipynb}: cell {k} has outputs or an execution count")
    import nbformat

    actual = nbformat.reads(json.dumps(raw), as_version=4)
    if _cells(actual) != _cells(expected_notebook(md_path)):
        problems.append(f"{ipynb}: cells differ from {md_path.name} (run `make sync`)")
    return problems


def sync(book_dir: pathlib.Path | str = "book") -> list[pathlib.Path]:
    """Rewrite every ``.ipynb`` pair from its ``.md``; return the files written."""
    import nbformat

    written = []
    for md_path in myst_notebooks(book_dir):
        ipynb = md_path.with_suffix(".ipynb")
        notebook = expected_notebook(md_path)
        text = nbformat.writes(notebook) + "\n"
        if not ipynb.exists() or ipynb.read_text(encoding="utf-8") != text:
            ipynb.write_text(text, encoding="utf-8")
            written.append(ipynb)
    return written


def main(argv: list[str]) -> int:
    """Command line: ``sync`` or ``check``."""
    if len(argv) != 1 or argv[0] not in ("sync", "check"):
        print("usage: python -m gradynamics.booktools {sync|check}", file=sys.stderr)
        return 2
    if argv[0] == "sync":
        for path in sync():
            print(f"wrote {path}")
        return 0
    problems = [p for md in myst_notebooks() for p in pair_problems(md)]
    print("\n".join(problems) if problems else "all notebook pairs in sync")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
