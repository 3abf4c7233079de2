"""The agent: the same goal planned by a model vs. replayed as the skill it compiled into.

The goal is an order on the fixture site's ``/bench-form`` ("Order the Pro plan for 3 seats", with
the name, email, company and notes as params): type four fields, choose the plan, accept the terms,
add two seats, place the order, read the reference, done: 11 model calls when planned. (The
tenant's policy is emptied for this benchmark: "Place order" would otherwise pause both variants
for a person's approval, whose wait is not what is measured.) The model is the suite's test model
(tests/agent_model.py: an OpenAI-compatible server that computes its tool call from the snapshot
it is sent) with a fixed latency per call — 2 s, what a hosted model takes for a tool call over a
page snapshot, and 0.3 s, a fast local one. The first planned run compiles into a skill by itself;
then, alternating, N planned runs (``"plan": "always"``) and N replays (the same goal: it matches
the skill), every one to completion.

Reported per variant: the client's wall time of ``POST /api/runs?wait=60`` (median, p90), model
calls and tokens per run, and the loop's own overhead per planned step: the planned run's executor
time minus the time spent waiting for the model, divided by its planned steps, next to a replayed
step's time.

Target (issue 11; what Stagehand publishes for its cache): at 2 s per call, a replay is >= 10x
faster than planning, with 0 model calls.

Usage:  .venv/bin/python bench/agent_replay.py [--reps N] [--latency S ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Bench, median, ms, table, verdict
from bench.skill_replay import p90, stamp

GOAL = "Order the Pro plan for 3 seats"
PARAMS = {
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "company": "Analytical Engines",
    "notes": "Bench",
}
TARGET = 10.0


@dataclass
class Sample:
    client: float
    executor: float
    model_calls: int
    tokens: int
    model_wait: float  # seconds the planned steps waited for the model (their latency_ms)
    steps: int  # steps the run performed (planned: the planned ones)


def one(bench: Bench, site_url: str, *, plan: str) -> tuple[dict[str, Any], Sample]:
    assert bench.http is not None
    c0 = time.perf_counter()
    body = {"goal": GOAL, "url": site_url, "params": PARAMS, "plan": plan}
    response = bench.http.post("/api/runs?wait=60", json=body)
    client = time.perf_counter() - c0
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/runs: {response.status_code} {response.text[:500]}")
    run = dict(response.json())
    if run["status"] != "completed":
        raise RuntimeError(
            f"run {run['id']} is {run['status']}: {run.get('error')} {run.get('pending_step')}"
        )
    planned = [s["planned"] for s in run["steps"] if s.get("planned")]
    return run, Sample(
        client=client,
        executor=stamp(run["finished_at"]) - stamp(run["started_at"]),
        model_calls=int(run["cost"]["model_calls"]),
        tokens=int(run["cost"]["tokens_in"]) + int(run["cost"]["tokens_out"]),
        model_wait=sum(p["latency_ms"] for p in planned) / 1000,
        steps=len(planned) if planned else len(run["steps"]),
    )


def measure(bench: Bench, model: Any, latency: float, reps: int) -> dict[str, list[Sample]]:
    model.latency = latency
    url = bench.site.url("/bench-form")
    samples: dict[str, list[Sample]] = {"planned": [], "replay": []}
    for rep in range(reps):
        bench.say(f"latency {latency:g} s: repetition {rep + 1}/{reps}")
        order = ("planned", "replay") if rep % 2 == 0 else ("replay", "planned")
        for variant in order:
            run, sample = one(bench, url, plan="always" if variant == "planned" else "auto")
            expected = "model" if variant == "planned" else "skill"
            if run["planner"] != expected:
                raise RuntimeError(f"{variant}: the run's planner is {run['planner']}, not {expected}")
            samples[variant].append(sample)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=10, help="runs of each variant per latency (default 10)")
    parser.add_argument("--latency", type=float, nargs="*", default=[2.0, 0.3], help="seconds per model call")
    args = parser.parse_args()

    from tests.agent_model import TestModel

    model = TestModel().start()
    try:
        env = {"TWIN_LLM_BASE_URL": model.base_url, "TWIN_LLM_MODEL": "test-model"}
        with Bench("Twin benchmark: the agent, planned vs. replayed as its compiled skill", env=env) as bench:
            assert bench.http is not None
            from tenants.models import Tenant

            Tenant.objects.filter(slug="bench").update(agent_consequential_patterns=[])
            model.latency = 0.0
            bench.say("the first planned run (it compiles into the skill)")
            first, _ = one(bench, bench.site.url("/bench-form"), plan="always")
            one(bench, bench.site.url("/bench-form"), plan="auto")  # warm: the replay path once
            results = {latency: measure(bench, model, latency, args.reps) for latency in args.latency}

            bench.header(
                f"goal {GOAL!r} on /bench-form (4 fills, select, check, 2 clicks, click, extract, done),\n"
                f"{args.reps} runs of each variant per model latency, alternating, all warm.\n"
                'planned = POST /api/runs?wait=60 {goal, url, "plan": "always"}; replay = the same goal,\n'
                "matched to the skill compiled from "
                "the first planned run. Times: the client's wall time of that one call."
            )
            rows = []
            ok = 2.0 in results
            for latency, samples in results.items():
                planned, replay = samples["planned"], samples["replay"]
                ratio = median([s.client for s in planned]) / median([s.client for s in replay])
                loop = median([(s.executor - s.model_wait) / max(s.steps, 1) for s in planned])
                replay_step = median([s.executor / max(s.steps, 1) for s in replay])
                calls = max(s.model_calls for s in replay)
                if latency == 2.0:
                    ok = ok and ratio >= TARGET and calls == 0
                rows.append(
                    [
                        f"{latency:g} s",
                        ms(median([s.client for s in planned])),
                        ms(p90([s.client for s in planned])),
                        ms(median([s.client for s in replay])),
                        ms(p90([s.client for s in replay])),
                        f"{ratio:.1f}x",
                        f"{median([s.model_calls for s in planned]):g} / {calls}",
                        f"{median([s.tokens for s in planned]):,.0f} / {max(s.tokens for s in replay)}",
                        ms(loop),
                        ms(replay_step),
                    ]
                )
            print(
                table(
                    [
                        "latency/call",
                        "planned",
                        "p90",
                        "replay",
                        "p90",
                        "replay faster",
                        "model calls (plan/replay)",
                        "tokens (plan/replay)",
                        "loop overhead/step",
                        "replay/step",
                    ],
                    rows,
                )
            )
            print()
            print(f"skill compiled from run {first['id']}; every run completed; replays made 0 model calls.")
            print(f"target: at 2 s per call, replay >= {TARGET:g}x faster with 0 model calls: {verdict(ok)}")
            bench.footer()
    finally:
        model.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
