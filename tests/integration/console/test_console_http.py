"""The console over real HTTP (uvicorn, PostgreSQL): sign-in and its cookie, lock-out, CSRF,
roles, organization scoping, the job table's filters and pages, a job page, languages, and the
configuration pages' write-only secrets."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from sqlalchemy import text

from einvoice.services.console_auth import LOCK_AFTER_FAILURES
from tests.integration.api.conftest import Api, Org, new_org
from tests.integration.console.conftest import PASSWORD, csrf_of, new_user, operator, sign_in


def _job(api: Api, org: Org, *, status: str = "rejected", error_code: str | None = "FAK24",
         payload: dict[str, Any] | None = None, number: str | None = None,
         created: str = "now()") -> uuid.UUID:
    """A job of ``org``'s fresh invoice in ``status`` (as the worker would have left it)."""
    invoice_id = org.invoice()
    with api.factory() as session:
        job_id = session.execute(text(
            "INSERT INTO electronic_invoicing_jobs (organization_id, invoice_id, document_type, "
            f"provider, status, error_code, error_message, request_payload, document_number, "
            f"created_at, attempt_count) VALUES (:org, :inv, 'invoice', 'factus', :status, :code, "
            f":msg, CAST(:payload AS jsonb), :number, {created}, 1) RETURNING id"),
            {"org": org.id, "inv": invoice_id, "status": status, "code": error_code,
             "msg": "Regla FAK24: el NIT del adquiriente no es válido" if error_code else None,
             "payload": json.dumps(payload) if payload is not None else None,
             "number": number}).scalar_one()
        session.commit()
    return job_id


def _status(api: Api, job_id: uuid.UUID) -> str:
    return str(api.scalar("SELECT status FROM electronic_invoicing_jobs WHERE id = :j", j=job_id))


def _events(api: Api, job_id: uuid.UUID) -> list[str]:
    with api.factory() as session:
        return [row[0] for row in session.execute(text(
            "SELECT event_type FROM electronic_invoicing_events WHERE job_id = :j "
            "ORDER BY created_at"), {"j": job_id})]


# --------------------------------------------------------------------------------------------
# Sign-in
# --------------------------------------------------------------------------------------------


def test_signing_in_sets_a_hardened_session_cookie_and_opens_the_spanish_overview(
        api: Api) -> None:
    # Given an operator account
    username = new_user(api, "viewer")

    # When they sign in through the form
    answer = sign_in(api, username)
    client = answer.extensions["client"]
    overview = client.get(answer.headers["location"])

    # Then the session cookie is HttpOnly, SameSite=Lax, limited to /console, not the token's
    # hash, and the overview is in Spanish
    assert answer.status_code == 303
    cookie = next(h for h in answer.headers.get_list("set-cookie")
                  if h.startswith("einvoice_console="))
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "samesite", "path"} <= attributes
    assert "samesite=lax" in cookie.lower()
    assert "path=/console" in cookie.lower()
    token = cookie.split(";")[0].split("=", 1)[1]
    stored = api.scalar("SELECT count(*) FROM operator_sessions WHERE token_sha256 = :t", t=token)
    assert stored == 0
    assert overview.status_code == 200
    assert "<h1>Resumen</h1>" in overview.text
    assert overview.headers["content-security-policy"].startswith("default-src 'self'")
    assert overview.headers["x-frame-options"] == "DENY"


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer_and_failures_lock(
        api: Api) -> None:
    username = new_user(api, "viewer")

    wrong = sign_in(api, username, "not the password at all")
    unknown = sign_in(api, "nobody-" + uuid.uuid4().hex[:6], PASSWORD)
    for _ in range(LOCK_AFTER_FAILURES - 1):
        sign_in(api, username, "still not the password")
    locked = sign_in(api, username, PASSWORD)

    assert wrong.status_code == unknown.status_code == locked.status_code == 401
    notice = re.compile(r'<div class="notice bad" role="alert">([^<]+)</div>')
    assert notice.findall(wrong.text) == notice.findall(unknown.text) == notice.findall(
        locked.text)
    assert "bloqueada" in wrong.text
    assert "einvoice_console=" not in " ".join(locked.headers.get_list("set-cookie"))


def test_pages_without_a_session_send_the_browser_to_sign_in(api: Api) -> None:
    client = api.client()

    page = client.get("/console/jobs?status=rejected")
    live = client.get("/console/overview/live", headers={"HX-Request": "true"})

    assert page.status_code == 303
    assert page.headers["location"] == "/console/login?next=/console/jobs%3Fstatus%3Drejected"
    assert live.status_code == 401
    assert live.headers["HX-Redirect"] == "/console/login"


def test_signing_out_ends_the_session(api: Api) -> None:
    viewer = operator(api, "viewer")

    out = viewer.post("/logout")
    after = viewer.get("/overview")

    assert out.status_code == 303
    assert after.status_code == 303
    assert after.headers["location"].startswith("/console/login")


# --------------------------------------------------------------------------------------------
# CSRF and roles
# --------------------------------------------------------------------------------------------


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(api: Api, org: Org) -> None:
    # Given a rejected job and a signed-in operator
    job_id = _job(api, org)
    ops = operator(api, "operator")

    # When the retry form is posted without the token, with another token, or the sign-in form
    # without its token
    missing = ops.post(f"/jobs/{job_id}/retry", csrf=False)
    forged = ops.post(f"/jobs/{job_id}/retry", {"csrf_token": "x" * 43})
    login = api.client().post("/console/login", data={"username": ops.username,
                                                      "password": PASSWORD})

    # Then each is refused with 403 and the job is untouched
    assert missing.status_code == forged.status_code == login.status_code == 403
    assert "Formulario vencido" in missing.text
    assert _status(api, job_id) == "rejected"
    assert "operator_retry" not in _events(api, job_id)


def test_the_csrf_header_htmx_sends_is_accepted(api: Api, org: Org) -> None:
    job_id = _job(api, org)
    ops = operator(api, "operator")

    answer = ops.client.post(f"/console/jobs/{job_id}/retry",
                             headers={"X-CSRF-Token": ops.csrf})

    assert answer.status_code == 303
    assert _status(api, job_id) == "pending"


def test_a_viewer_cannot_retry_but_an_operator_can_and_the_event_names_them(
        api: Api, org: Org) -> None:
    # Given a rejected job
    job_id = _job(api, org)
    viewer, ops = operator(api, "viewer"), operator(api, "operator")

    # When a viewer opens the confirmation or posts the retry with a valid token
    confirm = viewer.get(f"/jobs/{job_id}/confirm/retry")
    refused = viewer.post(f"/jobs/{job_id}/retry")
    viewer_page = viewer.get(f"/jobs/{job_id}")
    # and then an operator confirms it
    asked = ops.get(f"/jobs/{job_id}/confirm/retry")
    done = ops.post(f"/jobs/{job_id}/retry", {"csrf_token": csrf_of(asked.text)})
    page = ops.client.get(done.headers["location"])

    # Then the viewer is refused (403) and sees no action; the operator's retry re-queued the
    # job, and its event names the operator
    assert confirm.status_code == refused.status_code == 403
    assert 'id="action-retry"' not in viewer_page.text
    assert asked.status_code == 200
    assert "¿Enviar de nuevo este trabajo a Factus?" in asked.text
    assert done.status_code == 303
    assert _status(api, job_id) == "pending"
    message = api.scalar("SELECT event_message FROM electronic_invoicing_events WHERE job_id = :j "
                         "AND event_type = 'operator_retry'", j=job_id)
    assert f"console:{ops.username}" in message
    assert 'id="done"' in page.text
    assert f"console:{ops.username}" in page.text


def test_an_action_the_state_forbids_is_explained_on_the_job_page(api: Api, org: Org) -> None:
    job_id = _job(api, org, status="accepted", error_code=None, number="SETP990000001")
    ops = operator(api, "operator")

    answer = ops.post(f"/jobs/{job_id}/retry")

    assert answer.status_code == 409
    assert "Solo se pueden reintentar trabajos rechazados o fallidos." in answer.text
    assert _status(api, job_id) == "accepted"


def test_configuration_is_for_admins_only(api: Api) -> None:
    ops = operator(api, "operator")

    page = ops.get("/config/api-keys")
    post = ops.post("/config/api-keys", {"organization_id": "1", "name": "x"})

    assert page.status_code == post.status_code == 403


# --------------------------------------------------------------------------------------------
# Organization scoping
# --------------------------------------------------------------------------------------------


def test_an_operator_of_one_organization_never_sees_another_organizations_jobs(
        api: Api, org: Org, other_org: Org) -> None:
    # Given a job in each of two organizations, and an operator scoped to the first
    mine, theirs = _job(api, org), _job(api, other_org)
    ops = operator(api, "operator", organization_id=org.id)

    # When they list jobs, open the other organization's job, and try to retry it
    table = ops.get("/jobs")
    filtered = ops.get(f"/jobs?org={other_org.id}")
    page = ops.get(f"/jobs/{theirs}")
    retry = ops.post(f"/jobs/{theirs}/retry")
    overview = ops.get("/overview")

    # Then only their own job is listed, the other is "not found", and nothing changed
    assert str(mine) in table.text
    assert str(theirs) not in table.text
    assert str(theirs) not in filtered.text
    assert page.status_code == retry.status_code == 404
    assert _status(api, theirs) == "rejected"
    assert f'href="/console/jobs?org={other_org.id}"' not in overview.text
    assert f'href="/console/jobs?org={org.id}"' in overview.text


# --------------------------------------------------------------------------------------------
# The job table and the job page
# --------------------------------------------------------------------------------------------


def test_the_job_table_filters_by_status_and_rule_and_pages_by_keyset(api: Api) -> None:
    # Given 55 rejected jobs with rule FAK24, 3 with another rule, and 2 accepted, in a fresh
    # organization seen by an operator scoped to it
    org = new_org(api)
    rejected = [_job(api, org, created=f"now() - interval '{i} minutes'") for i in range(55)]
    other_rule = [_job(api, org, error_code="total_mismatch") for _ in range(3)]
    _job(api, org, status="accepted", error_code=None, number="SETP990000777")
    ops = operator(api, "viewer", organization_id=org.id)

    # When they filter rejected FAK24 jobs and follow the next-page link
    first = ops.get("/jobs?status=rejected&code=FAK24")
    next_link = re.search(r'href="(/console/jobs\?[^"]+)" rel="next"', first.text)
    assert next_link, first.text
    second = ops.client.get(next_link[1].replace("&amp;", "&"))
    by_number = ops.get("/jobs?number=setp990000777")

    # Then the pages hold 50 and 5 of those jobs, newest first, none twice, none of the others
    ids = re.compile(r'data-job="([0-9a-f-]+)"')
    page1, page2 = ids.findall(first.text), ids.findall(second.text)
    assert len(page1) == 50
    assert len(page2) == 5
    assert [uuid.UUID(i) for i in page1 + page2] == rejected
    assert not {str(i) for i in other_rule} & set(page1 + page2)
    assert 'rel="next"' not in second.text
    assert len(ids.findall(by_number.text)) == 1
    assert "SETP990000777" in by_number.text


def test_a_bad_filter_value_is_explained_not_a_crash(api: Api) -> None:
    viewer = operator(api, "viewer")

    answer = viewer.get("/jobs?status=lost&from=yesterday")

    assert answer.status_code == 400
    assert "Falta un valor o no es válido." in answer.text


def test_the_job_page_shows_the_payload_with_its_secrets_hidden(api: Api, org: Org) -> None:
    payload = {"reference_code": "EI0001", "customer": {"names": "María Gómez",
                                                         "identification": "1020304050"},
               "items": [{"name": "Café", "price": "23800.00"}],
               "credentials": {"password": "hunter2-hunter2"}, "access_token": "eyJabc.def"}
    job_id = _job(api, org, payload=payload)
    viewer = operator(api, "viewer")

    page = viewer.get(f"/jobs/{job_id}")

    assert page.status_code == 200
    assert "María Gómez" in page.text
    assert "hunter2" not in page.text
    assert "eyJabc" not in page.text
    assert "FAK24" in page.text
    assert "Regla FAK24" in page.text


def test_english_is_one_click_away_and_remembered(api: Api) -> None:
    viewer = operator(api, "viewer")

    english = viewer.get("/overview?lang=en")
    again = viewer.get("/jobs")
    back = viewer.get("/jobs?lang=es")

    assert "<h1>Overview</h1>" in english.text
    assert "<h1>Jobs</h1>" in again.text
    assert "<h1>Trabajos</h1>" in back.text


# --------------------------------------------------------------------------------------------
# Configuration: secrets are write-only
# --------------------------------------------------------------------------------------------


def test_an_api_key_created_in_the_console_is_shown_once_then_only_its_prefix(
        api: Api, org: Org) -> None:
    admin = operator(api, "admin", organization_id=org.id)

    created = admin.post("/config/api-keys", {"name": "erp-produccion"})
    key = re.search(r'<p class="mono">(ei_[^<]+)</p>', created.text)
    listed = admin.get("/config/api-keys")

    assert created.status_code == 200, created.text
    assert key, created.text
    prefix = key[1].split("_")[1]
    assert prefix in listed.text
    assert key[1] not in listed.text
    # And the key works on the HTTP API
    assert api.client(key[1]).get("/api/stats").status_code == 200


def test_a_scoped_admin_cannot_configure_another_organization(
        api: Api, org: Org, other_org: Org) -> None:
    admin = operator(api, "admin", organization_id=org.id)

    answer = admin.post("/config/api-keys", {"organization_id": str(other_org.id),
                                             "name": "sneaky"})

    assert answer.status_code == 409
    assert api.scalar("SELECT count(*) FROM api_keys WHERE organization_id = :o AND name = "
                      "'sneaky'", o=other_org.id) == 0


def test_cancel_resend_and_credit_note_are_recorded_in_the_operators_name(
        api: Api, org: Org) -> None:
    # Given a rejected job and an accepted invoice job, and an operator
    rejected = _job(api, org)
    accepted = _job(api, org, status="accepted", error_code=None, number="SETP990000042",
                    payload={"customer": {"email": "maria@example.com"}})
    ops = operator(api, "operator")
    actor = f"console:{ops.username}"

    # When they cancel the first, and resend the e-mail and issue a credit note of the second
    cancelled = ops.post(f"/jobs/{rejected}/cancel")
    resent = ops.post(f"/jobs/{accepted}/resend-email", {"to": ""})
    noted = ops.post(f"/jobs/{accepted}/credit-note", {"notes": "Devolución total"})

    # Then each is done and each event names the operator
    assert cancelled.status_code == resent.status_code == noted.status_code == 303
    assert _status(api, rejected) == "cancelled"
    with api.factory() as session:
        messages = dict(session.execute(text(
            "SELECT event_type, event_message FROM electronic_invoicing_events "
            "WHERE job_id IN (:a, :b) AND event_type IN ('cancelled', 'email_requested', "
            "'credit_note_requested')"), {"a": rejected, "b": accepted}).all())
        note = session.execute(text(
            "SELECT j.document_type, j.status, s.related_invoice_id, s.notes "
            "FROM electronic_invoicing_jobs j JOIN invoice_sales s ON s.id = j.invoice_id "
            "WHERE j.document_type = 'credit_note' AND j.organization_id = :o"),
            {"o": org.id}).one()
        email_to = session.execute(text(
            "SELECT to_address FROM electronic_invoicing_followups WHERE job_id = :j "
            "AND kind = 'email'"), {"j": accepted}).scalar_one()
    assert set(messages) == {"cancelled", "email_requested", "credit_note_requested"}
    assert all(actor in message for message in messages.values())
    assert note[:2] == ("credit_note", "pending")
    assert note[3] == "Devolución total"
    assert email_to == "maria@example.com"
