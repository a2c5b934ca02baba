"""A planner on the in-memory broker: what it logs comes back to its own handler.

For unit tests and benchmarks of the planner's own logic (its sweep, its wake
schedule) without Kafka: the in-memory transport stands in for the broker (for
the real one see tests/integration), the planner owns every partition of the task
log, and its outbox is `read-back` (each record written alone, forwarded when
read back), so a round trip is one `publish` and one handled record.

    run = MemoryPlanner(partitions=4, config=TaskConfig(step_deadline_s=30.0))
    await run.start()
    await run.publish(TASK_EVENTS, envelope)   # handled by run.planner
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from synod.core.task import TaskConfig
from synod.roles.planner.service import Planner
from synod.transport import MemoryBroker, MemoryConsumer, MemoryPublisher, RawRecord
from synod.transport.topics import TASK_EVENTS, TopicSpec, topic_name
from synod.wire import Envelope, Sender

PLANNER = Sender(role="planner", instance="p-0")


class MemoryPlanner:
    def __init__(
        self, *, partitions: int, config: TaskConfig | None = None, prefix: str = "t."
    ) -> None:
        self.prefix = prefix
        self.broker = MemoryBroker(partitions=partitions)
        self.publisher = MemoryPublisher(self.broker)
        ctx: Any = SimpleNamespace(
            kafka=SimpleNamespace(bootstrap="127.0.0.1:1", topic_prefix=prefix),
            topic=self.topic,
            instance=PLANNER.instance,
            sender=PLANNER,
            service=SimpleNamespace(causal_clocks=False),
            publish=self.publish,
            publisher=self.publisher,
        )
        llm: Any = None  # tasks carry their plans: the model is never asked
        self.planner = Planner(ctx, llm, config=config or TaskConfig(), outbox="read-back")
        events = self.topic(TASK_EVENTS)
        owned: Any = SimpleNamespace(
            assigned={TopicPartition(events, p) for p in range(partitions)}
        )
        self.planner.consumer = owned
        self.consumer = MemoryConsumer(
            self.broker, [events], self.planner.handle, dead_letter=self._dead_letter
        )

    def topic(self, spec: TopicSpec | str) -> str:
        return spec if isinstance(spec, str) else topic_name(spec, self.prefix)

    async def publish(self, spec: TopicSpec | str, envelope: Envelope[Any]) -> None:
        await self.publisher.publish(self.topic(spec), envelope)

    async def start(self) -> None:
        await self.consumer.start()

    @staticmethod
    async def _dead_letter(record: RawRecord, reason: str, message: str, cls: str) -> None:
        raise AssertionError(f"a record the planner could not take: {reason}: {message}")
