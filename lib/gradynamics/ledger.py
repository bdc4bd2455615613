"""The claims ledger: every checkable claim of a chapter, how it was checked, and the result.

A chapter creates one ``ClaimsLedger`` and calls :meth:`ClaimsLedger.check` for each claim.
``check`` records the row *and* raises ``AssertionError`` when the claim fails, so the ledger
can never show a failing claim in a notebook that passed nbval. The chapter ends by displaying
the ledger as a table (it renders itself in Jupyter and in the built book).
"""

from __future__ import annotations

import html
import math
import operator
from dataclasses import dataclass

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


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) < 1e-3 or abs(value) >= 1e4:
        return f"{value:.2e}"
    return f"{value:.4g}"


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

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{h}</th>" for h in
                       ("#", "claim", "method", "measured", "required", "pass"))
        body = []
        for k, row in enumerate(self.rows, 1):
            mark = "&#10003;" if row.passed else "<b>FAIL</b>"
            cells = (str(k), html.escape(row.claim), html.escape(row.method),
                     row.measured_text(), html.escape(f"{row.relation} {_fmt(row.threshold)}"),
                     mark)
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
        return (f"<table class='claims-ledger'><caption>Claims ledger: "
                f"{html.escape(self.chapter)}</caption><thead><tr>{head}</tr></thead>"
                f"<tbody>{''.join(body)}</tbody></table>")

    def __repr__(self) -> str:
        return f"ClaimsLedger({self.chapter!r}, {len(self.rows)} claims)\n" + self.to_markdown()
