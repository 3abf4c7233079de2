"""Two decisions on one pause at the same moment: exactly one wins, the step runs at most once."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import connection
from rest_framework.test import APIClient

from tests.conftest import Persona, event_types, start_run, wait_run


def pay_program(site):
    return [
        {"action": "goto", "url": site.url("/pay")},
        {"action": "click", "selector": "#pay", "gate": {"kind": "approval", "prompt": "Pay $42?"}},
        {"action": "assert_text", "text": "Payment complete"},
    ]


def race(persona: Persona, requests: list[tuple[str, dict[str, Any]]]) -> list[tuple[int, dict[str, Any]]]:
    """POST every (path, body) from its own thread and client, all released at once."""
    barrier = threading.Barrier(len(requests))
    results: list[Any] = [None] * len(requests)

    def send(slot: int, path: str, body: dict[str, Any]) -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {persona.token}")
            barrier.wait(timeout=10)
            response = client.post(path, body, format="json")
            results[slot] = (response.status_code, response.json())
        except BaseException as exc:  # reported by the assertion below
            results[slot] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(i, *request)) for i, request in enumerate(requests)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert all(isinstance(r, tuple) for r in results), results
    return results


def test_two_simultaneous_approves_resume_once_and_the_payment_happens_once(alice, site, worker):
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval"
    approve: tuple[str, dict[str, str]] = (f"/api/runs/{run['id']}/approve", {})

    results = race(alice, [approve, approve])

    assert sorted(code for code, _ in results) == [202, 409], results
    loser = next(body for code, body in results if code == 409)
    assert loser["error"] == "conflict"
    done = wait_run(alice, run["id"])
    assert done["status"] == "completed", done
    time.sleep(1)  # a second resume would click "Pay" again within this time
    assert site.count("payment") == 1
    assert event_types(run["id"]).count("run.resumed") == 1
    assert event_types(run["id"]).count("approval.decided") == 1


def test_approve_racing_reject_has_one_winner_and_the_run_ends_as_the_winner_said(alice, site, worker):
    run = start_run(alice, pay_program(site))
    assert run["status"] == "awaiting_approval"

    results = race(
        alice,
        [
            (f"/api/runs/{run['id']}/approve", {}),
            (f"/api/runs/{run['id']}/reject", {"reason": "too much"}),
        ],
    )

    (approve_code, _), (reject_code, _) = results
    assert sorted([approve_code, reject_code]) in ([202, 409], [200, 409]), results
    assert event_types(run["id"]).count("approval.decided") == 1
    final = wait_run(alice, run["id"])
    time.sleep(1)
    if approve_code == 202:
        assert final["status"] == "completed", final
        assert site.count("payment") == 1
    else:
        assert final["status"] == "rejected", final
        assert site.count("payment") == 0
    approval = alice.get("/api/approvals").json()[0]
    assert approval["status"] == ("approved" if approve_code == 202 else "rejected")
