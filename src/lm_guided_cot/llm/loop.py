"""The process's one event loop for large-LM calls: a daemon thread that every client holds
while it is open, so batches of different clients (the parts of a reward sum) can be gathered
on it; the last client to let go stops it."""

from __future__ import annotations

import asyncio
import atexit
import os
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop on a daemon thread, shared by every client of the process: batches of
    different clients (the parts of a reward sum) can then be gathered on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.users = 0
        self.thread = threading.Thread(target=self._run, name="lmcot-llm-client", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()
        try:
            # litellm leaves a logging worker task on the loop: cancel it, or it is reported
            # as "destroyed but pending" when the loop goes away
            self.loop.run_until_complete(_cancel_pending())
            self.loop.run_until_complete(self.loop.shutdown_default_executor())
        finally:
            self.loop.close()

    def stop(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        if threading.current_thread() is not self.thread:
            self.thread.join(5)


_loop_lock = threading.Lock()
_shared_loop: LoopThread | None = None
_exit_hook_installed = False


def acquire_loop() -> LoopThread:
    """The process's loop (started on first use), held until ``release_loop``."""
    global _shared_loop, _exit_hook_installed
    with _loop_lock:
        if _shared_loop is None:
            _shared_loop = LoopThread()
            if not _exit_hook_installed:
                # Registered after litellm's import, so it runs before litellm's exit handlers.
                atexit.register(_stop_at_exit)
                _exit_hook_installed = True
        _shared_loop.users += 1
        return _shared_loop


def current_loop() -> LoopThread | None:
    """The process's loop if one is running (no hold taken)."""
    return _shared_loop


def release_loop(held: LoopThread) -> None:
    """Give back one hold; the last one stops the loop (no other client's tasks are left)."""
    global _shared_loop
    with _loop_lock:
        if held is not _shared_loop:
            return  # stopped already (exit, fork)
        held.users -= 1
        if held.users > 0:
            return
        _shared_loop = None
    held.stop()


def _stop_at_exit() -> None:
    global _shared_loop
    if "lm_guided_cot.llm.registry" in sys.modules:
        sys.modules["lm_guided_cot.llm.registry"].close_all()
    with _loop_lock:
        held, _shared_loop = _shared_loop, None
    if held is not None:
        held.stop()


def _forget_loop_in_child() -> None:
    global _shared_loop
    _shared_loop = None  # its thread did not survive the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_loop_in_child)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the process's large-LM loop and wait for its result."""
    held = acquire_loop()
    try:
        if threading.current_thread() is held.thread:
            coro.close()
            raise RuntimeError(
                "a blocking large-LM call from inside the large-LM event loop would wait for "
                "itself: await the async variant (acomplete, ascore) instead"
            )
        return asyncio.run_coroutine_threadsafe(coro, held.loop).result()
    finally:
        release_loop(held)


async def _cancel_pending() -> None:
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
