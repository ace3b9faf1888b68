"""Run a function in a worker process under a hard deadline, from any thread or process.

SIGALRM timeouts only work in the main thread of the main interpreter, and a sympy call stuck in C
code or in a huge integer power ignores Python-level interrupts. So checks that can hang run in a
separate worker process; the caller waits on the worker's pipe with a deadline and, if it passes,
kills the worker (SIGKILL) and starts a fresh one for the next call.

Workers are plain subprocesses (``python -m rlvr.rewards.sandbox``), not `multiprocessing` children,
so they can be started from daemonic processes (multiprocessing pool workers) and after a fork. Each
thread that calls concurrently gets its own worker from a small free-list; a worker is started once
and reused, and its start-up time does not count against a call's deadline.
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT = 120.0
"""Seconds a new worker may take to import its modules (a loaded 2-core machine can be slow)."""
_HEADER = struct.Struct("!Q")


@dataclass
class Outcome:
    """``status`` is ``"ok"`` (with `value`), ``"timeout"`` or ``"error"`` (with `error`)."""

    status: str
    value: Any = None
    error: str = ""


def _write(stream: Any, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes | None:
    """Read `size` bytes from `fd` before `deadline` (monotonic); None on timeout or EOF."""
    chunks, remaining = [], size
    poller = select.poll()  # not select.select: a busy trainer can have descriptors past FD_SETSIZE
    poller.register(fd, select.POLLIN)
    while remaining:
        wait = None if deadline is None else deadline - time.monotonic()
        if wait is not None and wait <= 0:
            return None
        if not poller.poll(None if wait is None else max(1, int(wait * 1000))):
            return None
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class Worker:
    """One sandbox subprocess."""

    def __init__(self) -> None:
        root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlvr.rewards.sandbox"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.ready = False

    def call(self, function: str, args: tuple[Any, ...], timeout: float) -> Outcome:
        """Run ``module:function(*args)`` in the worker; kills the worker if `timeout` passes."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        try:
            if not self.ready:  # wait for the imports to finish before the deadline starts
                if _read_exact(fd, 1, time.monotonic() + STARTUP_TIMEOUT) != b"R":
                    self.kill()
                    return Outcome("error", error="sandbox worker failed to start")
                self.ready = True
            _write(self.proc.stdin, (function, args))
            deadline = time.monotonic() + timeout
            header = _read_exact(fd, _HEADER.size, deadline)
            body = _read_exact(fd, _HEADER.unpack(header)[0], deadline) if header else None
        except (BrokenPipeError, OSError) as err:
            self.kill()
            return Outcome("error", error=f"sandbox worker died ({err})")
        if body is None:
            alive = self.proc.poll() is None
            self.kill()
            return Outcome("timeout") if alive else Outcome("error", error="sandbox worker died")
        status, value = pickle.loads(body)
        return Outcome("ok", value=value) if status == "ok" else Outcome("error", error=value)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class _Pool:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.free: list[Worker] = []
        self.lock = threading.Lock()
        self.started = 0
        self.killed = 0


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    """This process's pool; a forked child starts its own instead of sharing its parent's workers."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool.pid != os.getpid():
            _pool = _Pool()
        return _pool


def run(function: str, *args: Any, timeout: float) -> Outcome:
    """Call ``"package.module:function"`` with `args` in a sandbox worker, at most `timeout` seconds."""
    pool = _get_pool()
    with pool.lock:
        worker = pool.free.pop() if pool.free else None
    if worker is None or not worker.alive:
        worker = Worker()
        pool.started += 1
    outcome = worker.call(function, args, timeout)
    if worker.alive:
        with pool.lock:
            pool.free.append(worker)
    else:
        pool.killed += 1
    return outcome


def stats() -> dict[str, int]:
    """Workers started and killed in this process (a killed worker is one that hit a deadline)."""
    pool = _get_pool()
    return {"started": pool.started, "killed": pool.killed, "idle": len(pool.free)}


def warm_up() -> None:
    """Start one worker now, so the first real call does not wait for the imports."""
    pool = _get_pool()
    worker = Worker()
    pool.started += 1
    worker.call("rlvr.rewards.sandbox:_ping", (), timeout=STARTUP_TIMEOUT)
    with pool.lock:
        pool.free.append(worker)


def shutdown() -> None:
    """Stop this process's idle workers."""
    pool = _get_pool()
    with pool.lock:
        workers, pool.free = pool.free, []
    for worker in workers:
        worker.kill()


atexit.register(shutdown)


def _ping() -> bool:
    return True


def _serve() -> None:
    """The worker loop: read ``(function, args)`` frames from stdin, answer on stdout, until EOF."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print() in a check must not corrupt the protocol
    importlib.import_module("rlvr.rewards.latex_sympy")  # the usual client: import before "ready"
    stdout.write(b"R")
    stdout.flush()
    cache: dict[str, Any] = {}
    while True:
        header = stdin.read(_HEADER.size)
        if len(header) < _HEADER.size:
            return
        function, args = pickle.loads(stdin.read(_HEADER.unpack(header)[0]))
        try:
            if function not in cache:
                module, _, name = function.partition(":")
                cache[function] = getattr(importlib.import_module(module), name)
            reply = ("ok", cache[function](*args))
        except BaseException as err:  # the worker survives anything a check throws
            reply = ("error", f"{type(err).__name__}: {err}"[:500])
        _write(stdout, reply)


if __name__ == "__main__":
    _serve()
