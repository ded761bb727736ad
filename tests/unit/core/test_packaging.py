"""What the production install carries: pyproject.toml, requirements.lock and the Dockerfile agree.

The production image installs requirements.lock (pinned, with hashes) and then the project with
``--no-deps``; the simulator's dependencies are the ``sandbox`` extra, which only
``einvoice/sandbox/`` imports. ``make lock`` regenerates the lock after pyproject.toml changes.
"""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from einvoice.devservices import project_root

ROOT = project_root()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
LOCK = ROOT / "requirements.lock"
DOCKERFILE = ROOT / "Dockerfile"

#: Import names of the simulator-only distributions.
SANDBOX_IMPORTS = {"zxingcpp", "PIL", "python_multipart", "multipart"}


def _requirements(key: str | None = None) -> list[Requirement]:
    project = PYPROJECT["project"]
    raw = project["dependencies"] if key is None else project["optional-dependencies"][key]
    return [Requirement(text) for text in raw]


def _lock_pins() -> dict[str, tuple[str, int]]:
    """requirements.lock as ``{canonical name: (version, number of hashes)}``."""
    pins: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=\S)", LOCK.read_text()):
        match = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", block)
        if match:
            pins[canonicalize_name(match[1])] = (match[2], block.count("--hash=sha256:"))
    return pins


def _top_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_production_dependencies_leave_the_simulator_out() -> None:
    production = {canonicalize_name(r.name) for r in _requirements()}
    sandbox = {canonicalize_name(r.name) for r in _requirements("sandbox")}

    assert {"zxing-cpp", "pillow"} <= sandbox
    # The HTTP API's web stack is production's
    assert {"fastapi", "uvicorn", "httptools", "standardwebhooks"} <= production
    assert production & sandbox == set()
    # And the development install (make test, make demo) still has the simulator
    dev = [r for r in _requirements("dev") if canonicalize_name(r.name) == "einvoice"]
    assert dev
    assert {"sandbox", "embedded"} <= dev[0].extras


def test_only_the_simulator_imports_the_simulator_dependencies() -> None:
    # Given every product module outside einvoice/sandbox/
    sources = [*(ROOT / "einvoice").rglob("*.py"), *(ROOT / "workers").rglob("*.py"),
               *(ROOT / "migrations").rglob("*.py"), ROOT / "celeryconfig.py"]
    outside = [p for p in sources if (ROOT / "einvoice" / "sandbox") not in p.parents]

    # Then none imports a sandbox-extra package (the production image does not have them)
    offenders = {str(p.relative_to(ROOT)): sorted(_top_level_imports(p) & SANDBOX_IMPORTS)
                 for p in outside if _top_level_imports(p) & SANDBOX_IMPORTS}
    assert offenders == {}


def test_the_lock_pins_every_production_dependency_with_hashes() -> None:
    pins = _lock_pins()

    # Every dependency of pyproject.toml is pinned to a version its specifier allows
    for requirement in _requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} missing from requirements.lock: run `make lock`"
        assert requirement.specifier.contains(pins[name][0], prereleases=True), (
            f"{name}=={pins[name][0]} does not satisfy {requirement}: run `make lock`")
    # And every pin carries hashes (pip --require-hashes refuses the file otherwise)
    assert all(count >= 1 for _version, count in pins.values())
    # And the build backend is pinned too (the Dockerfile builds with --no-build-isolation)
    assert {"setuptools", "wheel"} <= set(pins)
    # And no simulator package crept in
    sandbox = {canonicalize_name(r.name) for r in _requirements("sandbox")}
    assert set(pins) & sandbox == set()


def test_the_dockerfile_installs_the_lock_then_the_project_without_resolving_more() -> None:
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]

    lock_install = lines.index("RUN pip install --require-hashes -r requirements.lock")
    project_install = lines.index("RUN pip install --no-deps --no-build-isolation .")
    assert lines.index("COPY requirements.lock ./") < lock_install < project_install
    # The dependency layer comes before the source, so a code change does not reinstall it
    assert lock_install < lines.index("COPY einvoice ./einvoice")
    assert "RUN pip check" in lines


def test_the_package_ships_its_type_marker() -> None:
    assert (ROOT / "einvoice" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["einvoice"]


def test_every_pre_commit_hook_runs_from_the_local_virtualenv() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]

    assert [repo["repo"] for repo in config["repos"]] == ["local"]  # nothing downloaded
    assert "ruff" in {hook["id"] for hook in hooks}
    for hook in hooks:
        assert hook["language"] == "system", hook
        assert hook["entry"].startswith(".venv/bin/"), hook
