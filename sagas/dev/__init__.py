"""Local development infrastructure: a single-node Apache Kafka without Docker."""

from sagas.dev.broker import BrokerStatus, DevKafka

__all__ = ["BrokerStatus", "DevKafka"]
