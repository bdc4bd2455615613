"""The claims ledger: every checkable claim of a chapter, how it was checked, and the result.

A chapter creates one ``ClaimsLedger`` and calls :meth:`ClaimsLedger.check` for each claim.
``check`` records the row *and* raises ``AssertionError`` when the claim fails, so the ledger
can never show a failing claim in a notebook that passed nbval. The chapter ends by displaying
the ledger as a table (it renders itself in Jupyter and in the built book).
"""

from __future__ import annotations

import html
import json
import math
import operator
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

_RELATIONS = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


@dataclass(frozen=True)
class Claim:
    """One row of the ledger."""

    claim: str
    method: str
    measured: float
    relation: str
    threshold: float
    passed: bool

    def measured_text(self) -> str:
        return _fmt(self.measured)


def _math(text: str) -> str:
    """Escape ``text`` for HTML, turning inline ``$...$`` into MathJax's ``\\(...\\)``."""
    return re.sub(r"\$([^$]+)\$", r"\\(\1\\)", html.escape(text))


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e4:
        return f"{value:.2e}"
    return f"{value:.4g}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]],
                   align: str = "") -> str:
    """A Markdown table (show it with ``display(Markdown(...))``; never ``print`` a table).

    ``align`` has one letter per column, ``l``/``r``/``c`` (default: all left-aligned).
    """
    header = [str(h) for h in header]
    if not header:
        raise ValueError("header: expected at least one column name")
    align = align or "l" * len(header)
    if len(align) != len(header) or set(align) - set("lrc"):
        raise ValueError(f"align: expected {len(header)} letters from 'lrc', got {align!r}")
    rules = {"l": ":---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(rules[a] for a in align) + "|"]
    for k, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"rows: row {k} has {len(row)} cells, expected {len(header)}")
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


class ClaimsLedger:
    """Collects (claim, method, measured, threshold, pass) rows and renders them as a table."""

    def __init__(self, chapter: str) -> None:
        if not isinstance(chapter, str) or not chapter.strip():
            raise ValueError("chapter: expected a non-empty title string")
        self.chapter = chapter
        self.rows: list[Claim] = []

    def check(self, claim: str, method: str, measured: float, threshold: float,
              relation: str = "<") -> None:
        """Record a claim ``measured <relation> threshold`` and assert that it holds.

        Returns nothing, so a ``check`` as the last line of a cell prints nothing; the recorded
        row is ``ledger.rows[-1]``.
        """
        for name, text in (("claim", claim), ("method", method)):
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"{name}: expected a non-empty description string")
        if relation not in _RELATIONS:
            raise ValueError(f"relation: expected one of {sorted(_RELATIONS)}, got {relation!r}")
        try:
            measured_f = float(measured)
            threshold_f = float(threshold)
        except (TypeError, ValueError) as err:
            raise ValueError("measured/threshold: expected real numbers") from err
        if math.isnan(measured_f):
            raise ValueError(f"measured: is NaN for claim {claim!r}")
        if math.isnan(threshold_f):
            raise ValueError("threshold: is NaN")
        passed = bool(_RELATIONS[relation](measured_f, threshold_f))
        row = Claim(claim, method, measured_f, relation, threshold_f, passed)
        self.rows.append(row)
        if not passed:
            raise AssertionError(f"claim failed: {claim} -- measured {_fmt(measured_f)}, "
                                 f"required {relation} {_fmt(threshold_f)} ({method})")

    @property
    def all_passed(self) -> bool:
        """True when every recorded claim passed (and at least one was recorded)."""
        return bool(self.rows) and all(row.passed for row in self.rows)

    def assert_all(self) -> None:
        """Raise if the ledger is empty or any claim failed."""
        if not self.rows:
            raise AssertionError(f"{self.chapter}: the claims ledger is empty")
        failed = [row.claim for row in self.rows if not row.passed]
        if failed:
            raise AssertionError(f"{self.chapter}: failed claims: {failed}")

    def to_markdown(self) -> str:
        """The ledger as a Markdown table."""
        lines = ["| # | claim | method | measured | required | pass |",
                 "|---|---|---|---|---|---|"]
        for k, row in enumerate(self.rows, 1):
            mark = "yes" if row.passed else "**NO**"
            lines.append(f"| {k} | {row.claim} | {row.method} | {row.measured_text()} | "
                         f"{row.relation} {_fmt(row.threshold)} | {mark} |")
        return "\n".join(lines)

    def to_json(self) -> str:
        """The ledger as JSON: ``{"chapter": ..., "rows": [{claim, method, measured, ...}]}``."""
        return json.dumps({"chapter": self.chapter, "rows": [asdict(row) for row in self.rows]},
                          sort_keys=True)

    def _repr_html_(self) -> str:
        """The table shown under the chapter's last cell, with the rows embedded as JSON.

        The ``<script type="application/json" class="gradynamics-claims">`` element is inert in
        every notebook front end; the book's Sphinx extension (``gradynamics.sphinxext``)
        collects it from the executed chapters to build the book-wide claims page. Inline
        ``$...$`` in a claim is rendered as math.
        """
        head = "".join(f'<th scope="col">{h}</th>' for h in
                       ("#", "claim", "method", "measured", "required", "pass"))
        body = []
        for k, row in enumerate(self.rows, 1):
            mark = "&#10003;" if row.passed else "<strong>FAIL</strong>"
            cells = (("num", str(k)), ("claim", _math(row.claim)), ("method", _math(row.method)),
                     ("num", row.measured_text()),
                     ("num", html.escape(f"{row.relation} {_fmt(row.threshold)}")),
                     ("pass", mark))
            body.append("<tr>" + "".join(f'<td class="{c}">{v}</td>' for c, v in cells)
                        + "</tr>")
        data = self.to_json().replace("</", "<\\/")
        return (f'<div class="claims-ledger-wrapper"><table class="claims-ledger '
                f'mathjax_process tex2jax_process"><caption>Claims ledger: '
                f"{html.escape(self.chapter)}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table></div>"
                f'<script type="application/json" class="gradynamics-claims">{data}</script>')

    def __repr__(self) -> str:
        return f"ClaimsLedger({self.chapter!r}, {len(self.rows)} claims)\n" + self.to_markdown()
