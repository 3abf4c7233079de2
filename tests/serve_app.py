"""Settings for the Twin that tests/test_serve.py serves with ``manage.py serve``: Twin's own,
with tests/serve_urls.py (Twin's URLs plus one test-only view) as the URLconf."""

from __future__ import annotations

from twin_site.settings import *  # noqa: F403

ROOT_URLCONF = "tests.serve_urls"
