"""How the job listener gathers NOTIFY payloads into one batch (einvoice.services.dispatch._gather).

The connection is a scripted stand-in for psycopg's ``Connection.notifies``: each call returns the
next group of payloads that "arrived" within its timeout (an empty group: the timeout passed in
silence). The listener's real LISTEN/NOTIFY path is tested against PostgreSQL in
tests/integration/pipeline/test_producers.py.
"""

from __future__ import annotations

from types import SimpleNamespace

from einvoice.services import dispatch


class ScriptedNotifies:
    """Answers ``notifies(timeout=..., stop_after=...)`` from a list of payload groups."""

    def __init__(self, groups: list[list[str]]) -> None:
        self.groups = list(groups)
        self.calls: list[tuple[float, int]] = []

    def notifies(self, *, timeout: float, stop_after: int) -> list[SimpleNamespace]:
        self.calls.append((timeout, stop_after))
        group = self.groups.pop(0) if self.groups else []
        return [SimpleNamespace(payload=p) for p in group[:stop_after]]


def test_a_job_that_arrives_alone_is_handed_over_after_one_quiet_wait():
    conn = ScriptedNotifies([[]])
    batch = ["job-1"]

    dispatch._gather(conn, batch, gather_seconds=0.01, quiet_seconds=0.002, max_batch=1000)

    assert batch == ["job-1"]
    assert conn.calls == [(0.002, 999)]  # one 2 ms wait, not the whole 10 ms


def test_notifications_that_keep_coming_are_gathered_until_a_quiet_wait():
    conn = ScriptedNotifies([["a", "b"], ["c"], [], ["late"]])
    batch = ["first"]

    dispatch._gather(conn, batch, gather_seconds=5.0, quiet_seconds=0.002, max_batch=1000)

    assert batch == ["first", "a", "b", "c"]  # "late" came after 2 ms of silence: next batch
    assert len(conn.calls) == 3


def test_a_burst_stops_at_the_batch_limit():
    conn = ScriptedNotifies([[f"j{i}" for i in range(600)], [f"k{i}" for i in range(600)]])
    batch = ["first"]

    dispatch._gather(conn, batch, gather_seconds=5.0, quiet_seconds=0.002, max_batch=1000)

    assert len(batch) == 1000
    assert conn.calls == [(0.002, 999), (0.002, 399)]


def test_gathering_never_outlasts_its_window():
    conn = ScriptedNotifies([["a"]] * 50)
    batch = ["first"]

    dispatch._gather(conn, batch, gather_seconds=0.0, quiet_seconds=0.002, max_batch=1000)

    assert batch == ["first"]
    assert conn.calls == []


def test_a_job_that_arrives_after_a_pause_is_handed_over_without_waiting():
    conn = ScriptedNotifies([[], ["late"]])
    batch = ["job-1"]

    dispatch._collect(conn, batch, after_pause=True, gather_seconds=0.01, quiet_seconds=0.002,
                      max_batch=1000)

    assert batch == ["job-1"]
    assert conn.calls == [(0.0, 999)]  # one poll of what already arrived, no 2 ms wait


def test_a_burst_after_a_pause_is_still_gathered():
    conn = ScriptedNotifies([["a", "b"], ["c"], []])
    batch = ["first"]

    dispatch._collect(conn, batch, after_pause=True, gather_seconds=5.0, quiet_seconds=0.002,
                      max_batch=1000)

    assert batch == ["first", "a", "b", "c"]
    assert conn.calls == [(0.0, 999), (0.002, 997), (0.002, 996)]


def test_notifications_that_follow_each_other_closely_are_gathered():
    conn = ScriptedNotifies([["a"], []])
    batch = ["first"]

    dispatch._collect(conn, batch, after_pause=False, gather_seconds=5.0, quiet_seconds=0.002,
                      max_batch=1000)

    assert batch == ["first", "a"]
    assert conn.calls == [(0.002, 999), (0.002, 998)]  # no zero-timeout poll first
