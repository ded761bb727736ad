"""The default sample dataset, generated once per module into its own migrated database.

Generating 240 invoices takes about a second; the read-only scenarios share one copy instead of
paying for it in every test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import pytest
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db.engine import make_engine, make_session_factory
from einvoice.devservices import DevServices
from einvoice.sample import SampleSummary, generate_sample
from tests.fixtures.services import create_database, drop_database

#: A fixed "today" so that dates, validity and expiry do not depend on when the tests run.
TODAY = date(2025, 3, 14)


@dataclass(frozen=True)
class SampleDatabase:
    """A committed default sample: its database URL, a session factory and the summary."""

    url: str
    sessions: sessionmaker[Session]
    summary: SampleSummary


def generate_into(url: str, **kwargs: object) -> SampleSummary:
    """Generate a sample (``TODAY`` unless given) into the database at ``url`` and commit it."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    try:
        with make_session_factory(engine)() as session:
            summary = generate_sample(session, **{"today": TODAY, **kwargs})  # type: ignore[arg-type]
            session.commit()
        return summary
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def sample_db(services: DevServices, template_db: str) -> Iterator[SampleDatabase]:
    """The default sample (seed 7, 3 organizations, 60 customers, 240 invoices) committed."""
    name, url = create_database(services, template_db)
    summary = generate_into(url)
    engine = make_engine(url, pool_size=2, max_overflow=0)
    yield SampleDatabase(url=url, sessions=make_session_factory(engine), summary=summary)
    engine.dispose()
    drop_database(services, name)


@pytest.fixture
def sample_session(sample_db: SampleDatabase) -> Iterator[Session]:
    """A read-only session on the shared sample (rolled back, never committed)."""
    with sample_db.sessions() as session:
        yield session
        session.rollback()
