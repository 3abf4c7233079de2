"""The TypeScript client (``clients/js``, ``@twin/client``) against the live server.

Its tests are Node's own (``node --test``), in ``clients/js/test``; each test here starts what one
of them needs — the live server and a tenant's token, the fixture site, the worker, runs to page
through — hands it over in the environment, and runs it. They import the built package
(``dist/``, as published), and the tests are compiled first (``tsc``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from runs.models import Run
from tests.dashboard.conftest import Person
from tests.site.server import TOTP_SEED, FixtureSite
from tests.test_inbox_pagination import pause

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "clients" / "js"
NODE = shutil.which("node")


def _tool(name: str) -> str:
    path = JS / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: `make setup` installs the client's dev dependencies (npm ci)")
    return str(path)


@pytest.fixture(scope="module")
def built() -> Iterator[Path]:
    if NODE is None:
        pytest.fail("node is missing: `make setup` installs Node.js (>= 20), or install it yourself")
    # The package's dist/ is `make setup`'s (other tests run the README's example on it at the
    # same time): built here only when a source is newer, as after an edit without make.
    sources = [*(JS / "src").glob("*.ts"), JS / "tsconfig.json"]
    dist = JS / "dist" / "index.js"
    stale = not dist.exists() or max(p.stat().st_mtime for p in sources) > dist.stat().st_mtime
    for config in ("tsconfig.json", "tsconfig.test.json") if stale else ("tsconfig.test.json",):
        done = subprocess.run(
            [_tool("tsc"), "-p", config], cwd=JS, capture_output=True, text=True, timeout=180, check=False
        )
        assert done.returncode == 0, f"tsc -p {config}:\n{done.stdout}{done.stderr}"
    yield JS / "build" / "test"


def node_test(built: Path, name: str, **env: str) -> str:
    """Run one of the client's test files; fail with its report unless every test in it passed."""
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--test", "--test-reporter=spec", str(built / f"{name}.test.js")],
        cwd=JS,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-6000:]
    assert "skipped 0" in report, report[-3000:]  # (a live test skips itself without the server)
    return report


def live(person: Person, site: FixtureSite, **extra: str) -> dict[str, str]:
    return {
        "TWIN_BASE_URL": person.base_url,
        "TWIN_TOKEN": person.token,
        "TWIN_SITE_URL": site.url("/"),
        "TWIN_TOTP_SEED": TOTP_SEED,
        **extra,
    }


def test_runs_pause_resume_reject_cancel_and_fail_as_an_integration_sees_them(
    built: Path, alice: Person, site: FixtureSite, worker: Any
) -> None:
    node_test(built, "runs", **live(alice, site))

    assert site.count("payment") == 1  # approved once; the rejected, cancelled and refused runs paid nothing


def test_a_real_delivery_verifies_and_agrees_with_the_standardwebhooks_package(
    built: Path, alice: Person, site: FixtureSite, webhook_worker: Any
) -> None:
    node_test(built, "webhooks", **live(alice, site))


def test_listings_are_read_a_page_at_a_time(built: Path, alice: Person, site: FixtureSite) -> None:
    now = timezone.now()
    runs = Run.objects.bulk_create(
        Run(
            tenant=alice.tenant,
            goal=f"invoice {i}",
            url="http://127.0.0.1:9/pay",
            program=[{"action": "goto", "url": "http://127.0.0.1:9/pay"}],
            status="failed" if i % 3 == 0 else "completed",
        )
        for i in range(110)
    )
    for i, run in enumerate(runs):  # a second apart: created_at is set on insert
        Run.objects.filter(pk=run.pk).update(created_at=now - timedelta(seconds=i))
    for i in range(10):  # and 10 paused runs, a minute apart: 120 runs
        pause(alice.tenant, created=now - timedelta(minutes=i), expires=now + timedelta(hours=1))
    failed = Run.objects.filter(tenant=alice.tenant, status="failed").count()

    node_test(
        built,
        "pages",
        **live(alice, site, TWIN_RUNS_MADE="120", TWIN_RUNS_FAILED=str(failed), TWIN_PENDING_MADE="10"),
    )


def test_the_vault_and_skills_through_the_client(
    built: Path, alice: Person, site: FixtureSite, worker: Any
) -> None:
    node_test(built, "skills", **live(alice, site))


def test_retries_abort_signals_and_camel_case_against_servers_that_misbehave(built: Path) -> None:
    node_test(built, "transport")


def test_the_checked_in_types_are_generated_from_the_servers_schema(tmp_path: Path) -> None:
    """``clients/js/src/schema.ts`` is what openapi-typescript makes of ``/api/schema`` today:
    ``make js-types`` regenerates it when the API changes."""
    schema = tmp_path / "schema.json"
    # With the default database (as `make js-types`): integer bounds in the schema are the
    # backend's (PostgreSQL's 2**31 - 1 has no int64 format), and the types' comments show them.
    default_database = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--format", "openapi-json", "--file", str(schema)],
        cwd=ROOT,
        env=default_database,
        check=True,
        capture_output=True,
        timeout=120,
    )
    generated = tmp_path / "schema.ts"
    done = subprocess.run(
        [_tool("openapi-typescript"), str(schema), "--output", str(generated)],
        cwd=JS,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    checked_in = (JS / "src" / "schema.ts").read_text()
    assert generated.read_text() == checked_in, (
        "clients/js/src/schema.ts is not the server's schema any more: run `make js-types` and commit it"
    )
