"""What a page hands the run is bounded: a hostile page's megabyte never rides in every answer."""

from __future__ import annotations

from tests.conftest import start_run, wait_run
from twin_site.limits import MAX_OUTPUT


def test_an_extract_of_a_megabyte_element_is_cut_to_the_output_limit(alice, site, worker):
    run = start_run(
        alice,
        [
            {"action": "goto", "url": site.url("/big?n=1000000")},
            {"action": "extract", "selector": "#big", "name": "blob"},
        ],
    )
    done = wait_run(alice, run["id"])
    assert done["status"] == "completed", done
    blob = done["outputs"]["blob"]
    assert len(blob) == MAX_OUTPUT
    assert blob.startswith("xxxx") and blob.endswith("…")
    listed = alice.get("/api/runs")
    assert len(listed.content) < 100_000
