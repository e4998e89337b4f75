"""The Kafka reader's partition discovery and offset bookkeeping, on a real broker."""

import uuid

import pytest
from kafka import KafkaProducer

from radixinsight.services.kafka_broker import create_topics
from transforms.kafka_source import (
    KafkaPartition,
    KafkaReadConfig,
    commit_offset,
    list_partitions,
    start_offset,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(kafka_broker):
    name = f"src{uuid.uuid4().hex[:8]}"
    create_topics(kafka_broker.bootstrap, [name], partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for _ in range(5):
        producer.send(name, value=b"x", partition=0)
    producer.flush()
    producer.close()
    return name


def cfg(kafka_broker, topic, **kw):
    return KafkaReadConfig(kafka_broker.bootstrap, (topic,), group_id=f"g{uuid.uuid4().hex}",
                           **kw)


def test_lists_every_partition(kafka_broker, topic):
    assert list_partitions(cfg(kafka_broker, topic)) == [KafkaPartition(topic, 0),
                                                         KafkaPartition(topic, 1)]


def test_missing_topic_is_a_clear_error(kafka_broker):
    c = KafkaReadConfig(kafka_broker.bootstrap, ("no.such.topic",), group_id="g",
                        consumer_options=(("allow_auto_create_topics", False),))
    with pytest.raises(RuntimeError, match=r"topic 'no\.such\.topic' not found"):
        list_partitions(c)


def test_start_offset_without_commit_follows_start_from(kafka_broker, topic):
    part = KafkaPartition(topic, 0)
    assert start_offset(cfg(kafka_broker, topic), part) == 0
    assert start_offset(cfg(kafka_broker, topic, start_from="latest"), part) == 5


def test_committed_offset_wins_and_commits_reuse_one_consumer(kafka_broker, topic):
    c = cfg(kafka_broker, topic, start_from="latest")
    part = KafkaPartition(topic, 0)
    commit_offset(c, part, 3)
    assert start_offset(c, part) == 3
    commit_offset(c, part, 4)
    assert start_offset(c, part) == 4


@pytest.mark.parametrize("bad", [dict(topics=()), dict(start_from="middle"),
                                 dict(max_records_per_poll=0), dict(bootstrap_servers="")])
def test_config_is_validated(bad):
    args = dict(bootstrap_servers="h:1", topics=("t",), group_id="g") | bad
    with pytest.raises(ValueError):
        KafkaReadConfig(**args)
