"""Child processes of the local tools: Celery workers, beat and Flower, each with its log file.

``einvoice demo`` (:mod:`einvoice.demo`), the benchmark and chaos harness (``scripts/loadkit.py``)
and the pipeline tests' fixtures (``tests/fixtures/worker.py``) start the same processes the same
way, through this module:

* :func:`celery_command` with :func:`worker_args`, :func:`beat_args` or :func:`flower_args`: the
  command line (``python -m celery -A workers ...``, run from the checkout so that
  ``celeryconfig`` is importable);
* :class:`ChildProcess`: one process in a session of its own (a signal reaches it and its
  children, never the caller), its stdout and stderr in one log file; readiness is a line of that
  log (:meth:`ChildProcess.wait_for`, e.g. :data:`WORKER_READY`); :meth:`~ChildProcess.stop` is
  a warm shutdown (SIGTERM, then SIGKILL after a grace period), :meth:`~ChildProcess.kill` a crash;
* :class:`ProcessGroup`: the processes a caller started, stopped together, newest first.

Production runs workers under its own supervisor (Compose, systemd, Kubernetes); nothing here is
on the production path.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from einvoice.devservices import project_root
from einvoice.errors import EinvoiceError

#: The queues a worker consumes unless told otherwise (celeryconfig's routes use all four).
ALL_QUEUES = "submission,maintenance,reference,webhooks"
#: The log line of a worker that takes tasks (Celery's ``celery@host ready.``; needs INFO level).
WORKER_READY = "ready."
#: The log line of beat once its scheduler runs (INFO level).
BEAT_STARTED = "beat: Starting"


class LaunchError(EinvoiceError):
    """A child process exited, or did not show its readiness line in time."""

    reason = "process_not_ready"


def celery_command(*args: str) -> list[str]:
    """``[python, -m, celery, -A, workers, *args]`` with this interpreter (the same virtualenv)."""
    return [sys.executable, "-m", "celery", "-A", "workers", *args]


def einvoice_command(*args: str) -> list[str]:
    """``[python, -m, einvoice.cli, *args]``: the ``einvoice`` CLI with this interpreter."""
    return [sys.executable, "-m", "einvoice.cli", *args]


def worker_args(*, concurrency: int, name: str, queues: str = ALL_QUEUES,
                log_level: str = "info", without_heartbeat: bool = False,
                extra: Sequence[str] = ()) -> list[str]:
    """The arguments of a threads-pool worker after ``celery -A workers``.

    Args:
        concurrency: threads (``-c``).
        name: node name (``-n``), e.g. ``demo@%h``; unique per running worker.
        queues: comma-separated queues (``-Q``).
        log_level: ``info`` shows :data:`WORKER_READY`; ``warning`` costs less CPU per task.
        without_heartbeat: no worker heartbeat events (benchmarks: fewer broker writes).
        extra: more ``celery worker`` options, appended last.

    Mingle and gossip are off: a worker needs nothing from its peers to start, and they cost
    broker round trips at every start.
    """
    return ["worker", "--pool", "threads", "-c", str(concurrency), "-Q", queues, "-n", name,
            "--without-mingle", "--without-gossip",
            *(["--without-heartbeat"] if without_heartbeat else []), "-l", log_level, *extra]


def beat_args(schedule: Path, log_level: str = "info") -> list[str]:
    """The arguments of ``celery beat`` keeping its schedule state in the file ``schedule``."""
    return ["beat", "-l", log_level, "--schedule", str(schedule)]


def flower_args(port: int, address: str = "127.0.0.1") -> list[str]:
    """The arguments of Flower listening on ``address:port``."""
    return ["flower", f"--port={port}", f"--address={address}"]


@dataclass
class ChildProcess:
    """One child process in its own session, its stdout and stderr in ``log_path``.

    Attributes:
        name: label for logs and reports (``worker``, ``beat``, ``worker-1``).
        argv: the whole command line.
        env: its environment (the caller builds it whole; nothing is inherited besides).
        log_path: where its output goes.
        append: append to the log at each (re)start instead of truncating it.
        cwd: its working folder (the checkout by default).
        proc: the running process, None before :meth:`start`.
    """

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    append: bool = False
    cwd: Path = field(default_factory=project_root)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Self:
        """Spawn the process (again, after a kill) in a new session; returns ``self``."""
        with self.log_path.open("ab" if self.append else "wb") as handle:
            self.proc = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=handle,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        """The process id. Raises ``RuntimeError`` when not started."""
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.proc.pid

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        """Everything the process printed so far (``""`` before it printed anything)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, chars: int = 2000) -> str:
        """The last ``chars`` characters of its log, for error messages."""
        return self.log()[-chars:]

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        """Wait until ``text`` appears in the log (a readiness line such as :data:`WORKER_READY`).

        Raises:
            LaunchError: the process exited first, or ``timeout`` seconds passed; the message
                carries the log's tail.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise LaunchError(f"{self.name} exited ({self.proc.returncode}) before "
                                  f"{text!r}; log tail:\n{self.tail(3000)}")
            time.sleep(0.1)
        raise LaunchError(f"{self.name}: {text!r} not seen within {timeout:g} s; log tail:\n"
                          f"{self.tail(3000)}")

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to the process's whole session (its pool threads or children too)."""
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process group: a crash, no warm shutdown, no acknowledgements."""
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 15.0) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL if it still runs after ``timeout`` seconds."""
        self.send_signal(signal.SIGTERM)
        self._reap(timeout)

    def _reap(self, timeout: float) -> None:
        if self.proc is None:
            return
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()


@dataclass
class ProcessGroup:
    """The child processes one caller started, to be stopped together."""

    started: list[ChildProcess] = field(default_factory=list)

    def add(self, process: ChildProcess) -> ChildProcess:
        """Remember ``process`` (started or not) so that :meth:`stop_all` stops it."""
        self.started.append(process)
        return process

    def spawn(self, process: ChildProcess) -> ChildProcess:
        """Start ``process`` and remember it."""
        return self.add(process.start())

    def stop_all(self, timeout: float = 15.0) -> None:
        """Warm-shut every process down at once, newest first, then SIGKILL those still running
        ``timeout`` seconds after; forget them all."""
        for process in reversed(self.started):
            process.send_signal(signal.SIGTERM)
        for process in reversed(self.started):
            process._reap(timeout)
        self.started.clear()
