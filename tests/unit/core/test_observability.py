"""Metric labels, JSON log lines and the observability settings, without any server.

The route table must turn every path the Factus client can send into a fixed name (a number or
reference code in a label would make one time series per document); a JSON log line must carry
the job and request it belongs to; the settings must refuse a guessable metrics token.
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest

from einvoice import logs, metrics
from einvoice.errors import ConfigError
from einvoice.factus import v1, v2
from einvoice.services.system_health import BeatHeartbeat
from einvoice.settings import load_settings

NUMBER, REFERENCE = "SETP990000123", "EI-7f3a9c"


def _every_factus_request() -> list[tuple[str, str, str, str]]:
    """(method, path, expected route, expected version) of every path builder of the client."""
    cases = [("POST", v1.TOKEN_PATH, "oauth_token", "none")]
    for wire, version in ((v1, "v1"), (v2, "v2")):
        cases += [
            ("POST", wire.BILLS_VALIDATE_PATH, "bill_validate", version),
            ("GET", wire.BILLS_PATH, "bill_list", version),
            ("GET", wire.bill_show_path(NUMBER), "bill_show", version),
            ("GET", wire.bill_pdf_path(NUMBER), "bill_download_pdf", version),
            ("GET", wire.bill_xml_path(NUMBER), "bill_download_xml", version),
            ("DELETE", wire.bill_delete_path(REFERENCE), "bill_delete", version),
            ("POST", wire.bill_send_email_path(NUMBER), "bill_send_email", version),
            ("POST", wire.CREDIT_NOTES_VALIDATE_PATH, "credit_note_validate", version),
            ("GET", wire.CREDIT_NOTES_PATH, "credit_note_list", version),
            ("GET", wire.credit_note_show_path(NUMBER), "credit_note_show", version),
            ("GET", wire.credit_note_pdf_path(NUMBER), "credit_note_download_pdf", version),
            ("GET", wire.credit_note_xml_path(NUMBER), "credit_note_download_xml", version),
            ("DELETE", wire.credit_note_delete_path(REFERENCE), "credit_note_delete", version),
            ("POST", wire.credit_note_send_email_path(NUMBER), "credit_note_send_email",
             version),
            ("GET", wire.NUMBERING_RANGES_PATH, "numbering_range_list", version),
            ("GET", wire.COMPANY_PATH, "company_show", version),
        ]
    cases += [
        ("GET", v2.bill_attached_xml_path(NUMBER), "bill_download_attached_xml", "v2"),
        ("GET", v2.credit_note_attached_xml_path(NUMBER), "credit_note_download_attached_xml",
         "v2"),
        ("GET", v2.DIAN_NUMBERING_RANGES_PATH, "numbering_range_dian", "v2"),
        ("POST", v2.NUMBERING_RANGES_PATH, "numbering_range_create", "v2"),
        ("GET", v1.MUNICIPALITIES_PATH, "municipality_list", "v1"),
        ("GET", v1.MEASUREMENT_UNITS_PATH, "measurement_unit_list", "v1"),
        ("GET", v1.PRODUCT_TRIBUTES_PATH, "product_tribute_list", "v1"),
    ]
    return cases


@pytest.mark.parametrize(("method", "path", "route", "version"), _every_factus_request(),
                         ids=str)
def test_every_factus_path_the_client_builds_has_a_fixed_route_name(
        method: str, path: str, route: str, version: str) -> None:
    # Given a path the client sends (with a document number or reference code in it),
    # when it is reduced to its labels,
    endpoint, found_version = metrics.factus_route(method, path)
    # then the route is the fixed name, never the number, and the version is the path's.
    assert (endpoint, found_version) == (route, version)
    assert NUMBER not in endpoint
    assert REFERENCE not in endpoint


def test_an_unknown_factus_path_is_other_and_never_its_own_label() -> None:
    assert metrics.factus_route("GET", "/v1/bills/unheard-of/SETP1") == ("other", "v1")
    assert metrics.factus_route("PATCH", "/v2/bills/SETP1") == ("other", "v2")


def test_a_factus_call_counts_one_request_and_one_latency_observation() -> None:
    # Given the counters before
    def sample(name: str, **labels: str) -> float:
        from prometheus_client import REGISTRY

        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = sample("einvoice_factus_requests_total", endpoint="bill_show", version="v2",
                    status="404")
    in_bucket = sample("einvoice_factus_request_duration_seconds_bucket", endpoint="bill_show",
                       version="v2", le="0.25")
    # When a v2 show answered 404 after 0.2 s
    metrics.observe_factus("GET", v2.bill_show_path(NUMBER), 404, 0.2)
    # Then one request with that status, and one observation in the 0.25 s bucket
    assert sample("einvoice_factus_requests_total", endpoint="bill_show", version="v2",
                  status="404") == before + 1
    assert sample("einvoice_factus_request_duration_seconds_bucket", endpoint="bill_show",
                  version="v2", le="0.25") == in_bucket + 1


# --- JSON log lines ------------------------------------------------------------------------------


@pytest.fixture
def json_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing JSON lines into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    logger = logging.getLogger("tests.observability")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logs.use_format(logger, "json")
    yield logger, buffer
    logger.removeHandler(handler)


def _lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_a_json_line_carries_the_job_it_belongs_to_once_known(
        json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = json_log
    # Given a job's block: its id at once, its organization and reference once claimed
    with logs.log_context(job_id="4f1c"):
        logger.info("claiming")
        logs.bind(organization_id=7, reference_code="EI-1")
        logger.warning("factus %s -> %d", "POST /v1/bills/validate", 201,
                       extra={"factus_status": 201})
    logger.info("after the job")
    first, second, after = _lines(buffer)
    # Then each line has time, level, logger and message, and the job's keys as known then
    assert first["job_id"] == "4f1c"
    assert first["organization_id"] is None
    assert second["message"] == "factus POST /v1/bills/validate -> 201"
    assert (second["level"], second["logger"]) == ("WARNING", "tests.observability")
    assert (second["organization_id"], second["reference_code"]) == (7, "EI-1")
    assert second["factus_status"] == 201
    assert str(second["time"]).endswith("+00:00")
    # And a line after the block carries none of it (a pooled thread's next job starts clean)
    assert (after["job_id"], after["organization_id"], after["reference_code"],
            after["request_id"]) == (None, None, None, None)


def test_each_thread_sees_only_its_own_job(
        json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = json_log
    ready = threading.Barrier(2)

    def job(job_id: str) -> None:
        with logs.log_context(job_id=job_id):
            ready.wait(timeout=5)  # both blocks open at once
            logger.info("working on %s", job_id)

    threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert sorted((line["message"], line["job_id"]) for line in _lines(buffer)) == [
        ("working on a", "a"), ("working on b", "b")]


def test_an_exception_is_one_line_with_its_traceback(
        json_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, buffer = json_log
    try:
        raise ValueError("bad row")
    except ValueError:
        logger.exception("job failed")
    [line] = _lines(buffer)
    assert "ValueError: bad row" in str(line["exception"])


def test_text_format_leaves_a_handler_as_it_was() -> None:
    handler = logging.StreamHandler(io.StringIO())
    formatter = logging.Formatter("%(message)s")
    handler.setFormatter(formatter)
    logger = logging.getLogger("tests.observability.text")
    logger.addHandler(handler)
    try:
        logs.use_format(logger, "text")
        assert handler.formatter is formatter
    finally:
        logger.removeHandler(handler)


# --- settings ------------------------------------------------------------------------------------


def test_the_metrics_token_is_off_when_blank_and_refused_when_short() -> None:
    assert load_settings(_env_file=None, einvoice_metrics_token="").einvoice_metrics_token is None
    token = load_settings(_env_file=None, einvoice_metrics_token="a" * 32).einvoice_metrics_token
    assert token is not None
    assert token.get_secret_value() == "a" * 32
    with pytest.raises(ConfigError, match="EINVOICE_METRICS_TOKEN"):
        load_settings(_env_file=None, einvoice_metrics_token="secret")


def test_the_log_format_is_text_or_json() -> None:
    assert load_settings(_env_file=None).einvoice_log_format == "text"
    assert load_settings(_env_file=None, einvoice_log_format="JSON").einvoice_log_format == "json"
    with pytest.raises(ConfigError, match="EINVOICE_LOG_FORMAT"):
        load_settings(_env_file=None, einvoice_log_format="xml")


# --- beat's heartbeat ----------------------------------------------------------------------------


class _Stamps:
    """Our own fake of the one Redis call the beat heartbeat makes."""

    def __init__(self) -> None:
        self.values: list[str] = []

    def set(self, key: str, value: str) -> None:
        self.values.append(value)


def test_beat_stamps_at_most_once_a_second_however_often_it_publishes() -> None:
    # Given beat's heartbeat on a clock we move by hand
    stamps, now = _Stamps(), [100.0]
    beat = BeatHeartbeat(lambda: stamps, min_interval=1.0,
                         clock=lambda: now[0])
    # When beat publishes three tasks within the same second, then one more a second later
    beat(sender="einvoice.dispatch")
    now[0] += 0.3
    beat(sender="einvoice.dispatch_followups")
    now[0] += 0.3
    beat(sender="einvoice.dispatch_webhooks")
    now[0] += 1.0
    beat(sender="einvoice.dispatch")
    # Then two stamps were written
    assert len(stamps.values) == 2
