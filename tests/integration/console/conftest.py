"""Console fixtures: the HTTP API's real uvicorn server (its ``/console``), operator accounts, and
a browser-like HTTP client that keeps cookies and reads CSRF tokens from the pages.

``api`` (module) comes from ``tests/integration/api/conftest.py``: one server per module on a
database of its own; each test takes fresh organizations (``new_org``) and fresh usernames, so
tests sharing the database never see each other's rows.
"""

from __future__ import annotations

import itertools
import re
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from einvoice.services.console_auth import create_user
from tests.integration.api.conftest import (  # noqa: F401 - fixtures shared with the API tests
    Api,
    api,
    api_engine,
    new_org,
    org,
    other_org,
)

PASSWORD = "una clave bien larga"
_names = itertools.count(1)

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form of a page."""
    found = _CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found[1]


@dataclass
class Operator:
    """A signed-in console user: an HTTP client with its cookies and the session's CSRF token."""

    username: str
    client: httpx.Client
    csrf: str

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """GET a console path (``/console`` prefixed)."""
        return self.client.get(f"/console{path}", **kwargs)

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True,
             **kwargs: Any) -> httpx.Response:
        """POST a form to a console path, with the session's CSRF token unless ``csrf`` is
        False."""
        form = dict(data or {})
        if csrf:
            form.setdefault("csrf_token", self.csrf)
        return self.client.post(f"/console{path}", data=form, **kwargs)


def new_user(server: Api, role: str, organization_id: int | None = None) -> str:
    """A fresh console account (committed); returns its username."""
    username = f"{role}{next(_names)}-{uuid.uuid4().hex[:6]}"
    with server.factory() as session:
        create_user(session, username=username, password=PASSWORD, role=role,
                    organization_id=organization_id)
        session.commit()
    return username


def sign_in(server: Api, username: str, password: str = PASSWORD) -> httpx.Response:
    """Go through the sign-in form as a browser does; returns the answer to the POST (with the
    client in ``.extensions["client"]``)."""
    client = httpx.Client(base_url=server.base_url, timeout=30, follow_redirects=False)
    page = client.get("/console/login")
    answer = client.post("/console/login", data={
        "csrf_token": csrf_of(page.text), "username": username, "password": password})
    answer.extensions["client"] = client
    return answer


def operator(server: Api, role: str, organization_id: int | None = None) -> Operator:
    """A fresh account of ``role`` (scoped to ``organization_id`` when given), signed in."""
    username = new_user(server, role, organization_id)
    answer = sign_in(server, username)
    assert answer.status_code == 303, answer.text
    client: httpx.Client = answer.extensions["client"]
    page = client.get("/console/overview")
    assert page.status_code == 200, page.text
    return Operator(username=username, client=client, csrf=csrf_of(page.text))
