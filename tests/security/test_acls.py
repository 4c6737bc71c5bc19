"""Least privilege: a service's user cannot write another saga's inbox nor read another
service's commands, and a client certificate maps to the same user and ACLs."""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAuthorizationFailedError

from sagas.dev.acls import app_acls
from sagas.dev.broker import DevKafka
from services.app import app
from tests.security.conftest import PREFIX, cert_options, ensure_topics, user_options

pytestmark = [pytest.mark.kafka, pytest.mark.security, pytest.mark.timeout(420)]

ORDER_INBOX = f"{PREFIX}sagas.order_fulfilment.inbox"
ONBOARDING_INBOX = f"{PREFIX}sagas.onboarding.inbox"
PAYMENTS_COMMANDS = f"{PREFIX}payments.commands"


@pytest.fixture
async def topics(secure_kafka: DevKafka) -> None:
    # Three partitions, as the engine of test_secure_system creates its inbox.
    await ensure_topics(secure_kafka, [ORDER_INBOX, ONBOARDING_INBOX, PAYMENTS_COMMANDS])


async def produce(bootstrap: str, options: dict[str, Any], topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **options)
    await producer.start()
    try:
        # An empty-keyed null record: never a command or reply any consumer would act on.
        await producer.send_and_wait(topic, key=b"acl-probe", value=None)
    finally:
        await producer.stop()


async def subscribe(bootstrap: str, options: dict[str, Any], topic: str, group: str) -> None:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, **options)
    try:
        await consumer.start()
    finally:
        await consumer.stop()


def test_every_component_has_its_own_user_and_least_privilege() -> None:
    table = app_acls(app, PREFIX)
    assert {"engine", "ops", "dashboard", "inventory", "payments"} <= set(table)
    inventory = {(a.name, a.operation.name) for a in table["inventory"]}
    assert (ORDER_INBOX, "WRITE") in inventory
    assert (ONBOARDING_INBOX, "WRITE") not in inventory
    assert (f"{PREFIX}inventory.commands", "READ") in inventory
    assert not any(name == PAYMENTS_COMMANDS for name, _ in inventory)


async def test_a_service_writes_replies_only_to_the_inbox_of_its_saga(
    secure_kafka: DevKafka, topics: None
) -> None:
    options = user_options(secure_kafka, "inventory")
    await produce(secure_kafka.bootstrap_servers, options, ORDER_INBOX)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(secure_kafka.bootstrap_servers, options, ONBOARDING_INBOX)


async def test_a_service_cannot_read_another_services_commands(
    secure_kafka: DevKafka, topics: None
) -> None:
    options = user_options(secure_kafka, "inventory")
    with pytest.raises(TopicAuthorizationFailedError):
        await subscribe(
            secure_kafka.bootstrap_servers, options, PAYMENTS_COMMANDS, f"{PREFIX}inventory-service"
        )


async def test_a_service_cannot_create_topics_outside_its_own(secure_kafka: DevKafka) -> None:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=secure_kafka.bootstrap_servers, **user_options(secure_kafka, "payments")
    )
    await admin.start()
    try:
        response = await admin.create_topics([NewTopic(f"{PREFIX}sagas.forged", 1, 1)])
    finally:
        await admin.close()
    codes = [t[1] for t in response.topic_errors]
    assert codes == [TopicAuthorizationFailedError.errno]


async def test_a_client_certificate_gets_the_acls_of_its_user(
    secure_kafka: DevKafka, topics: None
) -> None:
    servers = secure_kafka.mtls_servers
    await produce(servers, cert_options(secure_kafka, "inventory"), ORDER_INBOX)
    with pytest.raises(TopicAuthorizationFailedError):
        await produce(servers, cert_options(secure_kafka, "inventory"), ONBOARDING_INBOX)
    await produce(servers, cert_options(secure_kafka, "ops"), ONBOARDING_INBOX)
