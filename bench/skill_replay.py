"""Skill replay: a 20-step skill replayed vs. the same 20 steps as a hand-written step program.

The steps (goto / fill / select / check / click / extract / wait_for / assert_text on the fixture
site's ``/bench-form``, an order form whose fields and buttons each have an id, a label or a name
and a role; no gates):

   1 goto /bench-form           8 check #bf-news            15 assert_text Preview: Ada ...
   2 fill #bf-name              9 click #bf-add             16 extract #bf-summary
   3 fill #bf-email            10 click #bf-add             17 click #bf-submit
   4 fill #bf-company          11 extract #bf-seats         18 wait_for #bf-done
   5 select #bf-plan           12 fill #bf-notes            19 assert_text Order confirmed
   6 select #bf-country        13 click #bf-preview         20 extract #bf-ref
   7 check #bf-terms           14 wait_for #bf-summary

17 of them are element steps. The hand-written program runs once, compiles into a skill
(``POST /api/runs/{id}/compile``, the name as a parameter) whose element steps must all find
their element by the id first (``locator.unique[0] == "id"``). Then, alternating (in a Williams
square: each variant runs right after each other one about equally often), four variants of the
same 20 steps:

* hand-written: ``POST /api/runs?wait=60 {"steps": ...}`` (selectors);
* skill: ``POST /api/runs?wait=60 {"skill": ..., "params": ...}``: every element found by its
  locator bundle, the primary locator (the id) holds; no ``step.healed`` event allowed;
* healed: the same skill with the site's ``bench_renamed`` toggle on (every id renamed; labels,
  roles and names stay): every element step heals (one ``step.healed`` per element step);
* plain: the 20 steps as a Playwright script over CDP on an already-running Chromium with the
  same binary and flags (``new_context()`` -> last step), as in bench/executor_overhead.py.

Each Twin run is measured as the executor's time (``started_at`` -> ``finished_at``), the
server's (``created_at`` -> ``finished_at``) and the client's wall time of the one HTTP call.
Every run must complete with the expected outputs and place exactly one order on the site.

Targets (issue 10): skill / hand-written <= 1.05x; healed / hand-written <= 1.3x (medians).

Usage:  .venv/bin/python bench/skill_replay.py [--reps N] [--no-video] [--per-rep]
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Bench, median, ms, own_chromium, plain_run, table, verdict

TARGET_SKILL = 1.05
TARGET_HEALED = 1.3
SLUG = "bench-order"
NAME = "Ada Lovelace"
SUMMARY = f"Preview: {NAME}, pro, FR, 3 seats, terms accepted, newsletter"
REF_RE = re.compile(r"^BF-\d{4}$")
VARIANTS = ("hand", "skill", "healed", "plain")
# The order of the variants in each repetition, cycling: a Williams square, so each variant comes
# right after each other one equally often (a run's start depends on what ran just before it).
ORDERS = (
    ("hand", "skill", "plain", "healed"),
    ("skill", "healed", "hand", "plain"),
    ("healed", "plain", "skill", "hand"),
    ("plain", "hand", "healed", "skill"),
)
TITLES = {
    "hand": "hand-written program",
    "skill": "skill replay (primary locator holds)",
    "healed": "skill replay (every element step heals)",
    "plain": "plain Playwright script",
}


def steps(bench: Bench) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": bench.site.url("/bench-form")},
        {"action": "fill", "selector": "#bf-name", "value": NAME},
        {"action": "fill", "selector": "#bf-email", "value": "ada@example.com"},
        {"action": "fill", "selector": "#bf-company", "value": "Analytical Engines"},
        {"action": "select", "selector": "#bf-plan", "value": "pro"},
        {"action": "select", "selector": "#bf-country", "value": "FR"},
        {"action": "check", "selector": "#bf-terms"},
        {"action": "check", "selector": "#bf-news"},
        {"action": "click", "selector": "#bf-add"},
        {"action": "click", "selector": "#bf-add"},
        {"action": "extract", "selector": "#bf-seats", "name": "seats"},
        {"action": "fill", "selector": "#bf-notes", "value": "Replay benchmark"},
        {"action": "click", "selector": "#bf-preview"},
        {"action": "wait_for", "selector": "#bf-summary"},
        {"action": "assert_text", "text": SUMMARY},
        {"action": "extract", "selector": "#bf-summary", "name": "summary"},
        {"action": "click", "selector": "#bf-submit"},
        {"action": "wait_for", "selector": "#bf-done"},
        {"action": "assert_text", "text": "Order confirmed"},
        {"action": "extract", "selector": "#bf-ref", "name": "ref"},
    ]


# -- figures -----------------------------------------------------------------------------------------
def p90(values: Sequence[float]) -> float:
    """Nearest-rank 90th percentile (with 50 samples: the 45th smallest)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return float(ordered[max(1, -(-90 * len(ordered) // 100)) - 1])


def stamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Sample:
    executor: float  # Twin: started_at -> finished_at; plain: new_context() -> last step
    server: float | None  # created_at -> finished_at (Twin only)
    client: float | None  # the client's wall time of POST ?wait=60 (Twin only)
    setup: float  # before step 1 (Twin: from started_at; plain: new_context + new_page)
    steps: list[float]  # each step's own time
    gaps: float  # between steps (Twin: bookkeeping + checkpoints); 0 for plain
    tail: float  # after the last step
    outputs: dict[str, str]
    heals: list[dict[str, Any]] = field(default_factory=list)
    after: str = ""  # the variant that ran just before this one


def twin_sample(run: dict[str, Any], client: float) -> Sample:
    started = [stamp(s["started_at"]) for s in run["steps"]]
    finished = [stamp(s["finished_at"]) for s in run["steps"]]
    begun, done = stamp(run["started_at"]), stamp(run["finished_at"])
    return Sample(
        executor=done - begun,
        server=done - stamp(run["created_at"]),
        client=client,
        setup=started[0] - begun,
        steps=[f - s for s, f in zip(started, finished, strict=True)],
        gaps=sum(started[i + 1] - finished[i] for i in range(len(started) - 1)),
        tail=done - finished[-1],
        outputs=dict(run["outputs"]),
    )


# -- the variants -------------------------------------------------------------------------------------
def post_run(bench: Bench, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    assert bench.http is not None
    c0 = time.perf_counter()
    response = bench.http.post("/api/runs?wait=60", json=body)
    client = time.perf_counter() - c0
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/runs: {response.status_code} {response.text[:500]}")
    run = dict(response.json())
    if run["status"] != "completed":
        raise RuntimeError(
            f"run {run['id']} is {run['status']}: {run.get('error')} {run.get('pending_step')}"
        )
    return run, client


def plain(browser: Any, program: list[dict[str, Any]]) -> Sample:
    """The same steps as an ordinary Playwright script (bench.harness.plain_run)."""
    run = plain_run(browser, program)
    return Sample(run.total, None, None, run.setup, run.steps, 0.0, 0.0, run.outputs)


class Replay:
    """The benchmark's state: the program, the compiled skill, the plain side's browser."""

    def __init__(self, bench: Bench, endpoint: str, *, video: bool) -> None:
        from runs.program import ELEMENT_ACTIONS

        self.bench = bench
        self.endpoint = endpoint
        self.video = video
        self.program = steps(bench)
        self.element_steps = [i for i, s in enumerate(self.program, 1) if s["action"] in ELEMENT_ACTIONS]
        self.browser: Any = None
        self.skill: dict[str, Any] = {}

    def connect(self) -> None:
        def connect(pw: Any) -> None:
            self.browser = pw.chromium.connect_over_cdp(self.endpoint)

        self.bench.in_browser(connect)

    def compile(self) -> dict[str, Any]:
        """Run the hand-written program once and compile that run into the skill; check the skill."""
        assert self.bench.http is not None
        run, _ = post_run(self.bench, self.body("hand"))
        response = self.bench.http.post(
            f"/api/runs/{run['id']}/compile", json={"slug": SLUG, "params": {"name": NAME}}
        )
        if response.status_code != 201:
            raise RuntimeError(f"compile: {response.status_code} {response.text[:500]}")
        skill = dict(response.json())
        with_bundle = [i for i, s in enumerate(skill["steps"], 1) if isinstance(s.get("locator"), dict)]
        primaries = [skill["steps"][i - 1]["locator"]["unique"][:1] for i in with_bundle]
        if with_bundle != self.element_steps or primaries != [["id"]] * len(with_bundle):
            raise RuntimeError(
                f"the skill's element steps {with_bundle} (expected {self.element_steps}) do not all find "
                f"their element by the id first: {primaries}"
            )
        if [p["name"] for p in skill["params"]] != ["name"]:
            raise RuntimeError(f"the skill's params are {skill['params']}, expected the name only")
        self.skill = skill
        return skill

    def body(self, variant: str) -> dict[str, Any]:
        if variant == "hand":
            return {"goal": "skill replay benchmark", "steps": self.program, "record_video": self.video}
        return {"skill": SLUG, "params": {"name": NAME}, "record_video": self.video}

    def one(self, variant: str) -> Sample:
        """One run of the variant, checked: it did the whole job, and healed exactly as it should."""
        site = self.bench.site
        orders = site.count("bench_order")
        if variant == "plain":
            sample = self.bench.in_browser(lambda _pw: plain(self.browser, self.program))
        else:
            site.set_toggle("bench_renamed", variant == "healed")
            try:
                run, client = post_run(self.bench, self.body(variant))
            finally:
                site.set_toggle("bench_renamed", False)
            sample = twin_sample(run, client)
            if variant != "hand" and (run.get("skill") or {}).get("slug") != SLUG:
                raise RuntimeError(f"run {run['id']} is not a replay of {SLUG}: {run.get('skill')}")
            sample.heals = [
                {"step": e.step_index, **e.data}
                for e in self.bench.events(run["id"])
                if e.type == "step.healed"
            ]
            healed_steps = [h["step"] for h in sample.heals]
            expected = self.element_steps if variant == "healed" else []
            if healed_steps != expected or any(h["by"] == h["primary"] for h in sample.heals):
                raise RuntimeError(
                    f"{variant} run {run['id']} healed steps {healed_steps}, expected {expected}: "
                    f"{sample.heals}"
                )
        placed = [e for e in site.events if e["kind"] == "bench_order"][orders:]
        out = sample.outputs
        if (
            len(placed) != 1
            or out.get("seats") != "3"
            or out.get("summary") != SUMMARY
            or not REF_RE.match(out.get("ref", ""))
            or placed[0]["ref"] != out["ref"]
            or (placed[0]["name"], placed[0]["plan"], placed[0]["country"], placed[0]["seats"])
            != (NAME, "pro", "FR", 3)
        ):
            raise RuntimeError(f"{variant} did not do the job: outputs {out}, orders placed {placed}")
        return sample


# -- the report -----------------------------------------------------------------------------------------
def ratio(a: float, b: float) -> str:
    return f"{a / b:.3f}x"


def report(replay: Replay, samples: dict[str, list[Sample]]) -> None:
    hand, skill, healed = samples["hand"], samples["skill"], samples["healed"]
    print(
        f"skill {SLUG!r} v{replay.skill['version']}: {len(replay.element_steps)} element steps of "
        f"{len(replay.program)}, primary locator of each: id; params: name"
    )
    print()
    clocks = (
        ("executor", "executor: started_at -> finished_at (plain: new_context -> last step)"),
        ("server", "server: created_at -> finished_at"),
        ("client", "client: POST ?wait=60 answered"),
    )

    def values(variant: str, clock: str) -> list[float]:
        return [v for s in samples[variant] if (v := getattr(s, clock)) is not None]

    rows = []
    for variant in VARIANTS:
        row: list[object] = [TITLES[variant], len(samples[variant])]
        for clock, _ in clocks:
            got = values(variant, clock)
            row += [ms(median(got)), ms(p90(got))] if got else ["-", "-"]
        rows.append(row)
    print(
        table(
            ["ms", "n", "executor med", "p90", "server med", "p90", "client med", "p90"],
            rows,
        )
    )
    print()
    pairs = (
        ("skill", "hand"),
        ("healed", "hand"),
        ("hand", "plain"),
        ("skill", "plain"),
        ("healed", "plain"),
    )
    ratio_rows = []
    for a, b in pairs:
        row = [f"{a} / {b}"]
        for clock, _ in clocks:
            denominator = values(b, "executor" if b == "plain" else clock)
            row.append(ratio(median(values(a, clock)), median(denominator)))
        # The median of the repetitions' own ratios (each pair measured back to back): less drift.
        paired = [x.executor / y.executor for x, y in zip(samples[a], samples[b], strict=True)]
        row.append(f"{median(paired):.3f}x")
        ratio_rows.append(row)
    print(
        table(
            ["ratio of medians", "executor", "server", "client", "per-rep executor ratios, median"],
            ratio_rows,
        )
    )
    print("(against plain, every clock of Twin is divided by plain's one: new_context -> last step)")
    print()
    print("where the time goes (medians over repetitions, ms):")
    print(
        table(
            ["part", "hand", "skill", "healed", "plain"],
            [
                [
                    "before step 1 (Twin: from started_at; plain: new_context + new_page)",
                    *(ms(median([s.setup for s in samples[v]])) for v in VARIANTS),
                ],
                [
                    "inside the 20 steps (sum of step started -> finished)",
                    *(ms(median([sum(s.steps) for s in samples[v]])) for v in VARIANTS),
                ],
                [
                    f"  the {len(replay.element_steps)} element steps",
                    *(
                        ms(median([sum(s.steps[i - 1] for i in replay.element_steps) for s in samples[v]]))
                        for v in VARIANTS
                    ),
                ],
                [
                    "between steps (Twin: bookkeeping + checkpoints), sum of 19",
                    *(ms(median([s.gaps for s in samples[v]])) for v in VARIANTS),
                ],
                [
                    "after step 20 (-> finished_at)",
                    *(ms(median([s.tail for s in samples[v]])) for v in VARIANTS),
                ],
            ],
        )
    )
    print()
    by_action: dict[str, dict[str, list[float]]] = {}
    for variant in VARIANTS:
        for sample in samples[variant]:
            for step, took in zip(replay.program, sample.steps, strict=True):
                by_action.setdefault(step["action"], {v: [] for v in VARIANTS})[variant].append(took)
    action_rows = []
    for action, times in by_action.items():
        n = len(times["hand"]) // max(1, len(hand))
        h, s, d, p = (median(times[v]) for v in VARIANTS)
        action_rows.append(
            [
                action,
                n,
                f"{h * 1000:.1f}",
                f"{s * 1000:.1f}",
                f"{d * 1000:.1f}",
                f"{p * 1000:.1f}",
                f"{(s - h) * 1000:+.1f}",
                f"{(d - h) * 1000:+.1f}",
            ]
        )
    print(
        table(
            [
                "one step, by action (ms)",
                "n/run",
                "hand",
                "skill",
                "healed",
                "plain",
                "skill-hand",
                "healed-hand",
            ],
            action_rows,
        )
    )
    print()
    heals = Counter(f"{h['primary']} -> {h['by']}" for s in healed for h in s.heals)
    print(
        f"heals: {sum(heals.values())} step.healed events in {len(healed)} healed replays "
        f"({len(replay.element_steps)} each): " + ", ".join(f"{k} x{n}" for k, n in heals.most_common())
    )
    print(f"skill replays with the primary holding: {sum(len(s.heals) for s in skill)} step.healed events")
    print("order of the variants: " + "; ".join(", ".join(order) for order in ORDERS) + "; ... (cycling)")
    starts = [
        [
            f"{variant} after {before}",
            ms(median([s.setup + s.steps[0] for s in samples[variant] if s.after == before])),
        ]
        for variant in VARIANTS
        for before in VARIANTS
        if any(s.after == before for s in samples[variant])
    ]
    print(table(["start of a run: before step 1 + the goto (median, ms)", ""], starts))
    print()
    print(f"targets: skill / hand-written <= {TARGET_SKILL}x; healed / hand-written <= {TARGET_HEALED}x")
    for clock, words in clocks:
        sk = median(values("skill", clock)) / median(values("hand", clock))
        he = median(values("healed", clock)) / median(values("hand", clock))
        print(
            f"  {words.split(':')[0]:<8}  skill {sk:.3f}x  {verdict(sk <= TARGET_SKILL):<7}  "
            f"healed {he:.3f}x  {verdict(he <= TARGET_HEALED)}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=50, help="repetitions of each variant (default 50)")
    parser.add_argument("--no-video", action="store_true", help="Twin runs without the session video")
    parser.add_argument("--per-rep", action="store_true", help="also print every repetition")
    args = parser.parse_args()

    with (
        Bench("Twin benchmark: skill replay (skill vs. hand-written program vs. plain Playwright)") as bench,
        own_chromium() as endpoint,
    ):
        replay = Replay(bench, endpoint, video=not args.no_video)
        replay.connect()
        bench.warm_up(replay.program)
        bench.say("the hand-written program once, compiled into a skill")
        replay.compile()
        for variant in VARIANTS:  # warm-up of each variant
            replay.one(variant)
        bench.site.reset()
        samples: dict[str, list[Sample]] = {v: [] for v in VARIANTS}
        per_rep = []
        previous = "plain"  # the last warm-up
        for rep in range(args.reps):
            bench.say(f"repetition {rep + 1}/{args.reps}")
            got = {}
            for variant in ORDERS[rep % len(ORDERS)]:
                got[variant] = replay.one(variant)
                got[variant].after = previous
                previous = variant
                samples[variant].append(got[variant])
            per_rep.append(
                [
                    rep + 1,
                    *(ms(got[v].executor) for v in VARIANTS),
                    *(ms(got[v].client or 0) for v in VARIANTS[:3]),
                ]
            )

        bench.header(
            f"the same 20 steps (goto/fill/select/check/click/extract/wait_for/assert_text on /bench-form,\n"
            f"17 element steps, no gates), {args.reps} repetitions of each variant, alternating, all warm.\n"
            "hand = POST /api/runs?wait=60 with the steps; skill = the same run compiled into a skill and\n"
            "replayed by POST /api/runs?wait=60 {skill, params}; healed = that skill with every id renamed;\n"
            "plain = Playwright over CDP to an already-running Chromium, new_context() -> last step.\n"
            f"session video: {'off' if args.no_video else 'on (the default)'} for the Twin runs."
        )
        if args.per_rep:
            print(
                table(
                    [
                        "rep",
                        "hand",
                        "skill",
                        "healed",
                        "plain",
                        "hand client",
                        "skill client",
                        "healed client",
                    ],
                    per_rep,
                )
            )
            print()
        report(replay, samples)
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
