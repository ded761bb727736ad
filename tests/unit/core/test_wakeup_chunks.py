"""How a burst of wake-ups is split into messages (einvoice.queueing.wakeup_chunks)."""

from __future__ import annotations

import uuid

import pytest

from einvoice.queueing import WAKEUP_SPREAD, wakeup_chunks


def _ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


@pytest.mark.parametrize(("jobs", "max_jobs", "sizes"), [
    (1, 10, [1]),
    (WAKEUP_SPREAD, 10, [1] * WAKEUP_SPREAD),  # a small burst: one job per message
    (250, 10, [2] * 125),  # spread over at least WAKEUP_SPREAD messages
    (6000, 10, [10] * 600),  # capped at max_jobs per message
    (1005, 10, [10] * 100 + [5]),
    (6000, 1, [1] * 6000),  # EINVOICE_WAKEUP_MAX_JOBS=1: one message per job always
])
def test_a_burst_is_spread_over_messages_of_at_most_max_jobs(jobs: int, max_jobs: int,
                                                             sizes: list[int]) -> None:
    ids = _ids(jobs)

    chunks = wakeup_chunks(ids, max_jobs)

    assert [len(c) for c in chunks] == sizes
    assert [i for chunk in chunks for i in chunk] == ids  # each job once, in order


def test_no_jobs_no_messages_and_a_bad_maximum_is_refused() -> None:
    assert wakeup_chunks([], 10) == []
    with pytest.raises(ValueError, match=">= 1"):
        wakeup_chunks(_ids(3), 0)
