"""A Python client: submit, wait, stream events, status over Kafka; imports dev and below.

    from synod.client import Client
    with Client() as synod:                    # finds a running `synod up`
        task_id = synod.submit("write a haiku")
        status = synod.wait(task_id, timeout_s=120)
        print(status.state, status.result)

`AsyncClient` is the same in asyncio. Without a bootstrap argument or
SYNOD_BOOTSTRAP, the broker of a running `synod up` is used (`find_cluster`).
`Escalations` answers the tasks waiting for a person, through the gateway.
The `synod` CLI's submit, status, watch and approvals commands are built on this package.
"""

from synod.client.api import AsyncClient, Client, Submitted
from synod.client.cluster import Cluster, find_cluster
from synod.client.escalations import Escalations, Reply
from synod.client.reader import TaskReader

__all__ = [
    "AsyncClient",
    "Client",
    "Cluster",
    "Escalations",
    "Reply",
    "Submitted",
    "TaskReader",
    "find_cluster",
]
