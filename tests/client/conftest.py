"""The client's tests talk HTTP to a live Twin (Daphne + the real worker), as integrations do."""

from tests.dashboard.conftest import alice, carol, daphne, person  # noqa: F401  (fixtures)
