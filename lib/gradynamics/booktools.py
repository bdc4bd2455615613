"""Book maintenance: the MyST ``.md`` notebooks and their ``.ipynb`` twins for plain Jupyter.

The ``.md`` file is the source people read and review, and the source the HTML book is built
from. The ``.ipynb`` beside it is what Colab, Binder, JupyterLab and nbval open. It holds exactly
the same code cells (nbval runs them), no outputs, and Markdown cells that **plain Jupyter can
render**: the MyST syntax that only the book understands is translated when the twin is written.

- theorems, proofs, exercises, solutions, admonitions (``{prf:theorem}``, ``{exercise}``,
  ``{solution}``, ``{note}`` ...) become bold-headed paragraphs, block quotes and
  ``<details>`` blocks, numbered per chapter exactly as the book numbers them;
- citations ``{cite:t}`` / ``{cite:p}`` become author-year text from ``references.bib`` and the
  notebook gains a *References* cell listing what it cites;
- cross-references ``{eq}``, ``{numref}``, ``{ref}``, ``{prf:ref}``, ``{doc}`` become links with
  the book's numbers; labelled equations get ``\\tag{n}``; targets ``(label)=`` become anchors;
- the book-only MathJax macros of ``_config.yml`` (``\\T``, ``\\E``, ``\\R``, ``\\softmax`` ...)
  are expanded;
- a figure cell (MyST-NB ``mystnb: figure: {name, caption}`` metadata) is followed by a Markdown
  cell with its number and caption.

``python -m gradynamics.booktools sync`` rewrites every twin from its ``.md`` (deterministic:
re-syncing an unchanged chapter rewrites nothing); ``python -m gradynamics.booktools check``
lists the pairs that are out of sync; ``python -m gradynamics.booktools install-cell`` prints
the canonical first cell of a chapter, and ``fix-install-cells`` writes it into every chapter
whose install cell differs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import pathlib
import re
import sys
from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# The repository and the chapter template
# --------------------------------------------------------------------------------------------

#: Peer libraries some chapters compare with; Colab lacks them (all their own dependencies,
#: numba, scikit-learn, scipy, numpy and torch, are on Colab already, hence ``--no-deps``).
COLAB_PEERS: tuple[str, ...] = ("skglm>=0.4", "torchdeq>=0.1", "pytorch-optimizer>=3.0")

INSTALL_CELL_COMMENT = "# On Colab: install the book's library and the peer libraries it is checked"


def repository_root(start: pathlib.Path | str = ".") -> pathlib.Path:
    """The folder holding ``_config.yml`` at or above ``start``."""
    here = pathlib.Path(start).resolve()
    for folder in (here, *here.parents):
        if (folder / "_config.yml").is_file():
            return folder
    raise ValueError(f"start: no _config.yml at or above {here}")


@functools.lru_cache(maxsize=8)
def _config(root: pathlib.Path) -> dict:
    import yaml

    return yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))


def book_macros(root: pathlib.Path | str = ".") -> dict[str, str]:
    """The book-only MathJax macros of ``_config.yml`` (name without backslash -> expansion)."""
    config = _config(repository_root(root))
    return dict(config["sphinx"]["config"]["mathjax3_config"]["tex"]["macros"])


def install_cell_source(root: pathlib.Path | str = ".") -> str:
    """The exact first code cell of every chapter (the Colab install cell)."""
    repo = _config(repository_root(root))["repository"]
    target = f"gradynamics @ git+{repo['url']}@{repo['branch']}"
    packages = " ".join(f'"{spec}"' for spec in (target, *COLAB_PEERS))
    return (f"{INSTALL_CELL_COMMENT}\n"
            "# against (--no-deps: Colab's own torch, numpy and sympy stay as they are).\n"
            "try:\n"
            "    import gradynamics  # noqa: F401\n"
            "except ImportError:\n"
            f"    %pip install --quiet --no-deps {packages}")


def is_install_cell(source: str) -> bool:
    """True for a chapter's Colab install cell (``%pip install`` of the book's library)."""
    return "%pip install" in source and "gradynamics" in source


def is_setup_cell(source: str) -> bool:
    """True for a chapter's imports/device/seeding cell (the one after the install cell)."""
    return "import gradynamics" in source and "describe_runtime" in source


_FIRST_CODE_CELL = re.compile(r"^```\{code-cell\}[^\n]*\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)


def fix_install_cell(md_path: pathlib.Path | str) -> bool:
    """Replace a chapter's install cell by the canonical one; True if the file changed."""
    path = pathlib.Path(md_path)
    text = path.read_text(encoding="utf-8")
    match = _FIRST_CODE_CELL.search(text)
    if match is None or not is_install_cell(match.group("body")):
        return False
    canonical = install_cell_source(path.parent) + "\n"
    if match.group("body") == canonical:
        return False
    path.write_text(text[:match.start("body")] + canonical + text[match.end("body"):],
                    encoding="utf-8")
    return True


# --------------------------------------------------------------------------------------------
# Notebook pairs
# --------------------------------------------------------------------------------------------


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


def _cell_id(index: int, source: str) -> str:
    return hashlib.sha1(f"{index}:{source}".encode()).hexdigest()[:8]


def expected_notebook(md_path: pathlib.Path):
    """The output-free twin that the ``.md`` file defines (Markdown translated for Jupyter)."""
    import jupytext
    import nbformat

    md_path = pathlib.Path(md_path)
    notebook = jupytext.read(md_path, fmt="md:myst")
    notebook.metadata.pop("jupytext", None)
    context = ChapterContext.for_chapter(md_path)
    cells = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            cell.source = context.translate(cell.source)
            cells.append(cell)
            continue
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cells.append(cell)
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure")
        if cell.cell_type == "code" and isinstance(figure, dict) and figure.get("name"):
            cells.append(nbformat.v4.new_markdown_cell(context.figure_caption(figure)))
    cited = context.references_markdown()
    if cited:
        cells.append(nbformat.v4.new_markdown_cell(cited))
    for index, cell in enumerate(cells):
        # Deterministic cell ids: re-syncing an unchanged .md rewrites nothing.
        cell.id = _cell_id(index, cell.source)
    notebook.cells = cells
    return notebook


def pair_problems(md_path: pathlib.Path) -> list[str]:
    """Why the ``.ipynb`` beside ``md_path`` is not a faithful, output-free twin (empty: fine)."""
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
    """Rewrite every ``.ipynb`` twin from its ``.md``; return the files written."""
    import nbformat

    written = []
    _label_index.cache_clear()
    for md_path in myst_notebooks(book_dir):
        ipynb = md_path.with_suffix(".ipynb")
        notebook = expected_notebook(md_path)
        text = nbformat.writes(notebook) + "\n"
        if not ipynb.exists() or ipynb.read_text(encoding="utf-8") != text:
            ipynb.write_text(text, encoding="utf-8")
            written.append(ipynb)
    return written


# --------------------------------------------------------------------------------------------
# MyST -> plain Jupyter Markdown
# --------------------------------------------------------------------------------------------

#: Directives of sphinx-proof (one counter per type, as the book numbers them).
PROOF_TYPES = ("theorem", "lemma", "definition", "proposition", "corollary", "remark",
               "example", "assumption", "conjecture", "axiom", "criterion", "property",
               "observation", "algorithm", "proof")
ADMONITIONS = ("note", "tip", "hint", "important", "warning", "caution", "attention", "danger",
               "error", "seealso", "admonition")

_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:.+-]+)\}"
                         r"[ \t]*(?P<arg>.*?)[ \t]*$")
_PLAIN_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})")
_TARGET = re.compile(r"^\((?P<label>[\w:.+-]+)\)=[ \t]*$")
_EQUATION = re.compile(r"\$\$(?P<body>(?:(?!\$\$).)+?)\$\$[ \t]*\((?P<label>[\w:.+-]+)\)",
                       re.S)
_ROLE = re.compile(r"\{(?P<name>[a-zA-Z][\w:+-]*)\}`(?P<content>[^`]+)`")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
#: What is left of MyST in a Markdown text after translation (tests assert none is).
LEFTOVER_MYST = re.compile(r"(\{[a-zA-Z][\w:+-]*\}`|^[ \t]*(`{3,}|:{3,})\{|^\([\w:.+-]+\)=\s*$)",
                           re.M)


@dataclass
class Label:
    """A cross-reference target: where it is, what kind, its number and title."""

    doc: pathlib.Path
    kind: str
    number: int | None = None
    title: str = ""


def _split_options(lines: list[str]) -> tuple[dict, list[str]]:
    """Split a directive body into its ``:key: value`` / YAML options and the content."""
    options: dict[str, str] = {}
    if lines and lines[0].strip() == "---":
        end = next((k for k in range(1, len(lines)) if lines[k].strip() == "---"), None)
        if end is not None:
            import yaml

            loaded = yaml.safe_load("\n".join(lines[1:end])) or {}
            return {str(k): v for k, v in loaded.items()}, lines[end + 1:]
    k = 0
    while k < len(lines) and re.match(r"^:[\w-]+:", lines[k].strip()):
        key, _, value = lines[k].strip()[1:].partition(":")
        options[key] = value.strip()
        k += 1
    return options, lines[k:]


def _blocks(text: str):
    """Yield ('text', str), ('verbatim', str) (code fences) and ('directive', name, arg,
    options, body) pieces of MyST text."""
    lines = text.split("\n")
    buffer: list[str] = []
    k = 0
    while k < len(lines):
        match = _FENCE_OPEN.match(lines[k])
        plain = _PLAIN_FENCE.match(lines[k]) if not match else None
        if plain:  # an ordinary code fence: kept verbatim up to its closing fence
            fence = plain.group(1)
            if buffer:
                yield ("text", "\n".join(buffer))
                buffer = []
            verbatim = [lines[k]]
            k += 1
            while k < len(lines):
                verbatim.append(lines[k])
                k += 1
                if lines[k - 1].strip().startswith(fence[0] * len(fence)) and \
                        set(lines[k - 1].strip()) <= {fence[0]}:
                    break
            yield ("verbatim", "\n".join(verbatim))
            continue
        if not match:
            buffer.append(lines[k])
            k += 1
            continue
        fence = match.group("fence")
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        end = next((j for j in range(k + 1, len(lines)) if closing.match(lines[j])), len(lines))
        if buffer:
            yield ("text", "\n".join(buffer))
            buffer = []
        options, body = _split_options(lines[k + 1:end])
        yield ("directive", match.group("name"), match.group("arg"), options, "\n".join(body))
        k = end + 1
    if buffer:
        yield ("text", "\n".join(buffer))


def _strip_markup(text: str) -> str:
    return re.sub(r"[*_`]", "", text).strip()


def _scan_labels(md_path: pathlib.Path) -> dict[str, Label]:
    """Every label a page defines, numbered per page in the order the book numbers them."""
    text = md_path.read_text(encoding="utf-8")
    labels: dict[str, Label] = {}
    counters: dict[str, int] = {}

    def number(kind: str) -> int:
        counters[kind] = counters.get(kind, 0) + 1
        return counters[kind]

    pending_target: str | None = None
    for piece in _blocks(text):
        if piece[0] == "verbatim":
            continue
        if piece[0] == "text":
            for line in piece[1].split("\n"):
                target = _TARGET.match(line)
                heading = _HEADING.match(line)
                if target:
                    pending_target = target.group("label")
                elif heading and pending_target:
                    labels[pending_target] = Label(md_path, "section",
                                                   title=_strip_markup(heading.group(2)))
                    pending_target = None
                elif line.strip():
                    pending_target = None
            for eq in _EQUATION.finditer(piece[1]):
                labels[eq.group("label")] = Label(md_path, "equation", number("equation"))
            continue
        _, name, arg, options, body = piece
        kind = name.split(":")[-1]
        label = options.get("label") or options.get("name")
        if name.startswith("prf:") or name == "exercise":
            n = number(kind)
            if label:
                labels[label] = Label(md_path, kind, n, _strip_markup(arg))
        elif name == "figure":
            n = number("figure")
            if label:
                labels[label] = Label(md_path, "figure", n, _strip_markup(options.get("alt", "")))
        elif name == "math" and label:
            labels[label] = Label(md_path, "equation", number("equation"))
        elif name == "code-cell":
            figure = _figure_options(options)
            if figure:
                labels[figure["name"]] = Label(md_path, "figure", number("figure"))
            continue
        for eq in _EQUATION.finditer(body):  # equations inside theorems and exercises
            labels[eq.group("label")] = Label(md_path, "equation", number("equation"))
    return labels


def _figure_options(options: dict) -> dict | None:
    """The ``mystnb: figure:`` options of a code cell's YAML header, if any."""
    mystnb = options.get("mystnb")
    figure = mystnb.get("figure") if isinstance(mystnb, dict) else None
    return figure if isinstance(figure, dict) and figure.get("name") else None


@functools.lru_cache(maxsize=4)
def _label_index(root: pathlib.Path) -> dict[str, Label]:
    index: dict[str, Label] = {}
    for md_path in sorted((root / "book").rglob("*.md")):
        if ".ipynb_checkpoints" not in md_path.parts:
            index.update(_scan_labels_cached(md_path, md_path.stat().st_mtime_ns))
    return index


@functools.lru_cache(maxsize=64)
def _scan_labels_cached(md_path: pathlib.Path, mtime: int) -> dict[str, Label]:
    return _scan_labels(md_path)


@functools.lru_cache(maxsize=4)
def _bibliography(bib_path: pathlib.Path, mtime: int) -> dict[str, dict[str, str]]:
    from pybtex.database import parse_file
    from pybtex.richtext import Text

    def clean(value: str) -> str:
        return Text.from_latex(value).render_as("text").replace("{", "").replace("}", "")

    entries = {}
    for key, entry in parse_file(str(bib_path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        last = [clean(" ".join(p.last_names)) for p in people]
        full = [clean(" ".join(p.last_names)) + ", " + clean(" ".join(p.first_names))
                for p in people]
        fields = {name: clean(value) for name, value in entry.fields.items()}
        if len(last) == 1:
            short = last[0]
        elif len(last) == 2:
            short = f"{last[0]} and {last[1]}"
        else:
            short = f"{last[0]} et al." if last else fields.get("title", key)
        entries[key] = {"short": short, "year": fields.get("year", "n.d."),
                        "authors": "; ".join(full), **fields}
    return entries


@dataclass
class ChapterContext:
    """What translating one chapter needs: its labels, the book's labels, bib, macros."""

    path: pathlib.Path
    labels: dict[str, Label]
    bibliography: dict[str, dict[str, str]]
    macros: dict[str, str]
    cited: list[str] = field(default_factory=list)

    @classmethod
    def for_chapter(cls, md_path: pathlib.Path) -> ChapterContext:
        """Build the context of the chapter ``md_path`` from the repository it sits in."""
        md_path = pathlib.Path(md_path).resolve()
        root = repository_root(md_path.parent)
        bib = root / "references.bib"
        index = dict(_label_index(root))
        index.update(_scan_labels(md_path))  # the chapter's own labels, as they are now
        return cls(md_path, index,
                   _bibliography(bib, bib.stat().st_mtime_ns) if bib.exists() else {},
                   book_macros(root))

    # -- roles ---------------------------------------------------------------------------
    def _href(self, label: str) -> str:
        target = self.labels.get(label)
        if target is None or target.doc == self.path:
            return f"#{label}"
        rel = pathlib.Path(_relpath(target.doc, self.path.parent))
        suffix = ".ipynb" if target.doc.with_suffix(".ipynb").exists() else ".md"
        return f"{rel.with_suffix(suffix).as_posix()}#{label}"

    def _name(self, label: str) -> str:
        target = self.labels.get(label)
        if target is None:
            return label
        if target.kind == "equation":
            return f"({target.number})"
        if target.kind == "section":
            return target.title
        word = "Fig." if target.kind == "figure" else target.kind.capitalize()
        return f"{word} {target.number}" if target.number else target.title

    def _cite(self, name: str, content: str) -> str:
        keys = [k.strip() for k in content.split(",") if k.strip()]
        parts = []
        for key in keys:
            entry = self.bibliography.get(key)
            if entry is None:
                parts.append(f"[{key}]")
                continue
            if key not in self.cited:
                self.cited.append(key)
            if name.startswith("cite:t"):
                parts.append(f"[{entry['short']} ({entry['year']})](#ref-{key})")
            else:
                parts.append(f"[{entry['short']}, {entry['year']}](#ref-{key})")
        if name.startswith("cite:t"):
            return " and ".join(parts) if len(parts) < 3 else ", ".join(parts)
        return "(" + "; ".join(parts) + ")"

    def role(self, name: str, content: str) -> str:
        """Plain Markdown for one MyST role."""
        explicit = re.match(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", content, re.S)
        text, target = (explicit.group("text"), explicit.group("target")) if explicit \
            else (None, content.strip())
        if name.startswith("cite"):
            return self._cite(name, content)
        if name == "eq":
            return f"[{self._name(target)}]({self._href(target)})"
        if name in ("numref", "ref", "prf:ref", "any", "exercise:ref", "solution:ref"):
            label = self.labels.get(target)
            shown = text if text is not None else self._name(target)
            if text is not None and label is not None:
                shown = (shown.replace("%s", str(label.number or ""))
                         .replace("{number}", str(label.number or ""))
                         .replace("{name}", label.title))
            return f"[{shown}]({self._href(target)})"
        if name == "doc":
            rel = target if target.endswith((".md", ".ipynb")) else target + ".ipynb"
            return f"[{text or pathlib.Path(target).name}]({rel})"
        if name == "math":
            return f"${content}$"
        if name.startswith("glue"):
            key = content.split(":")[0]
            return f"`{key}` (printed by a cell of this notebook)"
        if name in ("download",) and target:
            return f"[{text or target}]({target})"
        return text if text is not None else content

    # -- text and directives --------------------------------------------------------------
    def _inline(self, text: str) -> str:
        """Roles, equation tags, targets and macros of a Markdown text without directives."""
        protected: list[str] = []

        def protect(match: re.Match) -> str:
            protected.append(match.group(0))
            return f"\x00{len(protected) - 1}\x00"

        text = re.sub(r"``.+?``", protect, text)
        text = _ROLE.sub(lambda m: self.role(m.group("name"), m.group("content")), text)

        def equation(match: re.Match) -> str:
            label = match.group("label")
            number = self.labels[label].number if label in self.labels else None
            tag = f" \\tag{{{number}}}" if number else ""
            body = match.group("body").rstrip()
            return f'<a id="{label}"></a>\n\n$${body}{tag}\n$$'

        text = _EQUATION.sub(equation, text)
        text = "\n".join(f'<a id="{m.group("label")}"></a>' if (m := _TARGET.match(line))
                         else line for line in text.split("\n"))
        text = re.sub(r"(?<!`)`[^`\n]+`(?!`)", protect, text)
        for name, expansion in self.macros.items():
            text = re.sub(rf"\\{name}(?![A-Za-z])", lambda _m, e=expansion: e, text)
        while "\x00" in text:
            text = re.sub(r"\x00(\d+)\x00", lambda m: protected[int(m.group(1))], text)
        return text

    def translate(self, text: str) -> str:
        """A MyST Markdown cell as Markdown that plain Jupyter (Colab, JupyterLab) renders."""
        out = []
        for piece in _blocks(text):
            if piece[0] == "verbatim":
                out.append(piece[1])
            elif piece[0] == "text":
                out.append(self._inline(piece[1]))
            else:
                out.append(self._directive(*piece[1:]))
        return "\n".join(out).strip("\n")

    def _directive(self, name: str, arg: str, options: dict[str, str], body: str) -> str:
        kind = name.split(":")[-1]
        label = options.get("label") or options.get("name")
        anchor = f'<a id="{label}"></a>' if label else ""
        inner = self.translate(body)
        title = self._inline(arg) if arg else ""
        if name.startswith("prf:") or name == "exercise":
            if kind == "proof":
                return f"{anchor}*Proof.* {inner} $\\blacksquare$".strip()
            target = self.labels.get(label) if label else None
            number = f" {target.number}" if target and target.number else ""
            head = f"**{kind.capitalize()}{number}" + (f" ({title})" if title else "") + ".**"
            return f"{anchor}{head} {inner}".strip()
        if name == "solution":
            return self._solution(arg, inner, options)
        if name == "solution-start":
            return f"**Solution to {self._name(arg.strip())}.**"
        if name == "solution-end":
            return "*End of the solution.*"
        if name in ADMONITIONS or name in ("dropdown", "margin", "sidebar", "topic", "epigraph"):
            heading = title if name in ("admonition", "dropdown", "sidebar", "topic") and title \
                else name.capitalize()
            if name == "dropdown" or "dropdown" in options.get("class", ""):
                return f"<details>\n<summary><b>{heading}</b></summary>\n\n{inner}\n\n</details>"
            if "$$" in inner or "```" in inner:
                return f"{anchor}**{heading}.** {inner}"
            quoted = "\n".join(f"> {line}" if line else ">" for line in
                               f"**{heading}.** {inner}".split("\n"))
            return f"{anchor}{quoted}"
        if name == "figure":
            target = self.labels.get(label) if label else None
            number = f" {target.number}" if target and target.number else ""
            return f"{anchor}![{_strip_markup(inner)}]({arg})\n\n**Figure{number}.** {inner}"
        if name == "math":
            target = self.labels.get(label) if label else None
            tag = f" \\tag{{{target.number}}}" if target and target.number else ""
            return f"{anchor}\n\n$${self._inline(body)}{tag}$$"
        if name in ("code-block", "code", "sourcecode"):
            return f"```{arg}\n{body}\n```"
        if name in ("bibliography", "nb-exec-table", "tableofcontents", "toctree"):
            return ""
        if name.startswith("glue"):
            return f"*(The output `{arg}` appears where the cell that computes it runs.)*"
        return f"{anchor}**{title or kind.capitalize()}.** {inner}".strip()

    def _solution(self, arg: str, inner: str, options: dict[str, str]) -> str:
        heading = f"Solution to {self._name(arg.strip())}"
        if "dropdown" in options.get("class", ""):
            return f"<details>\n<summary><b>{heading}</b></summary>\n\n{inner}\n\n</details>"
        return f"**{heading}.** {inner}"

    def figure_caption(self, figure: dict) -> str:
        """The Markdown cell placed under a figure cell: anchor, number and caption."""
        name = figure["name"]
        target = self.labels.get(name)
        number = f" {target.number}" if target and target.number else ""
        caption = self._inline(str(figure.get("caption", "")).strip())
        return f'<a id="{name}"></a>**Figure{number}.** {caption}'.strip()

    def references_markdown(self) -> str:
        """A *References* cell listing the works this chapter cites (empty if none)."""
        if not self.cited:
            return ""
        lines = ["## References", ""]
        for key in sorted(self.cited, key=lambda k: (self.bibliography[k]["short"],
                                                     self.bibliography[k]["year"])):
            entry = self.bibliography[key]
            venue = entry.get("journal") or entry.get("booktitle") or entry.get("publisher") \
                or entry.get("howpublished") or entry.get("eprint", "")
            venue = f" *{venue}*." if venue else ""
            link = entry.get("url") or (f"https://doi.org/{entry['doi']}" if entry.get("doi")
                                        else "")
            link = f" <{link}>" if link else ""
            lines.append(f'- <a id="ref-{key}"></a>{entry["authors"]} ({entry["year"]}). '
                         f'{entry.get("title", "")}.{venue}{link}')
        return "\n".join(lines)


def _relpath(target: pathlib.Path, start: pathlib.Path) -> str:
    import os

    return os.path.relpath(target, start)


def leftover_myst(text: str, macros: dict[str, str]) -> list[str]:
    """MyST syntax or book-only macros left in a Markdown text (outside code spans/fences)."""
    stripped = re.sub(r"^[ \t]*(`{3,}|~{3,})(?!\{).*?^[ \t]*\1[ \t]*$", "", text, flags=re.M | re.S)
    stripped = re.sub(r"``.+?``", "", stripped)
    found = [m.group(0).strip() for m in LEFTOVER_MYST.finditer(stripped)]
    stripped = re.sub(r"(?<!`)`[^`\n]+`(?!`)", "", stripped)
    for name in macros:
        found += [m.group(0) for m in re.finditer(rf"\\{name}(?![A-Za-z])", stripped)]
    return found


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    """Command line: ``sync``, ``check``, ``install-cell`` or ``fix-install-cells``."""
    commands = ("sync", "check", "install-cell", "fix-install-cells")
    if len(argv) != 1 or argv[0] not in commands:
        print(f"usage: python -m gradynamics.booktools {{{'|'.join(commands)}}}", file=sys.stderr)
        return 2
    if argv[0] == "install-cell":
        print(install_cell_source())
        return 0
    if argv[0] == "fix-install-cells":
        for md_path in myst_notebooks():
            if fix_install_cell(md_path):
                print(f"rewrote the install cell of {md_path}")
        return 0
    if argv[0] == "sync":
        for path in sync():
            print(f"wrote {path}")
        return 0
    problems = [p for md in myst_notebooks() for p in pair_problems(md)]
    print("\n".join(problems) if problems else "all notebook pairs in sync")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
