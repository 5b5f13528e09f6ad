"""The fly.io deployment: fly.toml, the Dockerfile (its commands really run), .dockerignore, hadolint."""

from __future__ import annotations

import fnmatch
import gzip
import json
import os
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.urls import resolve

from barter_site.health import healthz
from tests.ops.deploy_helpers import (
    ALLOWED_HOST,
    PRIVATE_HOST,
    PRODUCTION_SETTINGS,
    REPO,
    free_port,
    http_get,
    production_env,
    running_gunicorn,
)

HADOLINT = Path(sys.executable).parent / "hadolint"


def fly_config() -> dict[str, Any]:
    with (REPO / "fly.toml").open("rb") as file:
        return tomllib.load(file)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order: continuation lines joined, comments and parser directives dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):  # a comment inside a continued instruction
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"{path} ends inside a continued instruction"
    return instructions


def dockerignore_patterns() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]


def ignored_by_docker(relative: str, patterns: list[str]) -> bool:
    """Whether .dockerignore leaves ``relative`` (a path from the repository root, "/"-separated) out.

    Enough of Docker's rules for our file: a pattern is anchored at the root, ``**/`` matches any number of
    directories (none included), and a left-out directory takes its contents with it.
    """
    parts = relative.split("/")
    prefixes = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    for pattern in patterns:
        assert not pattern.startswith("!"), "exceptions (!) are not supported by this test's matcher"
        for prefix in prefixes:
            if fnmatch.fnmatchcase(prefix, pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(prefix.rsplit("/", 1)[-1], pattern[3:]):
                return True
    return False


def copy_build_context(destination: Path) -> None:
    """Copy the repository as ``COPY . .`` would see it: without what .dockerignore leaves out."""
    patterns = dockerignore_patterns()

    def ignore(directory: str, names: list[str]) -> set[str]:
        relative_dir = Path(directory).relative_to(REPO).as_posix()
        prefix = "" if relative_dir == "." else relative_dir + "/"
        return {name for name in names if ignored_by_docker(prefix + name, patterns)}

    shutil.copytree(REPO, destination, ignore=ignore, symlinks=True)


# fly.toml


def test_fly_toml_names_the_three_processes_and_serves_web_on_the_checked_port() -> None:
    config = fly_config()

    assert set(config["processes"]) == {"web", "worker", "beat"}
    web = shlex.split(config["processes"]["web"])
    assert web[:2] == ["gunicorn", "barter_site.wsgi"]
    assert web[web.index("--bind") + 1] == f"0.0.0.0:{config['http_service']['internal_port']}"
    assert shlex.split(config["processes"]["worker"])[:4] == ["celery", "-A", "barter_site", "worker"]
    beat = shlex.split(config["processes"]["beat"])
    assert beat[:4] == ["celery", "-A", "barter_site", "beat"]
    assert beat[beat.index("--schedule") + 1].startswith("/tmp/")  # noqa: S108 - the image's only writable place
    assert config["http_service"]["processes"] == ["web"]
    assert config["env"]["DJANGO_SETTINGS_MODULE"] == PRODUCTION_SETTINGS
    assert config["build"]["dockerfile"] == "Dockerfile"


def test_fly_release_command_runs_the_migrations() -> None:
    release = shlex.split(fly_config()["deploy"]["release_command"])

    assert release[:3] == ["python", "manage.py", "migrate"]
    assert "--noinput" in release


def test_dockerfile_cmd_is_the_web_process_of_fly_toml() -> None:
    cmd = [
        arguments for keyword, arguments in dockerfile_instructions(REPO / "Dockerfile") if keyword == "CMD"
    ]

    assert len(cmd) == 1
    assert json.loads(cmd[0]) == shlex.split(fly_config()["processes"]["web"])


@pytest.mark.django_db
def test_fly_health_check_path_is_served_by_the_app(client: Client) -> None:
    checks = fly_config()["http_service"]["checks"]
    assert len(checks) == 1 and checks[0]["method"] == "GET"
    path = checks[0]["path"]

    match = resolve(path)
    response = client.get(path)

    assert match.url_name == "healthz" and match.func is healthz
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


# .dockerignore


def test_dockerignore_keeps_secrets_environments_and_tests_out_of_the_image(tmp_path: Path) -> None:
    context = tmp_path / "context"
    copy_build_context(context)

    for left_out in [".env", ".venv", ".git", "db.sqlite3", "staticfiles", "tests", "tools"]:
        assert ignored_by_docker(left_out, dockerignore_patterns()), left_out
        assert not (context / left_out).exists(), left_out
    assert not list(context.rglob("__pycache__"))
    for needed in [
        "manage.py",
        "requirements.lock",
        "gunicorn.conf.py",
        "barter_site/wsgi.py",
        "data",
        "templates",
    ]:
        assert (context / needed).exists(), needed


# hadolint


def run_hadolint(dockerfile: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """hadolint with no configuration of the developer's (HOME and the working directory are empty) and no
    inline ``# hadolint ignore=`` pragmas honoured, reporting every level down to ``info`` as JSON."""
    env = {**os.environ, "HOME": str(workdir), "XDG_CONFIG_HOME": str(workdir)}
    return subprocess.run(  # noqa: S603 - the hadolint of this virtual environment
        [
            str(HADOLINT),
            "--format",
            "json",
            "--failure-threshold",
            "info",
            "--disable-ignore-pragma",
            str(dockerfile),
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_hadolint_finds_nothing_in_the_dockerfile(tmp_path: Path) -> None:
    result = run_hadolint(REPO / "Dockerfile", tmp_path)

    assert json.loads(result.stdout) == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install django\nUSER app\n")

    result = run_hadolint(bad, tmp_path)

    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3007", "DL3013", "DL3042"} <= codes
    assert result.returncode == 1


# The Dockerfile's commands, for real


@pytest.mark.slow
def test_dockerfile_commands_install_the_lock_collect_static_and_serve_healthz_and_static_files(
    tmp_path: Path,
) -> None:
    """RUN and CMD of the Dockerfile, in a clean virtual environment, on a copy of the build context.

    The image's PATH puts its Python first; here the new virtual environment's bin/ comes first, so ``pip``,
    ``python`` and ``gunicorn`` in the Dockerfile's commands are that environment's. The database is SQLite in
    tmp_path, migrated with fly's release command.
    """
    instructions = dockerfile_instructions(REPO / "Dockerfile")
    keywords = [keyword for keyword, _ in instructions]
    assert (
        keywords[0] == "FROM"
        and instructions[0][1].startswith("python:3.11-")
        and "slim" in instructions[0][1]
    )
    assert ("COPY", "requirements.lock ./") in instructions and ("COPY", ". .") in instructions
    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    (install,) = [run for run in runs if "requirements.lock" in run]
    (collectstatic,) = [run for run in runs if "collectstatic" in run]
    (warmup,) = [run for run in runs if "trading.engine.warmup" in run]
    assert {"--require-hashes", "--no-deps"} <= set(shlex.split(install))
    cmd = json.loads(next(arguments for keyword, arguments in instructions if keyword == "CMD"))
    assert cmd[0] == "gunicorn"
    # Root only while building: the processes run as the numeric, non-root user set after the last RUN.
    user_at = keywords.index("USER")
    assert user_at > max(index for index, keyword in enumerate(keywords) if keyword == "RUN")
    assert instructions[user_at][1].split(":")[0] not in {"0", "root"}
    image_env: dict[str, str] = {}
    for arguments in (arguments for keyword, arguments in instructions if keyword == "ENV"):
        image_env.update(dict(pair.split("=", 1) for pair in shlex.split(arguments)))
    assert image_env["DJANGO_SETTINGS_MODULE"] == PRODUCTION_SETTINGS

    app = tmp_path / "app"  # the image's WORKDIR
    copy_build_context(app)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)  # noqa: S603
    database_url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    env = production_env(database_url=database_url, **image_env)
    # The image throws pip's cache away (a smaller layer); a test may use the developer's, as the brief allows.
    env.pop("PIP_NO_CACHE_DIR", None)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env['PATH']}"
    assert image_env["NUMBA_CACHE_DIR"] == "/app/.numba-cache"
    env["NUMBA_CACHE_DIR"] = str(app / ".numba-cache")  # the image's /app is tmp_path/app here

    def run_shell(command: str, timeout: float) -> None:
        result = subprocess.run(  # noqa: S602 - the Dockerfile's own RUN line, run as /bin/sh -c would
            command,
            shell=True,
            cwd=app,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert result.returncode == 0, f"{command}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"

    run_shell(install, timeout=900)
    run_shell("python -m pip check", timeout=120)  # --no-deps: the lock alone must satisfy every requirement
    run_shell(collectstatic, timeout=300)
    # The engine compiled into the cache the app may write (the chown to the app's user needs root; not here).
    assert warmup.split("&&")[1].split()[:2] == ["chown", "-R"]
    run_shell(warmup.split("&&")[0], timeout=300)
    assert list((app / ".numba-cache").rglob("*.nbc")), "the warm-up left no compiled code in the cache"
    run_shell(fly_config()["deploy"]["release_command"], timeout=300)

    manifest = json.loads((app / "staticfiles" / "staticfiles.json").read_text())["paths"]
    hashed_css = manifest["admin/css/base.css"]
    assert hashed_css != "admin/css/base.css"  # CompressedManifestStaticFilesStorage named it by its hash
    port = free_port()
    argv = [*cmd]
    argv[argv.index("--bind") + 1] = f"127.0.0.1:{port}"
    argv[0] = str(venv / "bin" / "gunicorn")
    with running_gunicorn(argv, cwd=app, env=env, port=port, log_path=tmp_path / "gunicorn.log"):
        health = http_get(port, "/healthz", {"Host": PRIVATE_HOST})
        https = {"Host": ALLOWED_HOST, "X-Forwarded-Proto": "https"}
        static = http_get(port, f"/static/{hashed_css}", https)
        static_gzip = http_get(port, f"/static/{hashed_css}", {**https, "Accept-Encoding": "gzip"})
        redirected = http_get(port, "/api/instruments/", {"Host": ALLOWED_HOST})

    assert health.status == 200, health.body
    assert json.loads(health.body) == {"status": "ok", "checks": {"database": "ok"}}
    assert static.status == 200
    assert static.body == (app / "staticfiles" / hashed_css).read_bytes()
    assert "immutable" in static.headers["cache-control"]  # WhiteNoise: hashed names are cached forever
    assert static_gzip.headers.get("content-encoding") == "gzip"
    assert gzip.decompress(static_gzip.body) == static.body
    assert redirected.status == 301 and redirected.headers["location"].startswith(f"https://{ALLOWED_HOST}/")
    log_lines = (tmp_path / "gunicorn.log").read_text().splitlines()
    access = [json.loads(line) for line in log_lines if '"gunicorn.access"' in line]
    assert {entry["path"] for entry in access} >= {"/healthz", f"/static/{hashed_css}"}
