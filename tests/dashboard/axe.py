"""axe-core, vendored from the npm registry, run in a page the way a person's browser shows it.

The script goes in with ``page.evaluate`` (DevTools), not a ``<script>`` tag: the dashboard's
Content-Security-Policy refuses inline scripts, and Playwright's ``add_script_tag`` inserts one.
Evaluating through DevTools leaves the page's policy in force (no ``bypass_csp``), so what axe
checks is the page exactly as served.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

VENDOR = Path(__file__).resolve().parent / "vendor" / "axe-core"
# What fails a page. "moderate" and "minor" findings are printed, not failed on.
FAILING = ("serious", "critical")
# WCAG 2.0-2.2 A and AA, plus axe's best practices (landmarks, one h1, ...).
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


@cache
def axe_source() -> str:
    return (VENDOR / "axe.min.js").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str
    help: str
    help_url: str
    targets: tuple[str, ...]
    summary: str
    html: str  # the first element's markup, shortened

    def __str__(self) -> str:
        where = "\n".join(f"      at {t}" for t in self.targets[:8])
        more = f"\n      ... and {len(self.targets) - 8} more" if len(self.targets) > 8 else ""
        return (
            f"  {self.impact.upper()} {self.rule}: {self.help}\n    {self.help_url}\n{where}{more}"
            f"\n    {self.summary.splitlines()[0] if self.summary else ''}\n    e.g. {self.html}"
        )


def run_axe(page: Page) -> list[Violation]:
    """Every violation axe finds in the page as it is now (all impacts)."""
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source())
    results: dict[str, Any] = page.evaluate(
        """async (tags) => {
            const r = await axe.run(document, {
                runOnly: {type: 'tag', values: tags},
                resultTypes: ['violations'],
            });
            return {violations: r.violations.map(v => ({
                id: v.id, impact: v.impact || 'minor', help: v.help, helpUrl: v.helpUrl,
                targets: v.nodes.map(n => n.target.map(String).join(' >>> ')),
                summary: (v.nodes[0] && v.nodes[0].failureSummary) || '',
                html: ((v.nodes[0] && v.nodes[0].html) || '').slice(0, 300),
            }))};
        }""",
        TAGS,
    )
    return [
        Violation(
            rule=v["id"],
            impact=v["impact"],
            help=v["help"],
            help_url=v["helpUrl"],
            targets=tuple(v["targets"]),
            summary=v["summary"],
            html=v["html"],
        )
        for v in results["violations"]
    ]


def report(name: str, violations: list[Violation]) -> str:
    return f"{name}: {len(violations)} accessibility violation(s)\n" + "\n".join(map(str, violations))
