"""Flower with our configuration shows our tasks, behind basic auth.

A real worker processes three real jobs against the simulator while a real
``celery -A workers flower`` (the flags of docker-compose.yml, credentials from
``FLOWER_BASIC_AUTH``) watches the task events. The browser check runs only where chromium is
installed (``apt-get install chromium``).
"""

from __future__ import annotations

import os
import struct
from typing import TYPE_CHECKING

import httpx
import pytest
import yaml

from einvoice.devservices import DevServices, project_root
from scripts.flower_screenshot import (
    TASK_SUBMIT,
    WINDOW_SIZE,
    FlowerServer,
    find_chromium,
    render_dom,
    screenshot,
    submit_task_job_ids,
    wait_for_job_tasks,
)

if TYPE_CHECKING:
    from tests.integration.deploy.conftest import FlowerScene

pytestmark = pytest.mark.slow


def test_flower_refuses_pages_and_api_without_the_basic_auth_credentials(
    flower_scene: FlowerScene,
) -> None:
    # Given Flower started with FLOWER_BASIC_AUTH
    base = flower_scene.flower.base_url
    user, _password = flower_scene.flower.credentials

    # When a client asks for the task API or the tasks page without, or with wrong, credentials
    anonymous_api = httpx.get(f"{base}/api/tasks", timeout=5)
    wrong_api = httpx.get(f"{base}/api/tasks", auth=(user, "not-the-password"), timeout=5)
    anonymous_page = httpx.get(f"{base}/tasks", timeout=5)

    # Then every one is refused with 401
    assert anonymous_api.status_code == 401
    assert wrong_api.status_code == 401
    assert anonymous_page.status_code == 401
    # And the health probe docker-compose.yml uses still answers without credentials
    assert httpx.get(f"{base}/healthcheck", timeout=5).text == "OK"


def test_flower_lists_a_submit_task_per_job_whose_only_argument_is_the_job_id(
    flower_scene: FlowerScene,
) -> None:
    # Given three jobs a real worker has processed
    assert set(flower_scene.job_statuses.values()) == {"accepted"}

    # When the operator lists Flower's tasks with the credentials
    wait_for_job_tasks(flower_scene.flower, flower_scene.job_ids)
    answer = httpx.get(
        f"{flower_scene.flower.base_url}/api/tasks", auth=flower_scene.flower.auth, timeout=5
    )

    # Then Flower shows an einvoice.submit_invoice run by our worker per job, none failed
    # (accepted jobs also start einvoice.run_followup archive tasks, whose only argument is the
    # follow-up's id)
    assert answer.status_code == 200
    every = list(answer.json().values())
    assert {task["name"] for task in every} <= {TASK_SUBMIT, "einvoice.run_followup"}
    assert all(task["name"].startswith("einvoice.") for task in every)
    tasks = [task for task in every if task["name"] == TASK_SUBMIT]
    assert tasks
    assert not {task["state"] for task in every} & {"FAILURE", "RETRY", "REVOKED"}
    assert all(task["worker"].startswith("worker") for task in tasks)
    # And each one's arguments are exactly one job id, no keyword arguments, nothing else
    arguments = [submit_task_job_ids(task) for task in tasks]
    assert all(len(args) == 1 for args in arguments)
    assert {args[0] for args in arguments} == set(flower_scene.job_ids)


def test_flowers_tasks_page_shows_our_task_names_and_job_ids_in_a_browser(
    flower_scene: FlowerScene,
) -> None:
    chromium = find_chromium()
    if chromium is None:
        pytest.skip(
            "chromium is not installed (apt-get install -y chromium): browser check skipped"
        )
    wait_for_job_tasks(flower_scene.flower, flower_scene.job_ids)

    # When headless chromium opens the tasks page with the credentials in the URL
    dom = render_dom(flower_scene.flower, chromium, "/tasks")
    png = screenshot(flower_scene.flower, chromium, flower_scene.workdir / "flower-tasks.png")

    # Then the rendered table shows our task name and every job id (the args column)
    assert TASK_SUBMIT in dom
    for job_id in flower_scene.job_ids:
        assert job_id in dom
    # And the screenshot is a PNG of the requested window size
    header = png.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == WINDOW_SIZE


def test_flowers_metrics_answer_without_credentials_and_show_no_job_ids(
    flower_scene: FlowerScene,
) -> None:
    # Given Flower behind basic auth, after the worker ran one task per job
    wait_for_job_tasks(flower_scene.flower, flower_scene.job_ids)

    # When anyone who reaches the port asks for /metrics without credentials
    answer = httpx.get(f"{flower_scene.flower.base_url}/metrics", timeout=5)

    # Then Flower answers (it exempts /metrics from authentication, as its docs say; the compose
    # file publishes the port on the host's loopback only and documents this)
    assert answer.status_code == 200
    assert f'task="{TASK_SUBMIT}"' in answer.text
    # And what it shows is counts and timings by task and worker name: no job id, no argument
    for job_id in flower_scene.job_ids:
        assert job_id not in answer.text


def test_flower_with_only_the_compose_environment_sees_the_worker(
    flower_scene: FlowerScene, services: DevServices
) -> None:
    # Given exactly the variables docker-compose.yml gives Flower (no DATABASE_URL, no Factus
    # secrets, no EINVOICE_SECRET_KEY), plus what any process has
    compose = yaml.safe_load((project_root() / "docker-compose.yml").read_text())
    given = set(compose["services"]["flower"]["environment"])
    assert given == {"CELERY_BROKER_URL", "FLOWER_BASIC_AUTH"}
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    env.update(CELERY_BROKER_URL=services.redis.url, PYTHONUNBUFFERED="1")
    # (FlowerServer adds FLOWER_BASIC_AUTH from its credentials)
    flower = FlowerServer(env=env, workdir=flower_scene.workdir / "compose-env")

    try:
        # When that Flower starts
        flower.start()

        # Then it receives the worker's events and, with its credentials, shows the worker online
        flower.wait_for_worker()
        status = f"{flower.base_url}/api/workers?status=true"
        workers = httpx.get(status, auth=flower.auth, timeout=15)
        assert workers.status_code == 200
        online = [name for name, alive in workers.json().items() if alive]
        assert any(name.startswith("worker") for name in online), workers.text[:500]
        # And it refuses the same request without them
        assert httpx.get(status, timeout=5).status_code == 401
    finally:
        flower.stop()
