"""Running the simulator: in this process (:func:`serve`) or as a child process (:class:`SandboxServer`).

``serve`` runs uvicorn in the foreground, tuned for benchmarks: one process (the state lives in
memory), ``uvloop``/``httptools`` when installed, ``log_level="warning"``, no access log unless
asked, and a 1 s graceful shutdown (a ``timeout_after_store`` hang must not hold the exit).

``SandboxServer`` starts ``python -m einvoice.sandbox --port N ...`` as a subprocess, waits until
``GET /__sandbox/health`` answers, and offers small helpers over the control API. It talks HTTP with
the standard library on purpose: only ``einvoice.factus`` may use httpx (STYLE.md walls).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import asdict, fields
from types import TracebackType
from typing import Any, Self

import uvicorn

from einvoice.errors import EinvoiceError
from einvoice.sandbox.app import DropFilter, create_app
from einvoice.sandbox.faults import FaultConfig
from einvoice.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_USERNAME, AccountSpec

# Accounts reach a child simulator through the environment, not argv, so that secrets stay out of `ps`.
ACCOUNTS_ENV = "EINVOICE_SANDBOX_ACCOUNTS"

FAULT_FIELDS = tuple(f.name for f in fields(FaultConfig))

# FaultConfig field → flag of ``einvoice sandbox serve`` / ``python -m einvoice.sandbox``.
CLI_FLAGS = {
    "latency_ms": "--latency-ms",
    "latency_jitter_ms": "--latency-jitter-ms",
    "error_500": "--fault-500",
    "error_503": "--fault-503",
    "timeout_after_store": "--fault-timeout",
    "rate_limit_429": "--fault-429",
    "dian_rejection": "--fault-dian-rejection",
    "dian_slow": "--fault-dian-slow",
    "dian_stuck": "--fault-dian-stuck",
    "invalid_cufe": "--fault-invalid-cufe",
    "token_latency_ms": "--token-latency-ms",
    "expired_token": "--fault-expired-token",
    "rate_limit_per_minute": "--rate-limit",
    "token_expires_in": "--token-expires-in",
    "timeout_hang_seconds": "--timeout-hang-seconds",
    "retry_after_seconds": "--retry-after-seconds",
    "seed": "--seed",
}


# Account modes (``AccountSpec.mode``) as the flags that make them.
MODES: dict[str, dict[str, bool]] = {
    "both": {"v1_enabled": True, "v2_enabled": True},
    "v1": {"v1_enabled": True, "v2_enabled": False},
    "v2": {"v1_enabled": False, "v2_enabled": True},
}


class SandboxServerError(EinvoiceError):
    """The simulator could not be started, or its control API refused a request."""

    reason = "sandbox_unavailable"


def serve(
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    accounts: list[AccountSpec] | None = None,
    access_log: bool = False,
    log_level: str = "warning",
    **options: Any,
) -> None:
    """Run the simulator with uvicorn until interrupted.

    Args:
        host: interface to bind.
        port: TCP port.
        accounts: accounts besides the default one.
        access_log: log every request (off by default: it costs CPU in benchmarks).
        log_level: uvicorn log level.
        **options: startup :class:`~einvoice.sandbox.faults.FaultConfig` fields (``latency_ms``,
            ``error_500``, ``rate_limit_per_minute`` (None = off), ``seed``, ...).

    Raises:
        einvoice.sandbox.faults.FaultConfigError: an unknown or out-of-range option.
        einvoice.sandbox.state.SandboxError: an invalid account.
    """
    faults = FaultConfig().updated(options)
    app = create_app(faults, accounts)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=1,
        lifespan="off",
    )
    logging.getLogger("uvicorn.error").addFilter(DropFilter())
    uvicorn.Server(config).run()


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago on ``host``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cli_arguments(options: dict[str, Any]) -> list[str]:
    """Turn :class:`FaultConfig` options into CLI flags (``rate_limit_per_minute=None`` → ``--rate-limit 0``).

    Raises:
        SandboxServerError: an option that is not a fault setting.
    """
    arguments: list[str] = []
    for name, value in options.items():
        if name not in CLI_FLAGS:
            raise SandboxServerError(
                f"unknown sandbox option {name!r}; known: {', '.join(CLI_FLAGS)}"
            )
        flag_value = 0 if name == "rate_limit_per_minute" and value is None else value
        if flag_value is None:
            continue
        arguments += [CLI_FLAGS[name], str(flag_value)]
    return arguments


class SandboxServer:
    """The simulator in a child process, for tests, demos and benchmarks.

    Usage::

        with SandboxServer(latency_ms=200, seed=7) as sandbox:
            httpx.post(sandbox.base_url + "/oauth/token", data={...})
            sandbox.set_faults(error_503=0.1)
            assert sandbox.account_stats()["validations_by_reference"]["bill"]["REF-1"] == 1

    Args:
        port: TCP port; None picks a free one.
        host: interface (loopback by default).
        accounts: extra startup accounts (kept by every reset), handed to the child process in the
            ``EINVOICE_SANDBOX_ACCOUNTS`` environment variable so that no secret shows in ``ps``.
        startup_timeout: seconds to wait for the server to answer.
        access_log: let uvicorn log every request.
        **options: startup faults and limits, named as :class:`FaultConfig` fields.
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        accounts: list[AccountSpec] | None = None,
        startup_timeout: float = 20.0,
        access_log: bool = False,
        **options: Any,
    ) -> None:
        self.host = host
        self.port = port
        self.accounts = list(accounts or [])
        self.startup_timeout = startup_timeout
        self.access_log = access_log
        self._arguments = cli_arguments(options)
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running simulator (the Factus API root).

        Raises:
            SandboxServerError: the server is not started.
        """
        if self._process is None or self.port is None:
            raise SandboxServerError("the sandbox server is not running")
        return f"http://{self.host}:{self.port}"

    def start(self) -> Self:
        """Start the child process and wait until it answers; returns ``self``.

        Raises:
            SandboxServerError: it exited early or did not answer within ``startup_timeout``
                (the message carries the end of its stderr).
        """
        if self._process is not None:
            return self
        if self.port is None:
            self.port = free_port(self.host)
        command = [
            sys.executable,
            "-m",
            "einvoice.sandbox",
            "--host",
            self.host,
            "--port",
            str(self.port),
            *self._arguments,
        ]
        if self.access_log:
            command.append("--access-log")
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - open for the child's life, closed in stop()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.accounts:
            env[ACCOUNTS_ENV] = json.dumps([asdict(spec) for spec in self.accounts])
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._process.poll()
            if code is not None:
                output = self._output()
                self._process = None
                raise SandboxServerError(f"the sandbox exited with code {code}: {output}")
            if self._answers(self._process.pid):
                return self
            if time.monotonic() > deadline:
                output = self._output()
                self.stop()
                raise SandboxServerError(
                    f"the sandbox did not answer within {self.startup_timeout} s: {output}"
                )
            time.sleep(0.05)

    def _answers(self, pid: int) -> bool:
        """True once our child answers the health check (the pid tells it from another server)."""
        try:
            health = self._call("GET", "/__sandbox/health", timeout=1.0)
        except (OSError, SandboxServerError):
            return False
        return isinstance(health, dict) and health.get("pid") == pid

    def _output(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        tail: bytes = self._log.read()[-2000:]
        return tail.decode("utf-8", errors="replace")

    def stop(self) -> None:
        """Stop the child process (SIGTERM, then SIGKILL after 5 s). Safe to call twice."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- control helpers ----------------------------------------------------------------------

    def _call(self, method: str, path: str, body: Any = None, *, timeout: float = 10.0) -> Any:
        if self.port is None:
            raise SandboxServerError("the sandbox server is not running")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"http://{self.host}:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            # The URL is the simulator's own http:// address, built just above.
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", errors="replace")
            raise SandboxServerError(f"{method} {path} answered {exc.code}: {detail}") from exc

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change fault settings (merge; see ``POST /__sandbox/faults``); returns the config in force.

        Raises:
            SandboxServerError: an unknown field or an out-of-range value (HTTP 400).
        """
        return dict(self._call("POST", "/__sandbox/faults", changes))

    def clear_faults(self) -> dict[str, Any]:
        """Go back to the startup faults; returns them."""
        return dict(self._call("DELETE", "/__sandbox/faults"))

    def faults(self) -> dict[str, Any]:
        """The fault config in force."""
        return dict(self._call("GET", "/__sandbox/faults"))

    def reset(self, *, revoke_tokens: bool = False, drop_added_accounts: bool = False) -> None:
        """Forget documents, counters and quotas, restore the startup faults (``POST /__sandbox/reset``)."""
        self._call(
            "POST",
            "/__sandbox/reset",
            {"revoke_tokens": revoke_tokens, "drop_added_accounts": drop_added_accounts},
        )

    def stats(self) -> dict[str, Any]:
        """All counters: ``{"global", "unauthenticated", "accounts": {"<client_id>/<username>": ...}}``."""
        return dict(self._call("GET", "/__sandbox/stats"))

    def account_stats(
        self, username: str = DEFAULT_USERNAME, client_id: str = DEFAULT_CLIENT_ID
    ) -> dict[str, Any]:
        """One account's counters (requests, validate_posts, documents_stored, validations_by_reference).

        Raises:
            SandboxServerError: no such account.
        """
        accounts = self.stats()["accounts"]
        key = f"{client_id}/{username}"
        if key not in accounts:
            raise SandboxServerError(f"no sandbox account {key}")
        return dict(accounts[key])

    def add_account(
        self,
        client_id: str,
        client_secret: str,
        username: str,
        password: str,
        *,
        mode: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Add an account at run time (``POST /__sandbox/accounts``); returns its summary.

        Args:
            client_id, client_secret, username, password: its OAuth credentials.
            mode: ``"v1"`` (403 on ``/v2``), ``"v2"`` (403 on ``/v1``, as a Factus account opened
                today) or ``"both"``; None leaves ``v1_enabled``/``v2_enabled`` to ``extra``.
            **extra: ``company_name``, ``company_nit``, ``v1_enabled``, ``v2_enabled``,
                ``test_ranges``, ``ranges_registered`` (False: ranges must be created through
                ``POST /v2/numbering-ranges`` first).

        Raises:
            SandboxServerError: a duplicate account, an unknown mode or an invalid field (HTTP 400).
        """
        if mode is not None:
            if mode not in MODES:
                raise SandboxServerError(f"mode must be one of {sorted(MODES)}")
            extra = {**extra, **MODES[mode]}
        spec = {
            "client_id": client_id,
            "client_secret": client_secret,
            "username": username,
            "password": password,
            **extra,
        }
        return dict(self._call("POST", "/__sandbox/accounts", spec))
