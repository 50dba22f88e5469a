"""No credential in a URL is ever printed: userinfo or query, in every output."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from nexus.cli.main import main
from nexus.core.masking import mask_url, mask_urls_in
from tests.support.cluster import ROOT
from tests.support.redis_server import free_port

SECRET = "s3cret-Value"
FORMS = [
    f"redis://:{SECRET}@127.0.0.1:{{port}}/0",
    f"redis://nexus:{SECRET}@127.0.0.1:{{port}}/0",
    f"redis://127.0.0.1:{{port}}/0?password={SECRET}",
    f"rediss://127.0.0.1:{{port}}/0?username=nexus&password={SECRET}&ssl_cert_reqs=none",
]
ANY_URL = [*FORMS, f"https://api.example.test/v1?token={SECRET}",
           f"https://user:{SECRET}@api.example.test/v1?api_key={SECRET}"]


@pytest.mark.parametrize("form", ANY_URL)
def test_mask_url_hides_every_form(form: str) -> None:
    url = form.format(port=6379)
    masked = mask_url(url)
    assert SECRET not in masked
    assert "***" in masked
    assert SECRET not in mask_urls_in(f"cannot connect to {url}: refused")


def test_a_url_without_credentials_is_left_as_it_is() -> None:
    url = "redis://127.0.0.1:6379/0?socket_timeout=1"
    assert mask_url(url) == url


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "nexus.toml"
    path.write_text(f'[redis]\nurl = "{url}"\ntimeout_seconds = 0.2\n')
    return path


@pytest.mark.parametrize("form", FORMS)
def test_check_text_and_json_never_print_the_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str) -> None:
    path = write_config(tmp_path, form.format(port=6379))
    for extra in ([], ["--json"]):
        assert main(["check", str(path), *extra]) == 0
        captured = capsys.readouterr()
        assert SECRET not in captured.out + captured.err
        assert "127.0.0.1" in captured.out


@pytest.mark.parametrize("form", FORMS)
def test_cli_errors_never_print_the_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], form: str) -> None:
    path = write_config(tmp_path, form.format(port=free_port()))  # nothing listens there
    assert main(["budget", "--config", str(path)]) == 1
    captured = capsys.readouterr()
    assert "cannot read Redis" in captured.err
    assert SECRET not in captured.out + captured.err


def test_a_config_error_about_the_url_never_prints_the_secret(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_config(tmp_path, f"http://127.0.0.1:6379/0?password={SECRET}")
    assert main(["check", str(path)]) == 2
    captured = capsys.readouterr()
    assert "redis.url" in captured.err
    assert SECRET not in captured.out + captured.err


@pytest.mark.parametrize("form", [FORMS[0], FORMS[2]])
def test_the_start_up_log_never_prints_the_secret(tmp_path: Path, form: str) -> None:
    path = write_config(tmp_path, form.format(port=free_port()))
    process = subprocess.Popen([sys.executable, "-m", "nexus", "serve", "--config", str(path)],
                               cwd=ROOT,
                               env={"PATH": "/usr/bin:/bin", "NEXUS_PORT": str(free_port())},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:  # read up to the listening line: it names the store
        lines.append(line)
        if "listening on" in line:
            break
    process.terminate()
    rest, _ = process.communicate(timeout=30)
    log = "".join(lines) + rest
    assert "listening on" in log
    assert SECRET not in log
    assert logging.getLevelName(logging.INFO) in log
