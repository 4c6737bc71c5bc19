"""The dev broker's error paths: each is one line that says what to do (no broker needed)."""

from __future__ import annotations

import shutil
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagas.dev import jars
from sagas.dev.broker import DevKafka, free_port
from sagas.dev.cluster import load_settings
from sagas.errors import ConfigurationError, FetchError, PortInUseError, ToolMissingError
from sagas.ops.cli import main
from sagas.settings import DevKafkaSettings

# What Maven 3.8.7 printed (first lines) for a version Maven Central does not have, and
# for a repository it could not reach.
MAVEN_NOT_FOUND = (
    "\x1b[1;31m[ERROR]\x1b[m Failed to execute goal on project kafka-broker: Could not resolve "
    "dependencies for project local.sagas.dev:kafka-broker:pom:9.9.9: Could not find artifact "
    "org.apache.kafka:kafka_2.13:jar:9.9.9 in central (https://repo.maven.apache.org/maven2)"
    " -> [Help 1]\n[ERROR] \n[ERROR] To see the full stack trace of the errors, re-run Maven "
    "with the -e switch.\n"
)
MAVEN_UNREACHABLE = (
    "[ERROR] Plugin org.apache.maven.plugins:maven-dependency-plugin:3.8.1 or one of its "
    "dependencies could not be resolved: Could not transfer artifact org.apache.maven.plugins:"
    "maven-dependency-plugin:pom:3.8.1 from/to central (https://repo.maven.apache.org/maven2): "
    "Connect to repo.maven.apache.org:443 failed: Connection refused -> [Help 1]\n[ERROR] \n"
)


def _bin_dir(tmp_path: Path, **programs: str) -> Path:
    """A folder of fake executables (name -> shell script body) to use as PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    for name, body in programs.items():
        exe = folder / name
        exe.write_text(f"#!/bin/sh\n{body}\n")
        exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return folder


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_fetch_without_mvn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(_bin_dir(tmp_path)))
    with pytest.raises(ToolMissingError, match="mvn not found: install Apache Maven"):
        jars.fetch(tmp_path / "home", "4.4.0", quiet=True)


def test_start_without_java(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(_bin_dir(tmp_path)))
    broker = DevKafka(tmp_path / "home", "4.4.0", port=free_port())
    with pytest.raises(ToolMissingError, match="java not found: install a Java 17"):
        broker.start(quiet=True)


def test_client_port_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listening_port: int
) -> None:
    monkeypatch.setenv("PATH", str(_bin_dir(tmp_path, java="exit 1")))
    broker = DevKafka(tmp_path / "home", "4.4.0", port=listening_port, controller_port=free_port())
    with pytest.raises(PortInUseError, match=f"port {listening_port} .* SAGAS_DEV_KAFKA_PORT$"):
        broker.start(quiet=True)
    assert not broker.instance_dir.exists()  # nothing fetched, written or started


def test_controller_port_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, listening_port: int
) -> None:
    monkeypatch.setenv("PATH", str(_bin_dir(tmp_path, java="exit 1")))
    broker = DevKafka(tmp_path / "home", "4.4.0", port=free_port(), controller_port=listening_port)
    with pytest.raises(PortInUseError, match="SAGAS_DEV_KAFKA_CONTROLLER_PORT"):
        broker.start(quiet=True)


def test_unknown_version_is_one_line_fetch_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "maven.out").write_text(MAVEN_NOT_FOUND)
    mvn = f"{shutil.which('cat')} {tmp_path / 'maven.out'}; exit 1"  # PATH is ours below
    monkeypatch.setenv("PATH", str(_bin_dir(tmp_path, mvn=mvn)))
    with pytest.raises(FetchError) as caught:
        jars.fetch(tmp_path / "home", "9.9.9", quiet=True)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("Apache Kafka 9.9.9 is not on Maven Central")
    assert "set SAGAS_DEV_KAFKA_VERSION" in message
    assert not (jars.jars_dir(tmp_path / "home", "9.9.9") / ".complete").exists()


def test_unreachable_repository_names_the_cause() -> None:
    message = str(jars.fetch_error("4.4.0", MAVEN_UNREACHABLE))
    assert "\n" not in message
    assert "Connection refused" in message
    assert "[Help 1]" not in message
    assert "~/.m2/settings.xml" in message


def test_bad_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGAS_DEV_KAFKA_PORT", "abc")
    with pytest.raises(ConfigurationError, match="SAGAS_DEV_KAFKA_PORT='abc': Input should"):
        load_settings(DevKafkaSettings)


def test_cli_prints_one_line_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("SAGAS_DEV_KAFKA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SAGAS_DEV_KAFKA_PORT", str(free_port()))
    monkeypatch.setenv("PATH", str(_bin_dir(tmp_path)))
    assert main(["dev", "kafka", "start"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: java not found")


def test_the_bad_setting_line_of_the_troubleshooting_table_is_what_sagas_prints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    from sagas.errors import ConfigurationError as Refused
    from sagas.settings import DevKafkaSettings

    doc = (Path(__file__).resolve().parents[2] / "docs" / "development.md").read_text()
    row = next(line for line in doc.splitlines() if line.startswith("| a bad setting |"))
    printed = row.split("`")[1]
    variable, _, value = printed.removeprefix("error: invalid setting ").partition("=")
    monkeypatch.setenv(variable, value.split("'")[1])
    with pytest.raises(Refused) as caught:
        load_settings(DevKafkaSettings)
    assert f"error: {caught.value}" == printed
    monkeypatch.setenv(variable, "120")  # plain seconds are accepted
    assert load_settings(DevKafkaSettings).start_timeout == timedelta(seconds=120)


def test_a_bad_engine_setting_is_one_line_from_any_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # `sagas list` builds EngineSettings straight from the environment (not through
    # load_settings): the command line still prints the one line naming the variable.
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("SAGAS_MAX_IN_FLIGHT", "3")
    assert main(["list", "--app", "services.app:app"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "error: invalid setting SAGAS_MAX_IN_FLIGHT='3': Input should be less than or equal "
        "to 2 (see docs/configuration.md)\n"
    )


def test_a_bad_service_setting_is_one_line_naming_the_variable_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The services read SAGAS_PARTITIONS (the engine's variable, not SERVICE_...): the
    # line names the variable as the user sets it, and the page that documents it.
    monkeypatch.setenv("SAGAS_PARTITIONS", "0")
    monkeypatch.setenv("SERVICE_WEB_PORT", "70000")
    with pytest.raises(SystemExit) as caught:
        main(["serve", "inventory", "--app", "services.app:app"])
    assert caught.value.code == (
        "error: invalid setting SERVICE_WEB_PORT='70000': Input should be less than or equal "
        "to 65535; SAGAS_PARTITIONS='0': Input should be greater than or equal to 1 "
        "(see docs/services.md)"
    )
