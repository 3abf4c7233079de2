"""Webhooks: how soon a pause reaches a receiver, and whether 1,000 messages all arrive.

The webhook worker is started as ``make run`` starts it (``celery worker -Q webhooks -c 8
-P threads``), beside the harness's Daphne and run worker. The receiver is
tests/webhook_receiver.py on 127.0.0.1, in this process.

1. Latency: ``--runs`` runs (default 30), one after the other, each ``goto /counter`` then a gated
   click. An endpoint subscribed to ``run.awaiting_approval`` (default settings: no retries
   needed, the receiver answers 204). Per run:

     t_event    the ``run.awaiting_approval`` RunEvent's created_at (the pause)
     t_attempt  the delivery's Attempt.started_at (the webhook worker begins the attempt)
     t_arrive   when the receiver had read the signed request (this process's clock)

   reported as t_arrive - t_event (target: median <= 100 ms), split into queue (t_attempt -
   t_event: commit, Celery dispatch, the worker's checks) and send (t_arrive - t_attempt:
   signing, connecting, posting). Each run is approved afterwards (it ends; nothing stays parked).
   Every message is verified with the standardwebhooks library.

2. Reliability: ``--messages`` messages (default 1,000) to a receiver that refuses every other
   request (``Receiver(mode="coin")``), with the retry schedule scaled down
   (``TWIN_WEBHOOK_BACKOFF_SCALE=0.0002``: 1 ms, 60 ms, 0.36 s, 1.4 s, 3.6 s, 7.2 s …),
   ``TWIN_WEBHOOK_MAX_ATTEMPTS=30`` and auto-disable out of the way. The messages are the
   ``run.resumed`` and ``run.completed`` events of messages/2 runs, recorded with
   ``runs.events.record_event`` in one transaction (so they are queued at once, on commit), as
   the run worker records them. No beat sweeper runs: every message must go out through the
   queue and the retries alone (if some stall, the sweeper's ``dispatch_due`` is called once and
   that is reported). Counted at the receiver: requests, accepted, duplicates among accepted,
   unique accepted, missing, and whether each run's two messages were accepted in order.

Usage:  .venv/bin/python bench/webhook_latency.py [--runs N] [--messages N]
        (TWIN_BENCH_REDIS_URL=redis://127.0.0.1:6379/9 to keep off another benchmark's database)
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import Bench, _stop_group, median, ms, p95, table, verdict

TARGET_MS = 100.0
WORKER_ARGS = ["-Q", "webhooks", "-c", "8", "-P", "threads", "--without-gossip", "--without-mingle"]
RELIABILITY_ENV = {
    "TWIN_WEBHOOK_BACKOFF_SCALE": "0.0002",
    "TWIN_WEBHOOK_MAX_ATTEMPTS": "30",
    "TWIN_WEBHOOK_DISABLE_AFTER": "1000000",
}


class WebhookWorker:
    """``celery worker -Q webhooks -c 8 -P threads``, as ``make run`` starts it."""

    def __init__(self, bench: Bench, name: str, env: dict[str, str] | None = None) -> None:
        self.bench, self.name = bench, name
        self.log = bench.log_dir / f"{name}.log"
        self.env = {**bench.env, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> WebhookWorker:
        argv = [sys.executable, "-m", "celery", "-A", "twin_site", "worker", *WORKER_ARGS]
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [*argv, "-l", "info", "-n", f"{self.name}@%h"],
                cwd=Path(__file__).resolve().parent.parent,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        while b" ready." not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the webhook worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        return self

    def offset(self) -> int:
        return self.log.stat().st_size

    def received_times(self, offset: int) -> list[float]:
        """Epoch times of the "Task webhooks.tasks.deliver_webhook_task[…] received" lines after offset."""
        with self.log.open("rb") as fh:
            fh.seek(offset)
            text = fh.read().decode("utf-8", "replace")
        times = []
        for line in text.splitlines():
            if "Task webhooks.tasks.deliver_webhook_task[" in line and line.endswith("received"):
                with contextlib.suppress(ValueError):
                    times.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp())
        return times

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            _stop_group(self.proc)


def subscribe(bench: Bench, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = bench._api().post("/api/webhooks", json={"url": url, **({"events": events} if events else {})})
    if response.status_code != 201:
        raise RuntimeError(f"POST /api/webhooks: {response.status_code} {response.text[:300]}")
    return dict(response.json())


def pause_program(bench: Bench) -> list[dict[str, Any]]:
    return [
        {"action": "goto", "url": bench.site.url("/counter")},
        {"action": "click", "selector": "#click", "gate": {"kind": "approval", "prompt": "Click?"}},
    ]


def latency(bench: Bench, runs: int) -> dict[str, Any]:
    from standardwebhooks import Webhook

    from tests.webhook_receiver import Receiver
    from webhooks.models import Attempt

    receiver = Receiver().start()
    wall_offset = time.time() - time.monotonic()  # the receiver stamps with time.monotonic()
    try:
        with WebhookWorker(bench, "webhooks-latency") as worker:
            endpoint = subscribe(bench, receiver.url, ["run.awaiting_approval"])
            verifier = Webhook(endpoint["secret"])
            bench.warm_up(pause_program(bench))
            receiver.wait_for(bench.concurrency + 1, timeout=30)
            time.sleep(0.3)
            receiver.received.clear()
            rows: list[list[Any]] = []
            cols: dict[str, list[float]] = {k: [] for k in ("total", "queue", "dispatch", "checks", "send")}
            for i in range(runs):
                offset = worker.offset()
                run = bench.create_run(pause_program(bench), wait=60, goal=f"webhook latency {i + 1}")
                if run["status"] != "awaiting_approval":
                    run = bench.wait_for(run["id"], {"awaiting_approval"})
                got = receiver.wait_for(i + 1, timeout=30)[i]
                payload = verifier.verify(got.body, got.headers)
                if payload["data"]["run"]["id"] != run["id"]:
                    raise RuntimeError(f"message {i + 1} is about run {payload['data']['run']['id']}")
                event = next(e for e in bench.events(run["id"]) if e.type == "run.awaiting_approval")
                attempts = Attempt.objects.filter(delivery__run_id=run["id"]).order_by("number")
                deadline = time.monotonic() + 10
                while (attempt := attempts.first()) is None:  # written once the answer is in
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no attempt recorded for run {run['id']}")
                    time.sleep(0.02)
                arrive = got.at + wall_offset
                started = attempt.started_at.timestamp()
                received = (worker.received_times(offset) or [float("nan")])[0]
                values = {
                    "total": arrive - event.at,
                    "queue": started - event.at,
                    "dispatch": received - event.at,
                    "checks": started - received,
                    "send": arrive - started,
                }
                for key, value in values.items():
                    cols[key].append(value)
                rows.append(
                    [i + 1, *(ms(values[k]) for k in ("total", "queue", "dispatch", "checks", "send"))]
                )
                bench.approve(run["id"])
                bench.wait_for(run["id"], {"completed"})
    finally:
        receiver.stop()
    return {"rows": rows, "cols": cols}


def reliability(bench: Bench, messages: int) -> dict[str, Any]:
    from django.db import transaction

    from runs.events import record_event
    from runs.models import Run, RunStatus
    from tenants.models import Tenant
    from tests.webhook_receiver import Receiver
    from webhooks.models import Delivery, DeliveryStatus
    from webhooks.services import dispatch_due

    # 1,000 events committed at once overrun the channel layer's connection pool: the live
    # broadcasts (best effort, nobody watches here) complain; the messages are unaffected.
    logging.getLogger("twin_site.realtime").setLevel(logging.ERROR)
    receiver = Receiver(mode="coin").start()
    try:
        with WebhookWorker(bench, "webhooks-reliability", RELIABILITY_ENV) as worker:
            endpoint = subscribe(bench, receiver.url, ["run.resumed", "run.completed"])
            tenant = Tenant.objects.get(slug="bench")
            count = messages // 2
            program = [{"action": "goto", "url": bench.site.url("/counter")}]
            runs = Run.objects.bulk_create(
                [
                    Run(
                        tenant=tenant,
                        goal=f"webhook reliability {n}",
                        program=program,
                        step_total=1,
                        status=RunStatus.COMPLETED,
                        record_video=False,
                    )
                    for n in range(count)
                ]
            )
            bench.say(f"recording {count * 2} events ({count} runs x run.resumed, run.completed)")
            t_record = time.perf_counter()
            with transaction.atomic():
                for run in runs:
                    record_event(run, "run.resumed")
                    record_event(run, "run.completed")
            t_commit = time.perf_counter()
            expected = dict(Delivery.objects.filter(endpoint_id=endpoint["id"]).values_list("id", "run_id"))
            ids = {f"msg_{pk.hex}": run_id for pk, run_id in expected.items()}
            bench.say(f"{len(ids)} messages queued in {t_commit - t_record:.1f} s; waiting for them")
            swept = 0
            last_progress, last_count = time.perf_counter(), 0
            while True:
                unique = {r.id for r in receiver.accepted()}
                if len(unique & ids.keys()) >= len(ids):
                    break
                if len(unique) != last_count:
                    last_count, last_progress = len(unique), time.perf_counter()
                stalled = time.perf_counter() - last_progress
                if stalled > 30 and not swept:
                    swept = dispatch_due(limit=len(ids))
                    bench.say(f"no progress for 30 s: the sweeper queued {swept} messages")
                    last_progress = time.perf_counter()
                elif stalled > 30:
                    break
                time.sleep(0.05)
            t_done = time.perf_counter()
            time.sleep(2)  # anything sent twice arrives now
            statuses = Counter(
                Delivery.objects.filter(endpoint_id=endpoint["id"]).values_list("status", flat=True)
            )
            attempts = sorted(
                Delivery.objects.filter(endpoint_id=endpoint["id"]).values_list("attempts", flat=True)
            )
            worker_alive = worker.proc is not None and worker.proc.poll() is None
    finally:
        receiver.stop()
    received = list(receiver.received)
    accepted = [r for r in received if r.answered < 300]
    accepted_ids = [r.id for r in accepted]
    unique = set(accepted_ids)
    # In order per run: a run's run.completed was never sent before its run.resumed was accepted.
    first_accept: dict[str, int] = {}
    first_sent: dict[str, int] = {}
    for n, r in enumerate(received):
        first_sent.setdefault(r.id, n)
        if r.answered < 300:
            first_accept.setdefault(r.id, n)
    by_run: dict[Any, dict[str, str]] = {}
    for r in received:
        payload = r.json()
        by_run.setdefault(payload["data"]["run"]["id"], {})[payload["type"]] = r.id
    out_of_order = sum(
        1
        for pair in by_run.values()
        if "run.resumed" in pair
        and "run.completed" in pair
        and first_sent[pair["run.completed"]] < first_accept.get(pair["run.resumed"], 10**9)
    )
    return {
        "expected": len(ids),
        "sent": len(received),
        "accepted": len(accepted),
        "duplicates": len(accepted_ids) - len(unique),
        "unique": len(unique & ids.keys()),
        "missing": len(ids.keys() - unique),
        "out_of_order": out_of_order,
        "record_s": t_commit - t_record,
        "deliver_s": t_done - t_commit,
        "swept": swept,
        "statuses": dict(statuses),
        "attempts_median": median([float(a) for a in attempts]),
        "attempts_max": max(attempts) if attempts else 0,
        "worker_alive": worker_alive,
        "delivered_status": statuses.get(DeliveryStatus.DELIVERED, 0),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30, help="pauses measured (default 30)")
    parser.add_argument(
        "--messages", type=int, default=1000, help="messages to the coin receiver (0: skip part 2)"
    )
    args = parser.parse_args()

    with Bench("Twin benchmark: webhooks (pause -> signed message; 1,000 messages, half refused)") as bench:
        bench.say(f"latency: {args.runs} pauses")
        lat = latency(bench, args.runs)
        rel = None
        if args.messages:
            bench.say(f"reliability: {args.messages} messages")
            rel = reliability(bench, args.messages)

        bench.header(
            "Webhook worker as `make run` starts it: celery -Q webhooks -c 8 -P threads.\n"
            f"1. {args.runs} runs paused one after the other (goto /counter + a gated click); an endpoint\n"
            "   on 127.0.0.1 subscribed to run.awaiting_approval. Times in ms from the pause's RunEvent."
        )
        print(table(["run", "pause -> received", "queue", "(dispatch", "checks)", "send"], lat["rows"]))
        print()
        cols = lat["cols"]
        summary = [
            [label, ms(median(cols[k])), ms(p95(cols[k])), ms(max(cols[k]))]
            for label, k in (
                ("pause -> signed message received", "total"),
                ("  queue: event -> attempt starts", "queue"),
                ("    dispatch: event -> task received by the worker", "dispatch"),
                ("    checks: received -> attempt starts", "checks"),
                ("  send: attempt starts -> received", "send"),
            )
        ]
        print(table(["interval (ms)", "median", "p95", "max"], summary))
        med = median(cols["total"]) * 1000
        print(
            f"target: median pause -> received <= {TARGET_MS:.0f} ms: "
            f"{med:.0f} ms  {verdict(med <= TARGET_MS)}"
        )
        if rel is not None:
            print()
            print(
                f"2. {rel['expected']} messages (run.resumed + run.completed of "
                f"{rel['expected'] // 2} runs) to a\n"
                "   receiver refusing every other request; retries scaled by 0.0002, up to 30 attempts."
            )
            print(
                table(
                    ["count", "n"],
                    [
                        ["requests sent", rel["sent"]],
                        ["accepted (2xx)", rel["accepted"]],
                        ["duplicates among accepted", rel["duplicates"]],
                        ["unique accepted", rel["unique"]],
                        ["missing", rel["missing"]],
                        [
                            "runs whose run.completed went before run.resumed was accepted",
                            rel["out_of_order"],
                        ],
                    ],
                )
            )
            print(
                f"queued (events recorded, one transaction): {rel['record_s']:.1f} s; "
                f"commit -> every message accepted: {rel['deliver_s']:.1f} s"
            )
            print(
                f"attempts per message: median {rel['attempts_median']:.0f}, max {rel['attempts_max']}; "
                f"statuses {rel['statuses']}; "
                f"sweeper needed: {'yes, ' + str(rel['swept']) if rel['swept'] else 'no'}"
            )
            ok = rel["missing"] == 0 and rel["unique"] == rel["expected"] and rel["out_of_order"] == 0
            print(
                f"every message delivered, exactly once after dedupe by webhook-id, in order: {verdict(ok)}"
            )
        bench.footer()
    return 0


if __name__ == "__main__":
    sys.exit(main())
