"""The one launcher of local child processes (``einvoice.launch``) that the demo, the benchmark
and chaos harness and the pipeline tests start Celery with: readiness from the log, warm stop,
crash, and a SIGKILL for a process that ignores the warm stop. Tiny Python children stand in for
Celery so that each behaviour is checked in well under a second."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from einvoice.launch import ChildProcess, LaunchError, ProcessGroup, celery_command, worker_args

READY_THEN_WAIT = "import time; print('worker ready.', flush=True); time.sleep(60)"
DEAF_TO_SIGTERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready.', flush=True); time.sleep(60)"
)


def child(tmp_path: Path, name: str, code: str, **kwargs: object) -> ChildProcess:
    return ChildProcess(name, [sys.executable, "-c", code], dict(os.environ),
                        tmp_path / f"{name}.log", **kwargs)  # type: ignore[arg-type]


def test_a_ready_process_is_waited_for_then_stopped_warmly(tmp_path: Path) -> None:
    # Given a child that prints its readiness line
    process = child(tmp_path, "worker", READY_THEN_WAIT).start()

    # When we wait for the line, then stop it
    process.wait_for("ready.", timeout=10)
    process.stop(timeout=10)

    # Then it ended by the warm-shutdown signal, and its output is in its log
    assert process.proc is not None
    assert process.proc.returncode == -signal.SIGTERM
    assert "worker ready." in process.log()


def test_a_process_that_exits_before_its_readiness_line_fails_at_once_with_its_log(
    tmp_path: Path,
) -> None:
    # Given a child that dies at start (a bad setting, say)
    process = child(tmp_path, "worker",
                    "import sys; print('cannot start: DATABASE_URL'); sys.exit(78)").start()

    # When we wait for its readiness line, Then the wait fails fast naming why
    with pytest.raises(LaunchError, match=r"exited \(78\)[\s\S]*cannot start: DATABASE_URL"):
        process.wait_for("ready.", timeout=30)


def test_a_process_deaf_to_the_warm_stop_is_killed_after_the_grace_period(tmp_path: Path) -> None:
    # Given two children, one of which ignores SIGTERM
    group = ProcessGroup()
    polite = group.spawn(child(tmp_path, "polite", READY_THEN_WAIT))
    deaf = group.spawn(child(tmp_path, "deaf", DEAF_TO_SIGTERM))
    deaf.wait_for("ready.", timeout=10)

    # When the group is stopped with a short grace period
    group.stop_all(timeout=0.5)

    # Then both are gone: the polite one by SIGTERM, the deaf one by SIGKILL
    assert not polite.alive()
    assert not deaf.alive()
    assert deaf.proc is not None
    assert deaf.proc.returncode == -signal.SIGKILL
    assert group.started == []


def test_a_restarted_process_appends_to_its_log_when_asked(tmp_path: Path) -> None:
    # Given a child whose log is kept across restarts (the chaos run restarts killed workers)
    process = child(tmp_path, "worker", "print('run', flush=True)", append=True)

    # When it runs twice
    for _ in range(2):
        process.start()
        assert process.proc is not None
        process.proc.wait(10)

    # Then its log holds both runs
    assert process.log().count("run") == 2


def test_a_worker_command_is_the_threads_pool_on_the_named_queues() -> None:
    argv = celery_command(*worker_args(concurrency=4, name="w@%h", queues="reference"))

    assert argv[:5] == [sys.executable, "-m", "celery", "-A", "workers"]
    assert argv[5:12] == ["worker", "--pool", "threads", "-c", "4", "-Q", "reference"]
