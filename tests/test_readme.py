"""The README as a new user follows it.

Its "A first run" shell blocks run for real, with bash, against a served Twin (``manage.py
serve``: web processes, workers, the host browser and the demo site, on free ports), with the
token ``make token`` prints; what they print is what the README says they print. And every
environment variable the code reads is in its Configuration table.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest

from tests.conftest import wait_until
from tests.test_serve import ROOT, Served, free_port

pytestmark = pytest.mark.timeout(600)

README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    """The README's ``## title`` section, up to the next ``## `` heading."""
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


FIRST_RUN = section("A first run")


def test_the_first_run_targets_only_twin_and_its_demo_site() -> None:
    code = "\n".join(shell_blocks(FIRST_RUN))
    addresses = set(re.findall(r"https?://[^/'\"\s]+", code))
    assert addresses == {"http://127.0.0.1:8000", "http://127.0.0.1:8001"}
    assert len(re.findall(r"^TOKEN=…", code, re.M)) == 1
    assert "RUN_ID=$(" in code  # set by the commands themselves, not left to the reader


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    # As make run serves it: no model configured, the demo site on a port of its own.
    env = {"TWIN_DEMO_PORT": str(free_port()), "TWIN_LLM_BASE_URL": "", "TWIN_LLM_MODEL": ""}
    twin = Served(tmp_path_factory.mktemp("readme"), web_processes=2, env=env)
    twin.start()
    wait_until(lambda: "demo site:" in twin.output(), timeout=60, what="the login box")
    yield twin
    twin.stop()


def make_token(twin: Served) -> str:
    """``make token PLAIN=1``: the command under it, beside the served Twin."""
    return twin.manage("demotoken", "--plain").strip()


def promised(code: str) -> list[str]:
    """What the README says each command prints: its ``# → …`` comments, up to a gloss after two
    spaces or a colon."""
    return [
        re.split(r"\s{2,}|:", line.split("# → ", 1)[1])[0].strip()
        for line in code.splitlines()
        if line.lstrip().startswith("# → ")
    ]


def test_the_first_run_pauses_at_pay_then_completes_and_becomes_a_skill_as_the_readme_says(
    served: Served,
) -> None:
    code = "\n".join(shell_blocks(FIRST_RUN))
    token = make_token(served)
    assert token == served.token  # the one make run printed last
    script = (
        code.replace("http://127.0.0.1:8000", served.base)
        .replace("http://127.0.0.1:8001", f"http://127.0.0.1:{served.extra_env['TWIN_DEMO_PORT']}")
        .replace("TOKEN=…", f"TOKEN={token}", 1)
    )

    done = subprocess.run(
        ["bash", "-c", "set -eo pipefail\n" + script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    printed = [line.strip() for line in done.stdout.splitlines()]
    assert printed == [
        "awaiting_approval Pay $42.00?",
        "202",
        "completed",
        "pay-invoice version 1",
        "awaiting_approval Pay $42.00? skill",
        "awaiting_approval Pay $42.00? skill",
        "planner_not_configured",
    ], done.stdout + done.stderr
    assert printed == promised(code)
    assert "Payment complete" not in done.stderr


# -- the Configuration table ----------------------------------------------------------------------------

READS = re.compile(
    r"""(?:env_\w+\(\s*|os\.environ\.get\(\s*|os\.getenv\(\s*|os\.environ\[\s*|environ\.setdefault\(\s*)"""
    r"""["']([A-Z][A-Z0-9_]+)["']"""
)
NOT_SETTINGS = {
    # Set by Twin itself for the browser's own thread, never by an operator.
    "DJANGO_ALLOW_ASYNC_UNSAFE",
    # Set by Twin itself in the web server's process (twin_site/asgi.py).
    "TWIN_SERVER",
}


def variables_read_by_the_code() -> set[str]:
    found: set[str] = set()
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT).parts
        skipped = parts[0] in {".venv", "var", "tests", "bench", "build"}
        if skipped or {"migrations", "node_modules"} & set(parts):
            continue
        found |= set(READS.findall(path.read_text(errors="replace")))
    return found - NOT_SETTINGS


def test_every_environment_variable_the_code_reads_is_in_the_readme_configuration_table() -> None:
    table = section("Configuration")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    read = variables_read_by_the_code()

    assert {"TWIN_VAR_DIR", "TWIN_DEMO_PORT", "REDIS_URL"} <= read  # the scan sees what it should
    assert sorted(read - documented) == []


# -- the TypeScript client ---------------------------------------------------------------------------------
JS_SECTION = section("From JavaScript or TypeScript")


def test_the_javascript_example_is_the_example_file() -> None:
    (block,) = re.findall(r"^```js\n(.*?)^```", JS_SECTION, re.S | re.M)
    example = (ROOT / "clients" / "js" / "examples" / "first-run.mjs").read_text()
    lines = [line.strip() for line in example.splitlines()]
    body = block[block.index("const run =") :]
    missing = [line.strip() for line in body.splitlines() if line.strip() and line.strip() not in lines]
    assert missing == []


def test_the_javascript_example_pauses_at_the_code_and_resumes_there_as_the_readme_says(
    served: Served,
) -> None:
    code = "\n".join(shell_blocks(JS_SECTION))
    done = subprocess.run(
        ["bash", "-c", "set -eo pipefail\n" + code],
        cwd=ROOT,
        env={
            **served.env(),
            "TOKEN": make_token(served),
            "TWIN_URL": served.base,
            "TWIN_DEMO_URL": f"http://127.0.0.1:{served.extra_env['TWIN_DEMO_PORT']}",
        },
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    printed = [line.strip() for line in done.stdout.splitlines()]
    said = [line.split("# → ", 1)[1].strip() for line in code.splitlines() if "# → " in line]
    assert (
        printed
        == said
        == [
            "paused at step 6 of 8: One-time code",
            "x-twin-status: completed",
            "resumed from step 6 of 8",
        ]
    ), done.stdout + done.stderr
