"""Fetch the Apache Kafka broker jars from Maven Central with the machine's Maven.

The broker is one artifact, ``org.apache.kafka:kafka_2.13``; the rest is transitive
except the logging binding, which we add ourselves (it differs between 3.x and 4.x).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from sagas.errors import FetchError, ToolMissingError
from sagas.settings import DEFAULT_KAFKA_VERSION

DEPENDENCY_PLUGIN_VERSION = "3.8.1"
_COMPLETE_MARKER = ".complete"


def is_kafka_4(version: str) -> bool:
    """Whether ``version`` is a 4.x (or later) release, which logs with log4j2."""
    return int(version.split(".", 1)[0]) >= 4


def _logging_binding(version: str) -> list[tuple[str, str, str]]:
    if is_kafka_4(version):
        # 4.x logs through slf4j 1.7 into log4j2: the slf4j (not slf4j2) binding.
        return [("org.apache.logging.log4j", "log4j-slf4j-impl", "2.25.3")]
    return [
        ("org.slf4j", "slf4j-reload4j", "1.7.36"),
        ("ch.qos.reload4j", "reload4j", "1.2.25"),
    ]


def render_pom(version: str) -> str:
    """A `pom`-packaged project whose runtime dependencies are the broker's jars."""
    deps = [("org.apache.kafka", "kafka_2.13", version), *_logging_binding(version)]
    dep_xml = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return f"""<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.sagas.dev</groupId>
  <artifactId>kafka-broker</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
{dep_xml}
  </dependencies>
  <build><plugins><plugin>
    <groupId>org.apache.maven.plugins</groupId>
    <artifactId>maven-dependency-plugin</artifactId>
    <version>{DEPENDENCY_PLUGIN_VERSION}</version>
  </plugin></plugins></build>
</project>
"""


def jars_dir(home: Path, version: str) -> Path:
    """Where the jars of ``version`` live in the cache."""
    return home / "kafka" / version / "lib"


def fetch(home: Path, version: str, *, quiet: bool = False) -> Path:
    """Resolve the broker jars into the cache once; return the folder that holds them.

    Raises:
        ToolMissingError: ``mvn`` is not on PATH.
        FetchError: Maven failed (no network, unknown version, ...).
    """
    lib = jars_dir(home, version)
    if (lib / _COMPLETE_MARKER).exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise ToolMissingError(
            "mvn not found: install Apache Maven (e.g. `apt-get install maven`) "
            "so the Kafka broker jars can be fetched"
        )
    work = lib.parent
    work.mkdir(parents=True, exist_ok=True)
    (work / "pom.xml").write_text(render_pom(version))
    if not quiet:
        print(f"Fetching Apache Kafka {version} jars from Maven Central (first run only)...")
    cmd = [
        mvn,
        "-B",
        "-q",
        # Retry what an earlier run failed to resolve: Maven caches "not found" and
        # transfer failures in ~/.m2 and would otherwise not ask Maven Central again.
        "-U",
        "-Dstyle.color=never",
        "-f",
        str(work / "pom.xml"),
        # Full coordinates: a failed plugin download then names the artifact and the
        # cause instead of "No plugin found for prefix 'dependency'".
        f"org.apache.maven.plugins:maven-dependency-plugin:{DEPENDENCY_PLUGIN_VERSION}"
        ":copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={lib}",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    except subprocess.TimeoutExpired as exc:
        raise FetchError(
            f"Maven did not finish fetching Kafka {version} in 15 minutes: "
            "check the network path to Maven Central and retry"
        ) from exc
    if proc.returncode != 0 or not any(lib.glob(f"kafka_2.13-{version}.jar")):
        raise fetch_error(version, proc.stdout + proc.stderr)
    (lib / _COMPLETE_MARKER).write_text(version)
    return lib


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def maven_error(output: str) -> str:
    """The first ``[ERROR]`` line of Maven's output, without decoration."""
    lines = [_ANSI.sub("", line).strip() for line in output.splitlines()]
    for line in lines:
        message = line.removeprefix("[ERROR]").strip()
        if line.startswith("[ERROR]") and message:
            return message.removesuffix("-> [Help 1]").strip()
    return next((line for line in reversed(lines) if line), "Maven printed nothing")


def fetch_error(version: str, output: str) -> FetchError:
    """A one-line `FetchError` that says what to do, from Maven's output."""
    message = maven_error(output)
    artifact = f"org.apache.kafka:kafka_2.13:jar:{version}"
    if artifact in message and ("not found" in message or "Could not find" in message):
        return FetchError(
            f"Apache Kafka {version} is not on Maven Central ({artifact} not found): "
            f"set SAGAS_DEV_KAFKA_VERSION to a released version, e.g. {DEFAULT_KAFKA_VERSION}"
        )
    return FetchError(
        f"could not fetch Apache Kafka {version} with Maven: {message} "
        "(is Maven Central reachable? a proxy or mirror goes in ~/.m2/settings.xml)"
    )
