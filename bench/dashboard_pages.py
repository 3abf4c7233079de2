"""Dashboard pages at scale: the inbox with 10,000 pending pauses, the runs list with 100,000 runs.

On PostgreSQL (127.0.0.1:5432, user postgres, trust auth; ``TWIN_BENCH_PG`` overrides the server
URL): a throwaway database ``twin_bench_pages`` is created, migrated with ``manage.py migrate`` and
dropped at the end. One tenant gets, by ``INSERT … SELECT generate_series`` (seconds, not minutes):

* 100,000 runs over 46 days — completed, failed, cancelled, rejected, expired, a few running and
  queued — with realistic goals, URLs, programs (3 to 20 steps), outputs, errors and a checkpoint
  (the sealed cookies + storage, which the executor never clears): 8 kB of incompressible base64
  for paused and running runs, 1.3 kB of hex for the others;
* 10,000 of them ``awaiting_approval``, each with its pending Approval (approval / MFA / ambiguity /
  blocked, created over the last 3 days), and 20,000 decided approvals of completed runs;
* steps and events (run.created … run.completed) for the newest 20,000 runs and every paused one;
* the run shown by the detail page: paused, 20 steps, 2 earlier decided pauses and 263 events;
then ``VACUUM (ANALYZE)``, as autovacuum does soon after a bulk load.

Then, in this process, Django's test client signed in as an approver (``force_login``) asks each
page ``--requests`` times after ``--warmup`` requests, the pages taking turns. Server time = the time
around ``client.get`` (URL resolution, middleware, session, the view, its queries, the template),
and this process's CPU time for the same request; queries = ``CaptureQueriesContext`` on one more
request of each page. The query count is compared for the same page at 10, 50 and 100 items (the
views' ``PAGE`` constant changed in this process), for a small and a large run, and for runs list
rows written before runs/0002 (``step_total`` = 0, in a rolled-back transaction). The slowest
page's queries are run again under ``EXPLAIN ANALYZE``, and every page's under the same.

First, the inbox at 10,000 pending against itself at 100 (two more tenants, made by bulk_create):
first, deep and last pages by cursor in each order, a deep page's live refresh, the count; the
deep page's queries under EXPLAIN ANALYZE. ``--inbox-only`` stops there.

Usage:  .venv/bin/python bench/dashboard_pages.py [--requests N] [--warmup N] [--keep] [--inbox-only]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import ROOT, command_line, loadavg, median, p95, table, verdict

PG_SERVER = os.environ.get("TWIN_BENCH_PG", "postgres://postgres@127.0.0.1:5432")
DB_NAME = "twin_bench_pages"
RUNS = 100_000
PENDING = 10_000  # every 10th run is paused
DECIDED = 20_000
HISTORY = 20_000  # newest runs with steps and events
TARGET_P95_MS = 150.0
SPAN_SECONDS = 40  # between two runs' created_at: 100,000 runs span 46 days


# -- the database ---------------------------------------------------------------------------------------
def admin_sql(statement: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        conn.execute(statement)


def create_database(env: dict[str, str]) -> None:
    admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    admin_sql(f"CREATE DATABASE {DB_NAME}")
    done = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed:\n{done.stdout}\n{done.stderr}")


def drop_database() -> None:
    from django.db import connections

    connections.close_all()
    admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


def _step(action: str, **rest: Any) -> dict[str, Any]:
    return {"action": action, **rest}


def programs() -> list[list[dict[str, Any]]]:
    """Five step programs, 3 to 20 steps, each with a gated click."""
    login = [
        _step("goto", url="https://portal.example.com/login"),
        _step("fill", selector="#email", value="{{ secrets.portal_user }}"),
        _step("fill", selector="#password", value="{{ secrets.portal_password }}"),
        _step("click", selector="button[type=submit]"),
        _step("assert_text", text="Dashboard"),
    ]
    pay = [
        _step("goto", url="https://portal.example.com/invoices"),
        _step("fill", selector="#search", value="{{ params.invoice }}"),
        _step("click", selector="text=Search"),
        _step("click", selector="tr.invoice >> text=Pay"),
        _step("click", selector="#confirm", gate={"kind": "approval", "prompt": "Pay {{ params.amount }}?"}),
        _step("extract", selector="#receipt", name="receipt"),
    ]
    extra = [
        _step("goto", url="https://portal.example.com/account/address"),
        _step("fill", selector="#street", value="{{ params.street }}"),
        _step("fill", selector="#city", value="{{ params.city }}"),
        _step("select", selector="#country", value="DE"),
        _step("click", selector="text=Save"),
        _step("assert_text", text="Address saved"),
        _step("goto", url="https://portal.example.com/statements"),
        _step("click", selector="text=Download PDF"),
        _step("extract", selector=".statement-total", name="total"),
    ]
    return [
        [_step("goto", url="https://status.example.org/"), pay[4], pay[5]],
        [*login[:4], pay[4], pay[5]],
        [*login, pay[3], pay[4], pay[5], extra[8], extra[6]],
        [*login, *pay, extra[6], extra[7], extra[8]],
        [*login, *pay, *extra],
    ]


GOALS = [
    "Pay invoice INV-{n} for ACME GmbH",
    "Download the monthly statement of account {n} from Globex Bank",
    "Renew domain shop-{n}.example.com at the registrar",
    "File expense report #{n} in Initech Concur",
    "Update the shipping address of order {n}",
    "Approve purchase order PO-{n} in the supplier portal",
    "Book the quarterly VAT return {n} in the tax portal",
    "Cancel subscription {n} at Umbrella Cloud",
]
HOSTS = [
    "billing.acme.example.com",
    "online.globex-bank.example",
    "registrar.example.net",
    "initech.concur.example.com",
    "shop.example.org",
    "suppliers.example.com",
    "tax.example.gov",
    "console.umbrella.example",
]
ERRORS = [
    'Timeout 15000ms exceeded waiting for locator("#confirm")',
    "net::ERR_NAME_NOT_RESOLVED at https://portal.example.com/login",
    'assert_text: "Dashboard" not found on the page',
    "the run was cancelled during this step",
]


@dataclass
class Dataset:
    tenant_id: int
    approver_id: int
    detail_run: str  # paused, with history
    small_run: str  # completed, 3 steps
    seconds: dict[str, float] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)


def _expect_columns(model: Any, columns: list[str]) -> None:
    """The INSERTs below name every column: fail loudly when the model has changed."""
    have = {f.column for f in model._meta.concrete_fields}
    if have != set(columns):
        raise RuntimeError(
            f"{model._meta.db_table} changed: not inserted {sorted(have - set(columns))}, "
            f"unknown {sorted(set(columns) - have)}: update bench/dashboard_pages.py"
        )


RUN_COLUMNS = [
    "id", "tenant_id", "created_by_id", "goal", "url", "program", "step_total", "params", "status",
    "current_step", "resumed_from", "outputs", "error", "host", "browser_context_id", "target_id",
    "checkpoint", "checkpoint_step", "lease_owner", "lease_until", "created_at", "updated_at",
    "started_at", "finished_at",
]  # fmt: skip
APPROVAL_COLUMNS = [
    "id", "tenant_id", "run_id", "step_index", "step_count", "action", "cause", "trigger", "kind",
    "prompt", "options", "candidates", "pattern", "page_url", "page_title", "screenshot", "status",
    "created_at", "expires_at", "decided_by_id", "decided_at", "channel", "token_name", "choice",
    "note", "input_supplied", "input_length", "sealed_input", "consumed_at",
]  # fmt: skip
STEP_COLUMNS = ["id", "run_id", "index", "action", "label", "status", "attempts", "error", "started_at",
                "finished_at"]  # fmt: skip
EVENT_COLUMNS = ["id", "run_id", "tenant_id", "type", "step_index", "actor_id", "data", "created_at"]

# One row per run number g (1 = newest). Every 10th run (g % 10 = 3) is paused, created in the last
# 3 days; the others are spread over 46 days, mostly completed.
RUNS_SQL = """
WITH g AS (
  SELECT n,
         mod(n, 10) = 3 AS paused,
         mod(n * 37, 100) AS bucket,
         (%(programs)s::jsonb) -> (mod(n / 10, 5)::int) AS program
  FROM generate_series(1, %(runs)s) AS n
), r AS (
  SELECT g.*,
         CASE WHEN paused THEN 'awaiting_approval'
              WHEN bucket < 75 OR (n > 2000 AND bucket >= 96) THEN 'completed'
              WHEN bucket < 87 THEN 'failed'
              WHEN bucket < 91 THEN 'cancelled'
              WHEN bucket < 94 THEN 'rejected'
              WHEN bucket < 96 THEN 'expired'
              WHEN bucket < 98 THEN 'running'
              ELSE 'queued' END AS status,
         jsonb_array_length(program) AS total,
         CASE WHEN paused THEN now() - make_interval(secs => mod(n * 7919, 259200) + 30)
              ELSE now() - make_interval(secs => n * %(span)s) END AS created
  FROM g
)
INSERT INTO runs_run ({columns})
SELECT gen_random_uuid(), %(tenant)s, (%(users)s::bigint[])[1 + mod(n, 4)],
       replace((%(goals)s::text[])[1 + mod(n, 8)], '{{n}}', lpad(n::text, 6, '0')),
       'https://' || (%(hosts)s::text[])[1 + mod(n, 8)] || '/start?ref=' || n,
       program, total, jsonb_build_object('invoice', 'INV-' || n, 'amount', (n %% 997) || '.00 EUR'),
       status,
       CASE status WHEN 'completed' THEN total WHEN 'queued' THEN 0
                   WHEN 'awaiting_approval' THEN LEAST(total, 5) ELSE 1 + mod(n, total) END,
       NULL,
       CASE WHEN status = 'completed' THEN jsonb_build_object('receipt', 'R-' || n, 'total', n || ' EUR')
            ELSE '{{}}'::jsonb END,
       CASE WHEN status = 'failed' THEN (%(errors)s::text[])[1 + mod(n, 4)] ELSE '' END,
       CASE WHEN status IN ('awaiting_approval', 'running') THEN 'worker-1' ELSE '' END,
       CASE WHEN status IN ('awaiting_approval', 'running') THEN md5('c' || n) ELSE '' END,
       CASE WHEN status IN ('awaiting_approval', 'running') THEN md5('t' || n) ELSE '' END,
       CASE WHEN status = 'queued' THEN ''
            WHEN status IN ('awaiting_approval', 'running') THEN encode(decode(
                 (SELECT string_agg(md5(n::text || '/' || i), '') FROM generate_series(1, 384) AS i),
                 'hex'), 'base64')
            ELSE (SELECT string_agg(md5(n::text || '/' || i), '') FROM generate_series(1, 40) AS i) END,
       CASE status WHEN 'queued' THEN 0 ELSE 1 END,
       '', NULL, created, created + interval '1 minute',
       CASE WHEN status = 'queued' THEN NULL ELSE created + interval '2 seconds' END,
       CASE WHEN status IN ('queued', 'running', 'awaiting_approval') THEN NULL
            ELSE created + make_interval(secs => 4 + mod(n, 180)) END
FROM r
"""

APPROVALS_SQL = """
INSERT INTO approvals_approval ({columns})
SELECT gen_random_uuid(), r.tenant_id, r.id, r.current_step, r.step_total, 'click', t.cause, t.trigger,
       t.kind, t.prompt, t.options, NULL, t.pattern, replace(r.url, '/start', '/checkout'),
       'Checkout · ' || split_part(r.url, '/', 3), 'screenshots/' || r.id || '.jpg', %(status)s,
       r.created_at + interval '25 seconds', r.created_at + interval '7 days',
       CASE WHEN %(status)s = 'pending' THEN NULL ELSE %(approver)s::bigint END,
       CASE WHEN %(status)s = 'pending' THEN NULL ELSE r.created_at + interval '3 minutes' END,
       CASE WHEN %(status)s = 'pending' THEN '' ELSE 'dashboard' END, '', '', '', false, NULL, '',
       NULL
FROM runs_run r
CROSS JOIN LATERAL (
  SELECT * FROM (VALUES
    (0, 'gate', 'approval', 'approval', 'Pay ' || (r.params ->> 'amount') || '?', NULL::jsonb, ''),
    (1, 'gate', 'mfa', 'input', 'Type the 6-digit code sent to +49 151 ****' || right(r.id::text, 4),
     NULL::jsonb, '^[0-9]{{6}}$'),
    (2, 'ambiguity', 'ambiguity', 'choice', 'Which "Pay" button?', '["Pay now", "Pay later"]'::jsonb, ''),
    (3, 'blocked', 'blocked', 'choice', 'Timeout 15000ms exceeded waiting for locator("#confirm")',
     '["retry", "skip", "fail"]'::jsonb, '')
  ) AS v(k, cause, trigger, kind, prompt, options, pattern)
  WHERE v.k = CASE WHEN mod(abs(hashtext(r.id::text)), 10) < 6 THEN 0
                   WHEN mod(abs(hashtext(r.id::text)), 10) < 8 THEN 1
                   WHEN mod(abs(hashtext(r.id::text)), 10) < 9 THEN 2 ELSE 3 END
) AS t
WHERE r.status = %(run_status)s
  AND r.id IN (SELECT id FROM runs_run WHERE status = %(run_status)s ORDER BY created_at DESC LIMIT %(n)s)
"""

STEPS_SQL = """
INSERT INTO runs_step ({columns})
SELECT nextval(pg_get_serial_sequence('runs_step', 'id')), r.id, i, s.value ->> 'action',
       (s.value ->> 'action') || ' ' || coalesce(s.value ->> 'selector', s.value ->> 'url',
                                                  s.value ->> 'text', ''),
       CASE WHEN i < r.current_step OR r.status = 'completed' THEN 'done'
            WHEN i = r.current_step AND r.status = 'awaiting_approval' THEN 'awaiting_approval'
            WHEN i = r.current_step AND r.status = 'failed' THEN 'failed'
            WHEN i = r.current_step AND r.status = 'running' THEN 'running'
            WHEN r.status IN ('cancelled', 'rejected', 'expired') THEN 'skipped'
            ELSE 'queued' END,
       CASE WHEN i <= r.current_step THEN 1 ELSE 0 END,
       CASE WHEN i = r.current_step AND r.status = 'failed' THEN r.error ELSE '' END,
       CASE WHEN i <= r.current_step THEN r.started_at + make_interval(secs => i * 0.9) END,
       CASE WHEN i < r.current_step OR r.status = 'completed'
            THEN r.started_at + make_interval(secs => i * 0.9 + 0.7) END
FROM runs_run r
CROSS JOIN LATERAL jsonb_array_elements(r.program) WITH ORDINALITY AS s(value, i)
WHERE r.id IN (SELECT id FROM runs_run ORDER BY created_at DESC LIMIT %(history)s)
   OR r.status = 'awaiting_approval'
"""

EVENTS_SQL = """
INSERT INTO runs_runevent ({columns})
SELECT nextval(pg_get_serial_sequence('runs_runevent', 'id')), r.id, r.tenant_id,
       CASE WHEN e = 1 THEN 'run.created' WHEN e = 2 THEN 'run.running'
            WHEN e <= 2 + 2 * r.current_step THEN
                 CASE WHEN mod(e, 2) = 1 THEN 'step.started' ELSE 'step.finished' END
            ELSE 'run.' || r.status END,
       CASE WHEN e > 2 AND e <= 2 + 2 * r.current_step THEN (e - 1) / 2 END,
       NULL,
       CASE WHEN e > 2 AND e <= 2 + 2 * r.current_step THEN jsonb_build_object('status', 'done')
            ELSE '{{}}'::jsonb END,
       r.created_at + make_interval(secs => e * 0.45)
FROM runs_run r
CROSS JOIN LATERAL generate_series(1, 3 + 2 * r.current_step) AS e
WHERE (r.id IN (SELECT id FROM runs_run ORDER BY created_at DESC LIMIT %(history)s)
       OR r.status = 'awaiting_approval')
  AND r.status <> 'queued'
"""


def populate() -> Dataset:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from approvals.models import Approval
    from runs.models import Run, RunEvent, Step
    from tenants.models import Membership, Role, Tenant

    for model, columns in ((Run, RUN_COLUMNS), (Approval, APPROVAL_COLUMNS), (Step, STEP_COLUMNS)):
        _expect_columns(model, columns)
    _expect_columns(RunEvent, EVENT_COLUMNS)

    user_model = get_user_model()
    tenant = Tenant.objects.create(slug="acme", name="ACME Finance")
    others = [
        Tenant.objects.create(slug=s, name=n) for s, n in (("globex", "Globex"), ("initech", "Initech"))
    ]
    approver = user_model.objects.create(username="approver")
    Membership.objects.create(tenant=tenant, user=approver, role=Role.APPROVER)
    for other in others:  # the navigation bar's tenant switch has something to list
        Membership.objects.create(tenant=other, user=approver, role=Role.VIEWER)
    operators = [user_model.objects.create(username=name) for name in ("alice", "bob", "carol", "dave")]
    for user in operators:
        Membership.objects.create(tenant=tenant, user=user, role=Role.OPERATOR)

    data = Dataset(tenant_id=tenant.pk, approver_id=approver.pk, detail_run="", small_run="")

    def timed(name: str, sql: str, params: dict[str, Any], columns: list[str], table_: str) -> None:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(sql.format(columns=", ".join(f'"{c}"' for c in columns)), params)
            count = cursor.rowcount
        data.seconds[name] = time.perf_counter() - started
        data.rows[table_] = data.rows.get(table_, 0) + count

    timed(
        "runs",
        RUNS_SQL,
        {
            "programs": json.dumps(programs()),
            "runs": RUNS,
            "span": SPAN_SECONDS,
            "tenant": tenant.pk,
            "users": [u.pk for u in operators],
            "goals": GOALS,
            "hosts": HOSTS,
            "errors": ERRORS,
        },
        RUN_COLUMNS,
        "runs_run",
    )
    for name, status, run_status, count in (
        ("pending approvals", "pending", "awaiting_approval", PENDING),
        ("decided approvals", "approved", "completed", DECIDED),
    ):
        params = {"status": status, "run_status": run_status, "n": count, "approver": approver.pk}
        timed(name, APPROVALS_SQL, params, APPROVAL_COLUMNS, "approvals_approval")
    timed("steps", STEPS_SQL, {"history": HISTORY}, STEP_COLUMNS, "runs_step")
    timed("events", EVENTS_SQL, {"history": HISTORY}, EVENT_COLUMNS, "runs_runevent")

    # The detail page's run: the newest paused run with the longest program, with two earlier pauses
    # (decided) and a long timeline (more than the 200 events the page shows).
    started = time.perf_counter()
    detail = (
        Run.objects.filter(tenant=tenant, status="awaiting_approval", step_total=20)
        .order_by("-created_at")
        .first()
    )
    small = (
        Run.objects.filter(tenant=tenant, status="completed", step_total=3).order_by("-created_at").first()
    )
    if detail is None or small is None:
        raise RuntimeError("the generated data has no run to show in detail")
    pending = Approval.objects.get(run=detail, status="pending")
    for index in (2, 4):
        Approval.objects.create(
            tenant=tenant,
            run=detail,
            step_index=index,
            step_count=detail.step_total,
            action="click",
            trigger="approval",
            kind="approval",
            prompt=f"Continue at step {index}?",
            page_url=pending.page_url,
            page_title=pending.page_title,
            status="approved",
            expires_at=pending.expires_at,
            decided_by=approver,
            decided_at=pending.created_at,
            channel="dashboard",
            note="looks right",
        )
    RunEvent.objects.bulk_create(
        RunEvent(run=detail, tenant=tenant, type="takeover.input", step_index=5, data={"kind": "key"})
        for _ in range(250)
    )
    data.seconds["detail run"] = time.perf_counter() - started
    started = time.perf_counter()
    with connection.cursor() as cursor:  # what autovacuum does soon after a bulk load: statistics, visibility
        cursor.execute("VACUUM (ANALYZE)")
    data.seconds["VACUUM (ANALYZE)"] = time.perf_counter() - started
    data.detail_run, data.small_run = str(detail.pk), str(small.pk)
    for counted in (Run, Approval, Step, RunEvent):
        data.rows[counted._meta.db_table] = counted.objects.count()
    return data


# -- measuring --------------------------------------------------------------------------------------------
@dataclass
class Page:
    name: str
    path: str
    htmx: bool = False
    times: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU time per request
    queries: list[dict[str, str]] = field(default_factory=list)
    items: int = 0
    size: int = 0
    shown: str = ""  # what the inbox says it shows ("51-100 of 10,000 pending")


def count_items(html: str) -> int:
    return len(re.findall(r'<article id="approval-|<tr id="run-|<li class="step step-', html))


class Browser:
    """The test client, signed in; every answer must be a 200 (a benchmark of error pages is no use)."""

    def __init__(self, user_id: int) -> None:
        from django.contrib.auth import get_user_model
        from django.test import Client

        self.client = Client()
        self.client.force_login(get_user_model().objects.get(pk=user_id))

    def get(self, page: Page) -> tuple[float, float, str]:
        """(wall seconds, this process's CPU seconds, the HTML) of one request."""
        headers = {"HX-Request": "true"} if page.htmx else {}
        cpu = time.process_time()
        started = time.perf_counter()
        response = self.client.get(page.path, headers=headers)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
        if response.status_code != 200:
            raise RuntimeError(f"{page.path}: {response.status_code}")
        return elapsed, cpu, response.content.decode()

    def capture(self, page: Page) -> tuple[list[dict[str, str]], str]:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            _, _, html = self.get(page)
        return list(ctx.captured_queries), html


@contextlib.contextmanager
def page_size(size: int) -> Iterator[None]:
    import approvals.views
    import runs.views

    saved = runs.views.PAGE, approvals.views.PAGE
    runs.views.PAGE = approvals.views.PAGE = size
    try:
        yield
    finally:
        runs.views.PAGE, approvals.views.PAGE = saved


def older_link(html: str) -> str:
    found = re.search(r'<a rel="next" href="([^"]+)"', html)
    if not found:
        raise RuntimeError("no 'Older runs' link on the runs list")
    return "/runs/" + found.group(1).replace("&amp;", "&")


def cursor_at(position: int, status: str = "") -> str:
    """The "Older runs" link the list shows at ``position`` (what paging that far would reach)."""
    from runs.models import Run

    runs = Run.objects.order_by("-created_at", "-id")
    if status:
        runs = runs.filter(status=status)
    run = runs[position - 1]
    from urllib.parse import quote

    query = f"status={status}&" if status else ""
    return f"/runs/?{query}before={quote(run.created_at.isoformat())}&before_id={run.pk}"


def explain(sql: str) -> tuple[float, float, list[str]]:
    """(planning ms, execution ms, plan lines) of EXPLAIN (ANALYZE, BUFFERS)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        lines = [row[0] for row in cursor.fetchall()]
    planning = execution = float("nan")
    for line in lines:
        if line.startswith("Planning Time:"):
            planning = float(line.split()[2])
        elif line.startswith("Execution Time:"):
            execution = float(line.split()[2])
    return planning, execution, lines


def short_sql(sql: str, width: int = 92) -> str:
    sql = re.sub(r'SELECT .*? FROM "(\w+)"', r'SELECT … FROM "\1"', sql, count=1, flags=re.S)
    sql = re.sub(r"\s+", " ", sql).replace('"', "")
    return sql if len(sql) <= width else sql[: width - 1] + "…"


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


# -- the inbox at 10,000 pending, against itself at 100 ------------------------------------------------------
INBOX_BIG = 10_000
INBOX_BASELINE = 100


def inbox_tenant(slug: str, pending: int, expired: int) -> tuple[Any, Any]:
    """A tenant with ``pending`` paused runs, each with its pending Approval (a quarter one-time codes,
    created over 3 days, expiring 10 minutes to 7 days after), and ``expired`` pauses of the last day.

    Django's bulk_create, not SQL: every column the models have gets its default.
    """
    import random
    from datetime import timedelta

    from django.utils import timezone

    from approvals.models import Approval
    from runs.models import Run
    from tenants.models import Role
    from tenants.services import tenant_create

    tenant, user, _ = tenant_create(slug=slug, owner_username=f"{slug}-approver", role=Role.APPROVER)
    rng = random.Random(slug)
    now = timezone.now()
    program = programs()[2]
    runs, approvals, moments = [], [], []
    for n in range(pending + expired):
        is_pending = n < pending
        created = now - timedelta(seconds=rng.randrange(3 * 86400))
        moments.append(created)
        run = Run(
            tenant=tenant, created_by=user, goal=GOALS[n % len(GOALS)].format(n=f"{n:06d}"),
            url=f"https://{HOSTS[n % len(HOSTS)]}/start", program=program, step_total=len(program),
            status="awaiting_approval" if is_pending else "expired", current_step=4, created_at=created,
        )  # fmt: skip
        trigger = ("mfa", "approval", "approval", "ambiguity", "blocked")[rng.randrange(5)]
        expires = (
            now + timedelta(minutes=10 + rng.randrange(7 * 24 * 60))
            if is_pending
            else now - timedelta(minutes=rng.randrange(23 * 60))
        )
        approvals.append(
            Approval(
                tenant=tenant, run=run, step_index=4, step_count=len(program), action="click",
                trigger=trigger, kind="input" if trigger == "mfa" else "approval",
                prompt="Pay 42.00 EUR?", page_url=run.url, page_title="Checkout",
                status="pending" if is_pending else "expired", expires_at=expires,
                decided_at=None if is_pending else expires, channel="" if is_pending else "system",
            )
        )  # fmt: skip
        runs.append(run)
    Run.objects.bulk_create(runs, batch_size=2000)
    Approval.objects.bulk_create(approvals, batch_size=2000)
    # auto_now_add stamped them all "now": back to the moments chosen above.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE runs_run r SET created_at = v.at FROM unnest(%s::uuid[], %s::timestamptz[]) AS v(id, at) "
            "WHERE r.id = v.id",
            [[run.pk for run in runs], moments],
        )
        cursor.execute(
            "UPDATE approvals_approval a SET created_at = r.created_at + interval '25 seconds' "
            "FROM runs_run r WHERE a.run_id = r.id AND a.tenant_id = %s",
            [tenant.pk],
        )
    return tenant, user


def inbox_at_scale(args: argparse.Namespace, say: Callable[[str], None]) -> None:
    from django.db import connection

    from approvals import selectors

    started = time.perf_counter()
    big, big_user = inbox_tenant("inbox-big", INBOX_BIG, 40)
    small, small_user = inbox_tenant("inbox-small", INBOX_BASELINE, 40)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE)")
    say(f"  {INBOX_BIG + INBOX_BASELINE + 80:,} runs and pauses in {time.perf_counter() - started:.1f} s")

    def cursor_at(tenant: Any, order: str, position: int) -> str:
        """The "Next page" link a person reaches after paging to ``position`` in ``order``."""
        from urllib.parse import quote

        sort = selectors.ORDERS[order]
        item = selectors.ordered(selectors.pending_for_tenant(tenant), sort)[position - 1]
        query = "" if order == selectors.DEFAULT_ORDER else f"order={order}&"
        return f"/inbox/?{query}cursor={quote(selectors.cursor_for(sort, item, 'next'))}"

    from django.utils import timezone

    seen = quote_plus(timezone.now().isoformat())
    deep = cursor_at(big, "urgent", 5_000)
    big_pages = [
        Page("first page (urgent, the default)", "/inbox/"),
        Page("first page, oldest first", "/inbox/?order=oldest"),
        Page("first page, newest first", "/inbox/?order=newest"),
        Page("first page, trigger=mfa", "/inbox/?trigger=mfa"),
        Page("deep page: 5,001-5,050 (cursor)", deep),
        Page("deep page, live refresh (htmx, seen)", f"{deep}&seen={seen}", htmx=True),
        Page("deep page, oldest first", cursor_at(big, "oldest", 5_000)),
        Page("last page", cursor_at(big, "urgent", INBOX_BIG - 20)),
        Page("count (nav bar)", "/inbox/count", htmx=True),
    ]
    small_pages = [
        Page("first page (urgent, the default)", "/inbox/"),
        Page("deep page: 51-100 (cursor)", cursor_at(small, "urgent", 50)),
        Page("count (nav bar)", "/inbox/count", htmx=True),
    ]
    browsers = [(Browser(big_user.pk), big_pages), (Browser(small_user.pk), small_pages)]
    for _ in range(args.warmup):
        for browser, pages in browsers:
            for page in pages:
                browser.get(page)
    for _ in range(args.requests):
        for browser, pages in browsers:
            for page in pages:
                elapsed, cpu, _ = browser.get(page)
                page.times.append(elapsed)
                page.cpu.append(cpu)
    for browser, pages in browsers:
        for page in pages:
            page.queries, html = browser.capture(page)
            page.items, page.size = count_items(html), len(html)
            found = re.search(r'id="inbox-range">([^<]+)<', html)
            page.shown = found[1] if found else ""
    baseline = {
        "first": median(small_pages[0].times),
        "deep": median(small_pages[1].times),
        "count": median(small_pages[2].times),
    }
    rows = []
    for page in big_pages:
        kind = "count" if "count" in page.name else "deep" if "cursor" in page.path else "first"
        rows.append(
            [
                page.name, page.items, page.shown, fmt(median(page.times)), fmt(p95(page.times)),
                len(page.queries), f"{sum(float(q['time']) for q in page.queries) * 1000:.1f}",
                f"{median(page.times) / baseline[kind]:.2f}",
            ]
        )  # fmt: skip
    for page in small_pages:
        rows.append(
            [f"baseline {INBOX_BASELINE} pending: {page.name}", page.items, page.shown,
             fmt(median(page.times)), fmt(p95(page.times)), len(page.queries),
             f"{sum(float(q['time']) for q in page.queries) * 1000:.1f}", "1.00"]
        )  # fmt: skip
    print(f"== the inbox at {INBOX_BIG:,} pending, against the same pages at {INBOX_BASELINE} pending ==")
    print(f"{args.warmup} warm-up + {args.requests} measured requests per page, pages taking turns")
    print(
        table(
            ["page (ms)", "items", "shown as", "median", "p95", "queries", "SQL ms", "median / baseline"],
            rows,
        )
    )
    print("(median / baseline: against the same kind of page — first, deep or count — at 100 pending;")
    print(" SQL ms: the queries' own time in one request, as CaptureQueriesContext measures it)")
    print()
    print("the queries of the deep page under EXPLAIN ANALYZE (ms):")
    for query in big_pages[4].queries:
        if "approvals_approval" not in query["sql"] or not query["sql"].lstrip().upper().startswith("SELECT"):
            continue
        planning, execution, lines = explain(query["sql"])
        scans = [line.strip() for line in lines if "Scan" in line or "Sort" in line]
        print(f"  {planning + execution:6.2f}  {short_sql(query['sql'], 90)}")
        for line in scans[:3]:
            print(f"          {line[:110]}")
    worst = max(p95(page.times) for page in big_pages) * 1000
    print(f"target: every inbox page at {INBOX_BIG:,} pending p95 <= {TARGET_P95_MS:.0f} ms: "
          f"worst {worst:.0f} ms  {verdict(worst <= TARGET_P95_MS)}")  # fmt: skip
    counts = sorted({len(page.queries) for page in big_pages if "cursor" in page.path and not page.htmx})
    print(f"target: every deep page makes the same number of queries: {counts}  {verdict(len(counts) == 1)}")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=60, help="measured requests per page (default 60)")
    parser.add_argument("--warmup", type=int, default=5, help="warm-up requests per page (default 5)")
    parser.add_argument("--keep", action="store_true", help=f"do not drop {DB_NAME} at the end")
    parser.add_argument("--inbox-only", action="store_true", help="only the inbox at 10,000 pending")
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    started = time.perf_counter()
    load_start = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="twin-bench-pages-"))
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "twin_site.settings",
        "DATABASE_URL": f"{PG_SERVER}/{DB_NAME}",
        "TWIN_VAR_DIR": str(tmp),
    }

    def say(text: str) -> None:
        print(f"  [{time.perf_counter() - started:6.1f} s] {text}", file=sys.stderr, flush=True)

    django_ready = False
    try:
        say(f"creating and migrating {DB_NAME}")
        create_database(env)
        os.environ.update(env)
        import django

        django.setup()
        django_ready = True
        say("the inbox at 10,000 pending (and at 100: the baseline)")
        inbox_at_scale(args, say)
        if not args.inbox_only:
            say("generating 100,000 runs, 30,000 approvals, steps and events")
            data = populate()
            say("measuring")
            report(data, args, load_start, say)
    finally:
        if not args.keep:
            with contextlib.suppress(Exception):
                if django_ready:
                    drop_database()
                else:
                    admin_sql(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"load average at end: {loadavg()}; elapsed {time.perf_counter() - started:.1f} s")
    return 0


def report(data: Dataset, args: argparse.Namespace, load_start: str, say: Callable[[str], None]) -> None:
    from django.db import connection, transaction

    from runs.models import Run

    browser = Browser(data.approver_id)
    first = Page("runs list, first page", "/runs/")
    _, _, html = browser.get(first)
    second_link = older_link(html)
    pages = [
        Page("inbox", "/inbox/"),
        Page("inbox, htmx partial", "/inbox/", htmx=True),
        Page("inbox, trigger=mfa", "/inbox/?trigger=mfa"),
        Page("inbox, age=1h (htmx)", "/inbox/?age=1h", htmx=True),
        Page("inbox count (nav bar)", "/inbox/count", htmx=True),
        first,
        Page("runs list, htmx partial", "/runs/", htmx=True),
        Page("runs list, page 2 (Older runs link)", second_link),
        Page("runs list, deep: 50,000th run", cursor_at(50_000)),
        Page("runs list, last page", cursor_at(RUNS - 20)),
        Page("runs list, status=failed", "/runs/?status=failed"),
        Page("runs list, status=queued (rare)", "/runs/?status=queued"),
        Page("runs list, status=failed, deep", cursor_at(5_000, "failed")),
        Page("run detail (20 steps, 3 pauses, 200+ events)", f"/runs/{data.detail_run}/"),
        Page("run detail, htmx partial (live refresh)", f"/runs/{data.detail_run}/", htmx=True),
    ]
    for _ in range(args.warmup):
        for page in pages:
            browser.get(page)
    loads = [os.getloadavg()[0]]
    for _ in range(args.requests):
        for page in pages:
            elapsed, cpu, _ = browser.get(page)
            page.times.append(elapsed)
            page.cpu.append(cpu)
        loads.append(os.getloadavg()[0])
    for page in pages:
        page.queries, html = browser.capture(page)
        page.items, page.size = count_items(html), len(html)

    say("page sizes and EXPLAIN ANALYZE")
    sizes: list[list[object]] = []
    for name, path, htmx in (
        ("inbox", "/inbox/", False),
        ("inbox, htmx partial", "/inbox/", True),
        ("runs list", "/runs/", False),
        ("runs list, deep", cursor_at(50_000), False),
        ("runs list, status=failed", "/runs/?status=failed", False),
    ):
        row: list[object] = [name]
        counts = []
        for size in (10, 50, 100):
            with page_size(size):
                queries, html = browser.capture(Page(name, path, htmx))
            row.append(f"{count_items(html)} / {len(queries)}")
            counts.append(len(queries))
        row.append(verdict(len(set(counts)) == 1))
        sizes.append(row)
    details: list[list[object]] = []
    for run_id in (data.small_run, data.detail_run):
        queries, html = browser.capture(Page("run detail", f"/runs/{run_id}/"))
        run = Run.objects.get(pk=run_id)
        details.append(
            [
                f"{run.status}, {run.step_total} steps",
                run.events.count(),
                run.approvals.count(),
                count_items(html),
                len(queries),
            ]
        )
    detail_constant = len({row[-1] for row in details}) == 1
    # Runs written before runs/migrations/0002 have step_total = 0 (the migration does not fill it in).
    with transaction.atomic():
        newest = Run.objects.filter(tenant_id=data.tenant_id).order_by("-created_at", "-id")[:50]
        Run.objects.filter(pk__in=list(newest.values_list("pk", flat=True))).update(step_total=0)
        legacy_counts = []
        for size in (10, 50):
            with page_size(size):
                queries, html = browser.capture(Page("legacy", "/runs/"))
            legacy_counts.append(f"{count_items(html)} / {len(queries)}")
        transaction.set_rollback(True)

    slowest = max(pages, key=lambda p: p95(p.times))
    explained = []
    for query in slowest.queries:
        if query["sql"].lstrip().upper().startswith("SELECT"):
            planning, execution, lines = explain(query["sql"])
            explained.append((query, planning, execution, lines))
    explained.sort(key=lambda item: -item[2])
    main_plans = []
    for page in pages:
        if page is slowest:
            continue
        plans = [
            (query, *explain(query["sql"])[:2])
            for query in page.queries
            if query["sql"].lstrip().upper().startswith("SELECT")
        ]
        top, planning, execution = max(plans, key=lambda item: item[2])
        main_plans.append(
            [
                page.name,
                short_sql(top["sql"], 70),
                f"{planning:.2f}",
                f"{execution:.2f}",
                f"{sum(p[1] + p[2] for p in plans):.2f}",
            ]
        )
    server = int(getattr(connection, "pg_version", 0))

    # -- the report ------------------------------------------------------------------------------------
    print("== Twin benchmark: dashboard pages at scale (PostgreSQL) ==")
    print(
        "Django's test client in this process, signed in as an approver; server time = around client.get\n"
        "(URL resolution, middleware, session, view, queries, template). Pages take turns; "
        f"{args.warmup} warm-up + {args.requests} measured requests each."
    )
    print(f"command: {command_line()}")
    print(
        f"machine: {os.cpu_count()} cores, Python {platform.python_version()}, PostgreSQL "
        f"{server // 10000}.{server % 10000} at {PG_SERVER.split('@')[-1]}, database {DB_NAME}; "
        f"load average (1/5/15 min) at start: {load_start}"
    )
    print()
    print(
        table(
            ["data (one tenant)", "rows", "insert s"],
            [
                ["runs_run (10,000 awaiting_approval)", data.rows["runs_run"], f"{data.seconds['runs']:.1f}"],
                [
                    "approvals_approval (10,000 pending, rest decided)",
                    data.rows["approvals_approval"],
                    f"{data.seconds['pending approvals'] + data.seconds['decided approvals']:.1f}",
                ],
                ["runs_step (newest 20,000 runs + every paused one)", data.rows["runs_step"],
                 f"{data.seconds['steps']:.1f}"],
                ["runs_runevent (same runs)", data.rows["runs_runevent"], f"{data.seconds['events']:.1f}"],
                ["VACUUM (ANALYZE)", "", f"{data.seconds['VACUUM (ANALYZE)']:.1f}"],
            ],
        )
    )  # fmt: skip
    print()
    rows = []
    for page in pages:
        sql_ms = sum(float(q["time"]) for q in page.queries)
        rows.append(
            [
                page.name,
                page.items,
                f"{page.size / 1024:.0f}",
                fmt(median(page.times)),
                fmt(p95(page.times)),
                fmt(max(page.times)),
                fmt(median(page.cpu)),
                fmt(p95(page.cpu)),
                len(page.queries),
                f"{sql_ms * 1000:.1f}",
                verdict(p95(page.times) * 1000 <= TARGET_P95_MS),
            ]
        )
    print(
        table(
            [
                "page (ms)",
                "items",
                "KiB",
                "median",
                "p95",
                "max",
                "CPU med",
                "CPU p95",
                "queries",
                "SQL ms",
                "p95 <= 150",
            ],
            rows,
        )
    )
    print(
        "(items: inbox entries, runs rows, or steps + the pending pause shown; CPU: this process's CPU\n"
        "time per request — what the page costs without waiting for a core; SQL ms: the\n"
        "queries' own time in one request, as CaptureQueriesContext measures it)"
    )
    print(
        f"1-minute load average while measuring: {min(loads):.1f} to {max(loads):.1f} "
        f"(median {median(loads):.1f}) on {os.cpu_count()} cores"
    )
    print()
    print("queries per page as the page grows (items shown / queries):")
    print(table(["page", "PAGE = 10", "PAGE = 50", "PAGE = 100", "constant"], sizes))
    print()
    print(table(["run detail", "events", "pauses", "steps shown", "queries"], details))
    print(f"run detail: the same query count for a small and a large run: {verdict(detail_constant)}")
    print(
        f"runs list with the newest 50 runs written before runs/0002 (step_total = 0): "
        f"PAGE = 10: {legacy_counts[0]}, PAGE = 50: {legacy_counts[1]} (items / queries)"
    )
    print()
    for page in (pages[0], pages[5], pages[-2]):
        print(f"the {len(page.queries)} queries of {page.name} ({page.path}), ms (1 ms steps):")
        for query in page.queries:
            print(f"  {float(query['time']) * 1000:5.1f}  {short_sql(query['sql'], 100)}")
    print()
    print(f"slowest page by p95: {slowest.name} ({slowest.path}); its queries under EXPLAIN ANALYZE:")
    print(
        table(
            ["query (slowest first)", "in request ms (1 ms steps)", "plan ms", "exec ms"],
            [
                [short_sql(q["sql"]), f"{float(q['time']) * 1000:.1f}", f"{pl:.2f}", f"{ex:.2f}"]
                for q, pl, ex, _ in explained
            ],
        )
    )
    if explained:
        print("\nplan of its slowest query:")
        print("\n".join("  " + line for line in explained[0][3]))
    print()
    print("the other pages' queries under EXPLAIN ANALYZE (all queries = planning + execution, summed):")
    print(table(["page", "its slowest query", "plan ms", "exec ms", "all queries ms"], main_plans))
    print()
    worst = max(p95(p.times) for p in pages) * 1000
    constant = all(row[-1] == "MET" for row in sizes) and detail_constant
    print(f"target: p95 server time per page <= {TARGET_P95_MS:.0f} ms: worst {worst:.0f} ms  "
          f"{verdict(worst <= TARGET_P95_MS)}")  # fmt: skip
    print(f"target: query count does not grow with the page size: {verdict(constant)}")


if __name__ == "__main__":
    sys.exit(main())
