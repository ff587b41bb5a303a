"""Settings: defaults, TOML file, PROVISIOND_* environment, explicit overrides, and their errors."""

from __future__ import annotations

import os
from pathlib import Path

import pydantic
import pytest

from provisiond.config import (
    DEFAULT_DEADLINES,
    DEFAULT_PORT,
    Settings,
    default_data_dir,
    load_settings,
    normalise_db_url,
    parse_listen,
)
from provisiond.errors import ConfigError, ProvisionError


@pytest.fixture(autouse=True)
def _no_stray_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from an empty directory so ./provisiond.toml of the checkout is never picked up."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


def write(tmp_path: Path, text: str, name: str = "provisiond.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(*args, **kwargs) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_settings(*args, **kwargs)
    return info.value


# ----------------------------------------------------------------------------- defaults


def test_defaults_with_no_file_at_all():
    s = load_settings(env={})
    assert s.listen == f"127.0.0.1:{DEFAULT_PORT}"
    assert s.host == "127.0.0.1"
    assert s.port == DEFAULT_PORT == 8750
    assert s.log_level == "info"
    assert s.database_url == ""
    assert s.data_dir == default_data_dir()
    # SQLite under the data dir, through the async driver
    assert s.db_url == f"sqlite+aiosqlite:///{s.data_dir / 'provisiond.db'}"
    assert s.key_file == s.data_dir / "secret.key"
    assert s.engine.lease_seconds == 30.0
    assert s.engine.concurrency == 64
    assert s.engine.deadlines == DEFAULT_DEADLINES
    assert s.api.page_size_default == 100
    assert s.drivers.bmc == {}
    assert s.client.url == ""


def test_default_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    if os.geteuid() == 0:
        assert default_data_dir() == Path("/var/lib/provisiond")
    else:
        assert default_data_dir() == tmp_path / "xdg" / "provisiond"


def test_data_dir_override_moves_database_and_key(tmp_path: Path):
    s = load_settings(env={}, overrides={"data_dir": str(tmp_path / "data")})
    assert s.data_dir == tmp_path / "data"
    assert isinstance(s.data_dir, Path)
    assert s.db_url == f"sqlite+aiosqlite:///{tmp_path / 'data' / 'provisiond.db'}"
    assert s.key_file == tmp_path / "data" / "secret.key"


def test_secret_key_file_overrides_key_location(tmp_path: Path):
    s = load_settings(env={}, overrides={"secret_key_file": str(tmp_path / "k")})
    assert s.key_file == tmp_path / "k"


def test_deadlines_merge_with_defaults(tmp_path: Path):
    path = write(tmp_path, "[engine.deadlines]\nverifying = 10\n")
    s = load_settings(str(path), env={})
    assert s.engine.deadlines["verifying"] == 10
    assert s.engine.deadlines["deploy-wait"] == DEFAULT_DEADLINES["deploy-wait"]
    assert set(s.engine.deadlines) == set(DEFAULT_DEADLINES)


def test_settings_are_frozen():
    s = load_settings(env={})
    with pytest.raises(pydantic.ValidationError):
        s.listen = "0.0.0.0:1"  # type: ignore[misc]


# ----------------------------------------------------------------------------- the file


def test_toml_file_via_config_argument(tmp_path: Path):
    path = write(
        tmp_path,
        """
listen = "0.0.0.0:9000"
log_level = "debug"
database_url = "postgresql://prov:pw@db.example/prov"

[engine]
lease_seconds = 10
concurrency = 8

[api]
page_size_max = 500

[drivers.bmc]
fake = "tests.support.fakebmc:FakeBmc"

[client]
url = "http://10.0.0.1:8750"
""",
    )
    s = load_settings(str(path), env={})
    assert s.listen == "0.0.0.0:9000"
    assert (s.host, s.port) == ("0.0.0.0", 9000)
    assert s.log_level == "debug"
    assert s.db_url == "postgresql+psycopg://prov:pw@db.example/prov"
    assert s.engine.lease_seconds == 10.0
    assert s.engine.concurrency == 8
    assert s.engine.poll_seconds == 2.0  # untouched keys keep their defaults
    assert s.api.page_size_max == 500
    assert s.drivers.bmc == {"fake": "tests.support.fakebmc:FakeBmc"}
    assert s.client.url == "http://10.0.0.1:8750"


def test_empty_toml_file_gives_defaults(tmp_path: Path):
    path = write(tmp_path, "# nothing set\n")
    assert load_settings(str(path), env={}) == load_settings(env={})


def test_missing_explicit_config_file(tmp_path: Path):
    err = config_error(str(tmp_path / "nope.toml"), env={})
    assert str(tmp_path / "nope.toml") in err.message
    assert "does not exist" in err.message
    assert err.extra["key"] == "--config"
    assert isinstance(err, ProvisionError)
    assert err.kind == "config"


def test_config_file_from_provisiond_config(tmp_path: Path):
    path = write(tmp_path, 'listen = "10.1.1.1:1"\n', "via-env.toml")
    s = load_settings(env={"PROVISIOND_CONFIG": str(path)})
    assert s.listen == "10.1.1.1:1"


def test_provisiond_config_pointing_nowhere(tmp_path: Path):
    missing = tmp_path / "gone.toml"
    err = config_error(env={"PROVISIOND_CONFIG": str(missing)})
    assert err.message == f"PROVISIOND_CONFIG={missing}: no such file"
    assert err.extra["key"] == "PROVISIOND_CONFIG"


def test_explicit_config_wins_over_provisiond_config(tmp_path: Path):
    explicit = write(tmp_path, 'listen = "10.0.0.1:1"\n', "explicit.toml")
    from_env = write(tmp_path, 'listen = "10.0.0.2:2"\n', "env.toml")
    s = load_settings(str(explicit), env={"PROVISIOND_CONFIG": str(from_env)})
    assert s.listen == "10.0.0.1:1"


def test_provisiond_toml_in_working_directory_is_found():
    Path("provisiond.toml").write_text('listen = "10.0.0.3:3"\n', encoding="utf-8")
    assert load_settings(env={}).listen == "10.0.0.3:3"


def test_provisiond_config_wins_over_working_directory(tmp_path: Path):
    Path("provisiond.toml").write_text('listen = "10.0.0.3:3"\n', encoding="utf-8")
    from_env = write(tmp_path, 'listen = "10.0.0.4:4"\n', "env.toml")
    assert load_settings(env={"PROVISIOND_CONFIG": str(from_env)}).listen == "10.0.0.4:4"


def test_invalid_toml_reports_the_file(tmp_path: Path):
    path = write(tmp_path, '[engine\nlease_seconds = "x"\n')
    err = config_error(str(path), env={})
    assert err.message.startswith(f"{path}: not valid TOML")
    assert "line 1" in err.message
    assert err.extra["key"] == str(path)


def test_invalid_toml_reports_the_line(tmp_path: Path):
    path = write(tmp_path, 'listen = "127.0.0.1:1"\nlog_level = \n')
    err = config_error(str(path), env={})
    assert str(path) in err.message
    assert "line 2" in err.message


# ----------------------------------------------------------------------------- environment


def test_env_overrides_top_level_keys(tmp_path: Path):
    s = load_settings(
        env={
            "PROVISIOND_LISTEN": "0.0.0.0:8000",
            "PROVISIOND_LOG_LEVEL": "warning",
            "PROVISIOND_DATA_DIR": str(tmp_path / "d"),
            "PROVISIOND_DATABASE_URL": "sqlite:////srv/p.db",
        }
    )
    assert s.listen == "0.0.0.0:8000"
    assert s.log_level == "warning"
    assert s.data_dir == tmp_path / "d"
    assert s.db_url == "sqlite+aiosqlite:////srv/p.db"


def test_nested_env_override_with_double_underscore():
    s = load_settings(env={"PROVISIOND_ENGINE__LEASE_SECONDS": "5"})
    assert s.engine.lease_seconds == 5.0
    assert isinstance(s.engine.lease_seconds, float)
    assert s.engine.concurrency == 64


def test_deeply_nested_env_overrides():
    s = load_settings(
        env={
            "PROVISIOND_ENGINE__DEADLINES__DEPLOY-WAIT": "7200",
            "PROVISIOND_DRIVERS__BMC__FAKE": "tests.support.fakebmc:FakeBmc",
            "PROVISIOND_CLIENT__TOKEN_FILE": "/run/token",
        }
    )
    assert s.engine.deadlines["deploy-wait"] == 7200
    assert s.engine.deadlines["verifying"] == DEFAULT_DEADLINES["verifying"]
    assert s.drivers.bmc == {"fake": "tests.support.fakebmc:FakeBmc"}
    assert s.client.token_file == "/run/token"


@pytest.mark.parametrize(
    "name",
    [
        "PROVISIOND_URL",
        "PROVISIOND_TOKEN",
        "PROVISIOND_TEST_PG_URL",
        "PROVISIOND_TEST_FAKEBMC_DIR",
        "PROVISIOND_BENCH_NODES",
    ],
)
def test_client_and_test_variables_are_not_settings(name: str):
    # None of these is a key of Settings: if they were read, validation would reject them.
    s = load_settings(env={name: "http://elsewhere:1"})
    assert s == load_settings(env={})


def test_provisiond_config_is_not_a_setting(tmp_path: Path):
    path = write(tmp_path, "")
    s = load_settings(env={"PROVISIOND_CONFIG": str(path)})
    assert s == load_settings(env={})


def test_variables_without_the_prefix_are_ignored():
    s = load_settings(
        env={"LISTEN": "x", "PROVISION_LISTEN": "x", "provisiond_listen": "x", "HOME": "/"}
    )
    assert s.listen == f"127.0.0.1:{DEFAULT_PORT}"


def test_env_variable_and_section_of_the_same_name_conflict():
    err = config_error(env={"PROVISIOND_ENGINE": "x", "PROVISIOND_ENGINE__LEASE_SECONDS": "5"})
    assert "PROVISIOND_ENGINE__LEASE_SECONDS" in err.message
    assert "conflicts" in err.message


def test_env_variable_replacing_a_section_is_rejected():
    err = config_error(env={"PROVISIOND_ENGINE__LEASE_SECONDS": "5", "PROVISIOND_ENGINE": "x"})
    assert "engine = 'x'" in err.message
    assert "(from PROVISIOND_ENGINE)" in err.message


# ----------------------------------------------------------------------------- precedence


def test_precedence_file_then_env_then_overrides(tmp_path: Path):
    path = write(
        tmp_path, 'listen = "10.0.0.1:1"\nlog_level = "error"\n[engine]\nconcurrency = 3\n'
    )
    env = {"PROVISIOND_LISTEN": "10.0.0.2:2", "PROVISIOND_ENGINE__CONCURRENCY": "4"}

    only_file = load_settings(str(path), env={})
    assert (only_file.listen, only_file.engine.concurrency) == ("10.0.0.1:1", 3)

    file_env = load_settings(str(path), env=env)
    assert (file_env.listen, file_env.engine.concurrency) == ("10.0.0.2:2", 4)
    assert file_env.log_level == "error"  # not overridden: the file's value stays

    all_three = load_settings(
        str(path), env=env, overrides={"listen": "10.0.0.3:3", "engine": {"concurrency": 5}}
    )
    assert (all_three.listen, all_three.engine.concurrency) == ("10.0.0.3:3", 5)
    assert all_three.log_level == "error"


def test_nested_sections_merge_rather_than_replace(tmp_path: Path):
    path = write(tmp_path, "[engine]\nlease_seconds = 10\nconcurrency = 3\n")
    s = load_settings(
        str(path),
        env={"PROVISIOND_ENGINE__POLL_SECONDS": "0.5"},
        overrides={"engine": {"max_attempts": 9}},
    )
    assert s.engine.lease_seconds == 10
    assert s.engine.concurrency == 3
    assert s.engine.poll_seconds == 0.5
    assert s.engine.max_attempts == 9


@pytest.mark.parametrize("empty", [None, ""])
def test_empty_overrides_are_ignored(tmp_path: Path, empty: str | None):
    # the CLI passes its flags through; an unset flag must not wipe the file's value
    path = write(tmp_path, 'listen = "10.0.0.1:1"\n')
    assert load_settings(str(path), env={}, overrides={"listen": empty}).listen == "10.0.0.1:1"


# ----------------------------------------------------------------------------- bad values


def test_bad_env_value_names_key_value_and_variable():
    err = config_error(env={"PROVISIOND_ENGINE__LEASE_SECONDS": "0.1"})
    assert err.message.startswith("bad configuration:")
    assert "engine.lease_seconds = '0.1'" in err.message
    assert "greater than 0.5" in err.message
    assert "(from PROVISIOND_ENGINE__LEASE_SECONDS)" in err.message


def test_non_numeric_env_value():
    err = config_error(env={"PROVISIOND_ENGINE__CONCURRENCY": "many"})
    assert "engine.concurrency = 'many'" in err.message
    assert "valid integer" in err.message
    assert "(from PROVISIOND_ENGINE__CONCURRENCY)" in err.message


def test_bad_file_value_names_key_value_and_file(tmp_path: Path):
    path = write(tmp_path, '[engine]\nlease_seconds = "fast"\n')
    err = config_error(str(path), env={})
    assert "engine.lease_seconds = 'fast'" in err.message
    assert f"(from {path})" in err.message


def test_bad_file_value_next_to_a_good_env_value_is_blamed_on_the_file(tmp_path: Path):
    path = write(tmp_path, "[engine]\nlease_seconds = 0\n")
    err = config_error(str(path), env={"PROVISIOND_ENGINE__CONCURRENCY": "4"})
    assert "engine.lease_seconds = 0" in err.message
    assert f"(from {path})" in err.message
    assert "PROVISIOND_ENGINE__CONCURRENCY" not in err.message


def test_bad_value_from_overrides_is_blamed_on_flags_not_the_file(tmp_path: Path):
    path = write(tmp_path, 'listen = "10.0.0.1:1"\n')
    err = config_error(str(path), env={}, overrides={"listen": "nope"})
    assert "listen = 'nope'" in err.message
    assert "expected HOST:PORT" in err.message
    assert "(from flags)" in err.message
    assert str(path) not in err.message


def test_bad_value_from_overrides_is_blamed_on_flags_not_the_env():
    err = config_error(env={"PROVISIOND_LISTEN": "10.0.0.1:1"}, overrides={"listen": "nope"})
    assert "(from flags)" in err.message
    assert "PROVISIOND_LISTEN" not in err.message


def test_bad_value_from_env_is_blamed_on_env_not_the_file(tmp_path: Path):
    path = write(tmp_path, 'log_level = "info"\n')
    err = config_error(str(path), env={"PROVISIOND_LOG_LEVEL": "verbose"})
    assert "log_level = 'verbose'" in err.message
    assert "(from PROVISIOND_LOG_LEVEL)" in err.message
    assert str(path) not in err.message


def test_every_problem_is_reported_at_once(tmp_path: Path):
    path = write(tmp_path, 'log_level = "loud"\n[api]\npage_size_max = 0\n')
    err = config_error(str(path), env={"PROVISIOND_ENGINE__MAX_ATTEMPTS": "1000"})
    assert "log_level = 'loud'" in err.message
    assert "api.page_size_max = 0" in err.message
    assert "engine.max_attempts = '1000'" in err.message
    assert "(from PROVISIOND_ENGINE__MAX_ATTEMPTS)" in err.message
    assert err.message.count(f"(from {path})") == 2


def test_listen_must_be_a_string_in_toml(tmp_path: Path):
    path = write(tmp_path, "listen = 8750\n")
    err = config_error(str(path), env={})
    assert "listen = 8750" in err.message
    assert "valid string" in err.message


@pytest.mark.parametrize(
    ("listen", "reason"),
    [
        ("8750", "expected HOST:PORT"),
        (":8750", "expected HOST:PORT"),
        ("localhost", "expected HOST:PORT"),
        ("localhost:", "port must be a number"),
        ("localhost:http", "port must be a number"),
        ("127.0.0.1:65536", "port must be 0-65535"),
        ("127.0.0.1:-1", "port must be 0-65535"),
    ],
)
def test_bad_listen_strings(listen: str, reason: str):
    err = config_error(env={"PROVISIOND_LISTEN": listen})
    assert f"listen = {listen!r}" in err.message
    assert reason in err.message
    assert "(from PROVISIOND_LISTEN)" in err.message
    with pytest.raises(ValueError, match=reason):
        parse_listen(listen)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("127.0.0.1:8750", "127.0.0.1", 8750),
        ("0.0.0.0:0", "0.0.0.0", 0),
        ("localhost:65535", "localhost", 65535),
        ("[::1]:9000", "::1", 9000),
        ("[::]:80", "::", 80),
    ],
)
def test_good_listen_strings(listen: str, host: str, port: int):
    assert parse_listen(listen) == (host, port)
    s = load_settings(env={}, overrides={"listen": listen})
    assert (s.host, s.port) == (host, port)


@pytest.mark.parametrize(
    "section",
    [
        "bogus = 1\n",
        "[engine]\nlease_second = 5\n",  # a typo of lease_seconds
        "[nonsense]\nx = 1\n",
    ],
)
def test_unknown_keys_in_the_file_are_rejected(tmp_path: Path, section: str):
    path = write(tmp_path, section)
    err = config_error(str(path), env={})
    assert "Extra inputs are not permitted" in err.message
    assert f"(from {path})" in err.message


def test_unknown_key_is_named(tmp_path: Path):
    path = write(tmp_path, "[engine]\nlease_second = 5\n")
    err = config_error(str(path), env={})
    assert "engine.lease_second = 5" in err.message


def test_unknown_env_setting_is_rejected():
    err = config_error(env={"PROVISIOND_LISTN": "0.0.0.0:1"})
    assert "listn = '0.0.0.0:1'" in err.message
    assert "Extra inputs are not permitted" in err.message
    assert "(from PROVISIOND_LISTN)" in err.message


def test_unknown_env_section_names_the_variable():
    err = config_error(env={"PROVISIOND_ENIGNE__LEASE_SECONDS": "5"})
    assert "enigne" in err.message
    assert "(from PROVISIOND_ENIGNE__LEASE_SECONDS)" in err.message


def test_unknown_override_key_is_rejected():
    err = config_error(env={}, overrides={"colour": "blue"})
    assert "colour = 'blue'" in err.message
    assert "(from flags)" in err.message


def test_unknown_deadline_state(tmp_path: Path):
    path = write(tmp_path, "[engine.deadlines]\ndeploy_waiting = 10\n")
    err = config_error(str(path), env={})
    assert "engine.deadlines" in err.message
    assert "unknown state(s) deploy-waiting" in err.message
    assert "deploy-wait" in err.message  # the known names are listed
    assert f"(from {path})" in err.message


def test_non_positive_deadline_names_the_variable():
    err = config_error(env={"PROVISIOND_ENGINE__DEADLINES__VERIFYING": "0"})
    assert "engine.deadlines" in err.message
    assert "must be > 0" in err.message
    assert "(from PROVISIOND_ENGINE__DEADLINES__VERIFYING)" in err.message


def test_driver_path_needs_module_and_class(tmp_path: Path):
    path = write(tmp_path, '[drivers.bmc]\nfake = "tests.support.fakebmc.FakeBmc"\n')
    err = config_error(str(path), env={})
    assert "drivers.bmc" in err.message
    assert "expected 'module:Class'" in err.message
    assert "'tests.support.fakebmc.FakeBmc'" in err.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PROVISIOND_API__MAX_BODY_BYTES", "1024"),
        ("PROVISIOND_API__PAGE_SIZE_DEFAULT", "0"),
        ("PROVISIOND_API__PAGE_SIZE_MAX", "10001"),
        ("PROVISIOND_ENGINE__CONCURRENCY", "0"),
        ("PROVISIOND_ENGINE__POLL_SECONDS", "0"),
        ("PROVISIOND_ENGINE__RETRY_BACKOFF_SECONDS", "-1"),
        ("PROVISIOND_ENGINE__BMC_CALL_TIMEOUT", "0"),
        ("PROVISIOND_ENGINE__BMC_CONCURRENCY", "0"),
        ("PROVISIOND_LOG_LEVEL", "INFO"),
    ],
)
def test_out_of_range_values(key: str, value: str):
    err = config_error(env={key: value})
    dotted = key.removeprefix("PROVISIOND_").lower().replace("__", ".")
    assert f"{dotted} = {value!r}" in err.message
    assert f"(from {key})" in err.message


def test_bad_database_url_fails_at_load_time():
    err = config_error(env={"PROVISIOND_DATABASE_URL": "mysql://root@db/prov"})
    assert "database_url = 'mysql://root@db/prov'" in err.message
    assert "unsupported database 'mysql'" in err.message
    assert "(from PROVISIOND_DATABASE_URL)" in err.message


def test_database_url_without_scheme_fails_at_load_time(tmp_path: Path):
    path = write(tmp_path, 'database_url = "/var/lib/provisiond/p.db"\n')
    err = config_error(str(path), env={})
    assert "database_url" in err.message
    assert "not a database URL" in err.message
    assert f"(from {path})" in err.message


# ----------------------------------------------------------------------------- database URLs


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///var/lib/p.db", "sqlite+aiosqlite:///var/lib/p.db"),
        ("sqlite:////abs/p.db", "sqlite+aiosqlite:////abs/p.db"),
        ("sqlite+pysqlite:///p.db", "sqlite+aiosqlite:///p.db"),
        ("sqlite+aiosqlite:///p.db", "sqlite+aiosqlite:///p.db"),
        ("postgresql://u:pw@h:5432/db", "postgresql+psycopg://u:pw@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ],
)
def test_normalise_db_url(url: str, expected: str):
    assert normalise_db_url(url) == expected
    assert normalise_db_url(expected) == expected  # idempotent
    assert load_settings(env={}, overrides={"database_url": url}).db_url == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://u@h/db", "unsupported database 'mysql'"),
        ("oracle+cx://u@h/db", "unsupported database 'oracle'"),
        ("/var/lib/p.db", "not a database URL"),
        ("sqlite:", "not a database URL"),
    ],
)
def test_normalise_db_url_rejects(url: str, reason: str):
    with pytest.raises(ValueError, match=reason):
        normalise_db_url(url)


def test_settings_model_can_be_built_directly():
    # Settings is the same model load_settings validates against; listen is checked there too.
    with pytest.raises(pydantic.ValidationError):
        Settings(listen="nope")
    assert Settings(listen="[::1]:1").host == "::1"


def test_deadline_state_may_be_written_with_underscores_for_the_environment():
    s = load_settings(env={"PROVISIOND_ENGINE__DEADLINES__DEPLOY_WAIT": "7"})
    assert s.engine.deadlines["deploy-wait"] == 7
