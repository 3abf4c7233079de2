"""Typed environment helpers that fail loudly, with a sentence a user can act on."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use 1/0, true/false, yes/no or on/off.")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None


def env_private_urls(name: str) -> Any:
    """``TWIN_ALLOW_PRIVATE_URLS``: False, True (every private range) or a tuple of
    ``engine.netguard.Rule`` (only the ranges and ports it names); a bad entry fails loudly."""
    from engine.netguard import parse_allowed  # the policy's own parser: one grammar, one place

    return parse_allowed(name, os.environ.get(name, ""))


def env_secret(name: str) -> str | None:
    """Read ``NAME``, or the file named by ``NAME_FILE`` (for container secrets)."""
    value = os.environ.get(name)
    if value:
        return value.strip()
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={path!r} cannot be read: {exc}.") from None
    return None


def env_json(name: str, default: dict[str, Any]) -> dict[str, Any]:
    """A JSON object from ``NAME`` (e.g. storage backends); a clear error when it is not one."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} must be a JSON object: {exc}.") from None
    if not isinstance(value, dict):
        raise ImproperlyConfigured(f"{name} must be a JSON object, not {type(value).__name__}.")
    return value


# Per active run: about 300 MB (its renderer, the context, the recording) and, while it works, a
# good part of a core in Chromium; most of a run's time is waiting (pages, people, models), so a
# core carries several (docs/performance.md has the figures behind both numbers).
RUN_MEMORY_MB = 300
RUNS_PER_CORE = 4


def _memory_mb() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20)
    except (ValueError, OSError, AttributeError):
        return 4096


def default_parked_memory_mb() -> int:
    """An eighth of the host's memory for the pages of paused runs, unless TWIN_PARKED_MEMORY_MB says
    (parked pages are not free: their renderers idle on the CPUs the active runs need)."""
    return max(512, _memory_mb() // 8)


def default_active_runs() -> int:
    """How many runs a worker host drives at once unless TWIN_HOST_ACTIVE_RUNS says."""
    cores = os.cpu_count() or 1
    memory_mb = _memory_mb()
    # A gigabyte for Chromium's own processes, Python and the driver.
    return max(2, min(RUNS_PER_CORE * cores, (memory_mb - 1024) // RUN_MEMORY_MB))
