"""A small fixture web site for Twin's end-to-end tests (stdlib only, see ``server.py``)."""

from .server import TOTP_SEED, USERS, FixtureSite

__all__ = ["TOTP_SEED", "USERS", "FixtureSite"]
