"""Configuration: defaults, env overrides, and errors that name the file and key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from nexus.cli.main import main
from nexus.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "nexus.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    return info.value


def test_no_file_means_one_local_ollama_and_no_redis() -> None:
    config = load_config(None, env={})
    assert config.redis is None
    assert [(b.type, b.url) for b in config.backends] == [("ollama", "http://127.0.0.1:11434")]
    assert config.server.port == 8000


def test_full_example_is_valid_and_keeps_every_documented_key() -> None:
    example = Path(__file__).parents[2] / "nexus" / "config" / "example.toml"
    config = load_config(example, env={})
    assert config.routing.policies[0].model_pattern == "llama*"
    assert config.backends[1].pricing["gpt-4o"].output == 10.0
    assert config.routing.budget is not None
    assert config.routing.budget.hard_limit_action == "block_cloud"


def test_unknown_key_names_file_and_path(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[server]\nprot = 1\n")
    assert error.source.endswith("nexus.toml")
    assert error.key == "server.prot"
    assert "unknown key" in error.message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[server]\nport = "eighty"\n')
    assert error.key == "server.port"
    assert "Expected int" in error.message


def test_error_inside_a_backend_names_its_index(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[backends]]\nname="a"\nurl="http://x"\ntier=9\n')
    assert error.key == "backends[0].tier"


@pytest.mark.parametrize("value", ["0", "-24", '"24GB"'])
def test_a_backends_vram_must_be_a_positive_number_of_gb(tmp_path: Path, value: str) -> None:
    error = error_of(tmp_path, f'[[backends]]\nname="a"\nurl="http://x"\nvram_gb={value}\n')
    assert error.key == "backends[0].vram_gb"
    assert str(tmp_path) in str(error)


def test_bad_url_is_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[backends]]\nname="a"\nurl="ftp://x"\n')
    assert error.key == "backends[0].url"
    assert "http://" in error.message


def test_duplicate_backend_names(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[backends]]\nname="a"\nurl="http://x"\n'
                               '[[backends]]\nname="a"\nurl="http://y"\n')
    assert error.key == "backends[1].name"


def test_cloud_backend_needs_api_key_env(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[[backends]]\nname="o"\nurl="https://api.openai.com"\n'
                               'type="openai"\n')
    assert error.key == "backends[0].api_key_env"


def test_alias_cycle_is_an_error(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[routing.aliases]\na = "b"\nb = "a"\n')
    assert error.key.startswith("routing.aliases.")
    assert "cycle" in error.message


def test_alias_chain_of_three_names_is_fine_four_is_not(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[routing.aliases]\na = "b"\nb = "c"\n'), env={})
    assert config.routing.aliases == {"a": "b", "b": "c"}
    error = error_of(tmp_path, '[routing.aliases]\na = "b"\nb = "c"\nc = "d"\n')
    assert error.key == "routing.aliases.a"
    assert "a -> b -> c -> d" in error.message


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    error = error_of(tmp_path, "[server\n")
    assert "invalid TOML" in error.message


def test_bad_redis_url(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[redis]\nurl = "http://nope"\n')
    assert error.key == "redis.url"


def test_env_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 9000\n")
    env = {"NEXUS_CONFIG": str(path), "NEXUS_HOST": "0.0.0.0", "NEXUS_PORT": "9100",
           "NEXUS_REDIS_URL": "redis://127.0.0.1:6390/1"}
    config = load_config(None, env=env)
    assert (config.server.host, config.server.port) == ("0.0.0.0", 9100)
    assert config.redis is not None
    assert config.redis.url == "redis://127.0.0.1:6390/1"


def test_bad_env_port_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, env={"NEXUS_PORT": "http"})
    assert info.value.key == "NEXUS_PORT"


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nexus", *args], capture_output=True, text=True,
                          timeout=60, env=env, check=False)


def test_check_cli_exits_2_and_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "[routing]\nstrategy = \"fastest\"\n")
    result = run_cli("check", str(path))
    assert result.returncode == 2
    assert str(path) in result.stderr
    assert "routing.strategy" in result.stderr


def test_config_init_writes_a_file_that_check_accepts(tmp_path: Path) -> None:
    target = tmp_path / "example.toml"
    assert run_cli("config", "init", "-o", str(target)).returncode == 0
    result = run_cli("check", str(target))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout
    assert run_cli("config", "init", "-o", str(target)).returncode == 2  # no silent overwrite


def test_serve_refuses_a_broken_config(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 0\n")
    result = run_cli("serve", "--config", str(path))
    assert result.returncode == 2
    assert "server.port" in result.stderr


def test_check_never_prints_a_redis_password(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, '[redis]\nurl = "redis://:s3cret@10.0.0.5:6379/0"\n')
    for extra in ([], ["--json"]):
        assert main(["check", str(path), *extra]) == 0
        out = capsys.readouterr().out
        assert "s3cret" not in out
        assert "10.0.0.5" in out


def test_redis_modes_say_what_they_miss(tmp_path: Path) -> None:
    error = error_of(tmp_path, '[redis]\nmode = "sentinel"\nmaster_name = "m"\n')
    assert (error.key, "sentinels") == ("redis.sentinels", "sentinels")
    error = error_of(tmp_path, '[redis]\nmode = "sentinel"\nsentinels = ["h:26379"]\n')
    assert error.key == "redis.master_name"
    error = error_of(tmp_path, '[redis]\nmode = "cluster"\nnodes = ["nohost"]\n')
    assert error.key == "redis.nodes"
    error = error_of(tmp_path, '[redis]\nmode = "cluster"\nwait_replicas = 1\n')
    assert error.key == "redis.wait_replicas"
    error = error_of(tmp_path, '[redis]\nwait_replicas = 1\nwait_timeout_ms = 1000\n')
    assert error.key == "redis.wait_timeout_ms"
    error = error_of(tmp_path, '[redis]\nmode = "replicated"\n')
    assert "standalone" in str(error)  # the valid values are listed
    config = load_config(write(tmp_path, '[redis]\nmode = "sentinel"\nmaster_name = "m"\n'
                                         'sentinels = ["10.0.0.1:26379", "10.0.0.2:26379"]\n'
                                         'wait_replicas = 1\n'), env={})
    assert config.redis is not None
    assert config.redis.wait_replicas == 1


def test_a_redis_password_comes_from_the_environment_only() -> None:
    from nexus.config.schema import RedisConfig
    from nexus.store.connect import redis_client

    with pytest.raises(ConfigError) as info:
        redis_client(RedisConfig(password_env="REDIS_PASSWORD"), environ={})
    assert info.value.key == "REDIS_PASSWORD"
    client = redis_client(RedisConfig(password_env="REDIS_PASSWORD", username="nexus"),
                          environ={"REDIS_PASSWORD": "s3cret"})
    assert client.connection_pool.connection_kwargs["password"] == "s3cret"


def test_check_reports_every_problem_in_one_run_file_and_environment_apart(
        tmp_path: Path) -> None:
    path = write(tmp_path, '[server]\napi_keys_env = "NO_SUCH_VARIABLE_SET"\n'
                 'admin_key_env = "NOR_THIS_ONE"\n'
                 '[routing.aliases]\na = "b"\nb = "a"\n'
                 '[[backends]]\nname = "x"\nurl = "ftp://nowhere"\n'
                 '[[backends]]\nname = "x"\nurl = "http://127.0.0.1:1"\n')
    result = run_cli("check", str(path))
    assert result.returncode == 2
    out = result.stderr
    file_part, _, env_part = out.partition("missing in this environment:")
    for key in ("backends[0].url", "backends[1].name", "routing.aliases.a"):
        assert key in file_part
    for variable in ("NO_SUCH_VARIABLE_SET", "NOR_THIS_ONE"):
        assert variable in env_part
    as_json = json.loads(run_cli("check", "--json", str(path)).stdout)
    kinds = {(e["kind"], e["key"]) for e in as_json["errors"]}
    assert ("environment", "NO_SUCH_VARIABLE_SET") in kinds
    assert ("file", "backends[1].name") in kinds
    assert as_json["valid"] is False


def test_what_config_init_writes_serve_starts_with_as_it_is(tmp_path: Path) -> None:
    from nexus.config.validate import environment_problems
    target = tmp_path / "nexus.toml"
    assert run_cli("config", "init", "-o", str(target)).returncode == 0
    assert environment_problems(load_config(target, env={}), {}) == []
