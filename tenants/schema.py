"""Tell drf-spectacular how the API authenticates (a bearer token)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension

TOKEN_HELP = "An API token from `manage.py createtenant` (shown once; only its hash is stored)."


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "tenants.auth.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": TOKEN_HELP,
        }
