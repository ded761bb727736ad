"""The live server against its own ``/openapi.json`` (schemathesis): for inputs generated from
the document, valid and invalid, no route answers a 500, and every answer's status, content type
and body are the ones the document declares (RFC 9457 problems included).

Examples per route are bounded so the module runs in well under a minute.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from tests.integration.api.conftest import Api, Org, new_org


@pytest.fixture(scope="module")
def contract_org(api: Api) -> Org:
    """An organization with a few jobs, so that some generated requests find data."""
    organization = new_org(api)
    with organization.client() as erp:
        for _ in range(2):
            erp.post(f"/api/invoices/{organization.invoice()}/jobs")
    return organization


#: Operations where a schema-valid request can still be refused with 422, by rules a JSON Schema
#: cannot state: an opaque cursor this API did not give out, a customer_id or branch_id the
#: organization does not have. Every other check still applies to them.
REFERENCES_THE_DOCUMENT_CANNOT_CHECK = {"GET /api/jobs", "POST /api/invoices"}


def _exercise(operation: Any, mode: GenerationMode, base_url: str, key: str) -> str | None:
    """Run bounded generated cases of one operation; the first failure's text, or None."""
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    def run(case: Any) -> None:
        # A generated Idempotency-Key is reused across operations: 422 idempotency_key_reused
        # is then the right answer to a schema-valid request.
        semantic = (operation.label in REFERENCES_THE_DOCUMENT_CANNOT_CHECK
                    or "Idempotency-Key" in (case.headers or {}))
        excluded = [positive_data_acceptance] if semantic else []
        case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {key}"},
                               excluded_checks=excluded)

    try:
        run()
    except Unsatisfiable:  # a route with no input has no invalid request to make
        return None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: BLE001 - schemathesis raises groups; each is shown
        return f"{operation.label} ({mode.value}): {exc}"
    return None


def test_every_route_answers_as_documented(api: Api, contract_org: Org) -> None:
    # Given the server's own OpenAPI document,
    schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    # when every operation gets generated valid and invalid requests,
    failures = [failure for operation in operations
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
                if (failure := _exercise(operation, mode, api.base_url, contract_org.key))]
    # then none answered a 500 or anything its document does not declare.
    assert not failures, "\n\n".join(failures)
