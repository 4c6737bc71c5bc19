from __future__ import annotations

from pathlib import Path

from sagas.dev import jars
from sagas.dev.broker import DevKafka


def test_pom_uses_log4j2_binding_for_4x() -> None:
    pom = jars.render_pom("4.4.0")
    assert "<artifactId>kafka_2.13</artifactId><version>4.4.0</version>" in pom
    assert "log4j-slf4j-impl" in pom
    assert "reload4j" not in pom


def test_pom_uses_reload4j_for_3x() -> None:
    pom = jars.render_pom("3.9.2")
    assert "slf4j-reload4j" in pom
    assert "log4j-slf4j-impl" not in pom


def test_single_node_properties(tmp_path: Path) -> None:
    broker = DevKafka(tmp_path, "4.4.0", port=19092, instance_dir=tmp_path / "b")
    broker.instance_dir.mkdir()
    broker._write_config()
    props = dict(
        line.split("=", 1)
        for line in (broker.instance_dir / "server.properties").read_text().splitlines()
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["transaction.state.log.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["offsets.topic.replication.factor"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["share.coordinator.state.topic.replication.factor"] == "1"


def test_status_without_pid_file(tmp_path: Path) -> None:
    status = DevKafka(tmp_path, "4.4.0", port=19092).status()
    assert not status.running
    assert "not running" in status.describe()


def test_cluster_ids_never_look_like_options() -> None:
    from sagas.dev.broker import _new_cluster_id

    ids = [_new_cluster_id() for _ in range(5000)]
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == 5000
