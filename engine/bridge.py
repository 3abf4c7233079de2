"""Playwright's async API on one event loop per process, called from any thread as if it were sync.

Playwright's own sync API runs an event loop *in the calling thread*: one driver (a node process)
and one CDP connection per thread, so a process drives one run at a time, or pays a driver per
run (the issue 14 spike: 4.4 GB for 8 threads). Here one thread per process owns an asyncio loop
with the async API on it — one driver, one connection to the host browser — and every thread
that executes a run calls through :class:`Sync` proxies: each call hops to the loop, the calling
thread waits for its answer, and the loop goes on serving every other run meanwhile. The
executor's code stays plain, blocking Python (its Django calls included: each thread has its
own database connection); the waiting for pages happens on the loop, where it costs nothing.

A proxy looks like Playwright's sync API to its caller (same methods, same arguments, same
errors: both APIs raise ``playwright._impl._errors.Error``). Objects coming back are proxied
too, the same proxy for the same Playwright object (``is`` works as with the sync API); an
``expect_*`` helper is a plain ``with`` block. Callbacks (an ``expect_page`` predicate) run on
the loop thread, where reading a property goes straight through.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import inspect
import threading
import weakref
from collections.abc import Callable
from typing import Any

from playwright._impl._async_base import AsyncBase, AsyncEventContextManager


class LoopGone(RuntimeError):
    """The loop thread stopped (the process is shutting down)."""


class Loop:
    """An asyncio event loop in a daemon thread of its own."""

    def __init__(self, name: str = "playwright-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self.thread.start()
        self._ready.wait()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.close()

    def on_loop(self) -> bool:
        return threading.current_thread() is self.thread

    def alive(self) -> bool:
        return self.thread.is_alive() and not self.loop.is_closed()

    def run(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn`` on the loop (awaiting what it returns, if awaitable) and return its result."""
        if self.on_loop():
            # A callback Playwright runs on the loop (a predicate): only what needs no waiting.
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                with contextlib.suppress(Exception):
                    result.close()  # type: ignore[attr-defined]
                raise RuntimeError("a Playwright call that waits cannot be made from a callback on its loop")
            return result
        return self.submit(fn, *args, **kwargs).result()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        """Start ``fn`` on the loop and return at once: its result is the future's."""
        if not self.alive():
            raise LoopGone("the Playwright loop of this process has stopped")
        return asyncio.run_coroutine_threadsafe(_invoke(fn, args, kwargs), self.loop)

    def stop(self) -> None:
        if self.alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=5)


async def _invoke(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


# Properties and methods that only read or build Playwright's client-side objects (no message to
# the driver, nothing scheduled on the loop): called in the calling thread, without the hop to
# the loop and back (a thread switch each way), which a step would otherwise make a dozen times.
# Anything not named here goes through the loop.
LOCAL = frozenset(
    {
        "is_connected",  # Browser
        "is_closed",  # Page
        "url",  # Page, Frame, Request, Response
        "headers",  # Request, Response (the headers already received)
        "context",  # Page
        "page",  # Locator, Frame, ElementHandle's frame...
        "locator",  # Page, Frame, Locator: a new Locator
        "first",  # Locator
        "last",  # Locator
        "nth",  # Locator
        "main_frame",  # Page
    }
)
# Whether (class, attribute) is a property (read on the loop) or not: asked once per pair.
_properties: dict[tuple[type, str], bool] = {}


class Sync:
    """One Playwright (async API) object, used from any thread as its sync API would be."""

    __slots__ = ("__weakref__", "_loop", "_obj")

    def __init__(self, obj: Any, loop: Loop) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name: str) -> Any:
        obj, loop = self._obj, self._loop
        local = name in LOCAL  # (a property of those is read here: client-side state only)
        if not local:
            kind = type(obj)
            is_property = _properties.get((kind, name))
            if is_property is None:
                is_property = _properties[kind, name] = isinstance(
                    inspect.getattr_static(kind, name, None), property
                )
            if is_property:
                return wrap(loop.run(getattr, obj, name), loop)
        attribute = getattr(obj, name)
        if not callable(attribute):
            return wrap(attribute, loop)
        invoke = attribute if local else functools.partial(loop.run, attribute)

        def call(*args: Any, **kwargs: Any) -> Any:
            return wrap(invoke(*unwrap(args, loop), **unwrap(kwargs, loop)), loop)

        call.__name__ = name
        return call

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"cannot set {name!r} on a Playwright object")

    def __repr__(self) -> str:
        return f"<Sync {self._obj!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sync) and other._obj is self._obj

    def __hash__(self) -> int:
        return id(self._obj)


class EventWait:
    """``with page.expect_*(...) as info:`` ... ``info.value`` — over the async API's manager."""

    def __init__(self, manager: AsyncEventContextManager[Any], loop: Loop) -> None:
        self._manager, self._loop = manager, loop
        self._info: Any = None

    def __enter__(self) -> EventWait:
        self._info = self._loop.run(self._manager.__aenter__)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._loop.run(self._manager.__aexit__, *exc)

    @property
    def value(self) -> Any:
        info = self._info
        return wrap(self._loop.run(lambda: info.value), self._loop)

    def is_done(self) -> bool:
        return bool(self._info is not None and self._info.is_done())


_proxies: weakref.WeakKeyDictionary[Any, Sync] = weakref.WeakKeyDictionary()
_proxies_lock = threading.Lock()


def wrap(value: Any, loop: Loop) -> Any:
    if isinstance(value, AsyncBase):
        with _proxies_lock:
            proxy = _proxies.get(value)
            if proxy is None or proxy._loop is not loop:
                proxy = _proxies[value] = Sync(value, loop)
            return proxy
    if isinstance(value, AsyncEventContextManager):
        return EventWait(value, loop)
    if isinstance(value, list):
        return [wrap(item, loop) for item in value]
    if isinstance(value, tuple):
        return tuple(wrap(item, loop) for item in value)
    if isinstance(value, dict) and any(isinstance(item, AsyncBase) for item in value.values()):
        return {key: wrap(item, loop) for key, item in value.items()}  # (a handle's properties)
    return value


def run_with(proxy: Sync, fn: Callable[[Any], Any]) -> Any:
    """``fn(the async object behind proxy)`` on its loop (awaited if it is a coroutine), from any
    thread: for async-only helpers such as ``playwright.async_api.expect``."""
    return wrap(proxy._loop.run(fn, proxy._obj), proxy._loop)


def submit_with(proxy: Sync, fn: Callable[[Any], Any]) -> concurrent.futures.Future[Any]:
    """Start ``fn(the async object behind proxy)`` on its loop and return at once (its future)."""
    return proxy._loop.submit(fn, proxy._obj)


class Soon:
    """A call started on the loop (:func:`soon`): its answer proxied when taken, or let go unread."""

    def __init__(self, future: concurrent.futures.Future[Any], loop: Loop) -> None:
        self.future, self.loop = future, loop

    def result(self, timeout: float) -> Any:
        """The answer, waiting up to ``timeout`` seconds for it (the call's error raised)."""
        return wrap(self.future.result(timeout=timeout), self.loop)

    def drop(self, fn: Callable[[Any], Any]) -> None:
        """Nobody will read the answer: ``fn(it)`` on the loop once it has come (a handle's
        ``dispose``), without waiting for it here; an error is nobody's."""

        def done(future: concurrent.futures.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None:
                with contextlib.suppress(LoopGone):
                    self.loop.submit(fn, future.result())

        self.future.add_done_callback(done)


def let_go(value: Any, fn: Callable[[Any], Any]) -> None:
    """``fn(value's async object)`` started on its loop, not waited for (a handle's ``dispose``:
    a round trip nobody needs the answer of); its error is nobody's. Called in place for an
    object that is not a proxy."""
    if isinstance(value, Sync):
        with contextlib.suppress(LoopGone):
            submit_with(value, fn)
    else:
        with contextlib.suppress(Exception):
            fn(value)


def soon(proxy: Sync, fn: Callable[[Any], Any]) -> Soon:
    """Start ``fn(the async object behind proxy)`` on its loop now; read its answer later."""
    return Soon(submit_with(proxy, fn), proxy._loop)


def impl(value: Any) -> Any:
    """The async API object behind a proxy (for code that runs on the loop itself)."""
    return value._obj if isinstance(value, Sync) else value


def unwrap(value: Any, loop: Loop) -> Any:
    if isinstance(value, Sync):
        return impl(value)
    if isinstance(value, list):
        return [unwrap(item, loop) for item in value]
    if isinstance(value, tuple):
        return tuple(unwrap(item, loop) for item in value)
    if isinstance(value, dict):
        return {key: unwrap(item, loop) for key, item in value.items()}
    if callable(value) and not isinstance(value, type):
        # A callback (a predicate): Playwright calls it on the loop with async objects.
        function = value

        def callback(*args: Any, **kwargs: Any) -> Any:
            return function(*wrap(list(args), loop), **kwargs)

        return callback
    return value
