"""A2A push notifications through the outbox.

Clients register push URLs the a2a-sdk's way (``configuration.taskPushNotificationConfig`` on a
message, or ``CreateTaskPushNotificationConfig``); the SDK keeps them in its
``DatabasePushNotificationConfigStore`` over the store's ``agentship_a2a_push_configs`` table
(each visible only to its task's user; encrypted at rest with ``AGENTSHIP_A2A_PUSH_KEY``, a
Fernet key, when it is set). For each task status the SDK hands over (a ``Task`` or a
``TaskStatusUpdateEvent``: the artifact chunks a streamed answer is made of are not pushed), the
sender writes one outbox row per registered URL, and the dispatcher delivers it at least once,
with the config's token (``X-A2A-Notification-Token``) or credentials (``Authorization``) read
from the config store when it is sent, never copied into the outbox. Each row is written once
the SDK has saved the status it announces: a replica killed between the two loses that one.

Push URLs on loopback or private networks are refused, when registered and when delivered,
unless ``AGENTSHIP_A2A_PUSH_PRIVATE=1``.
"""

from __future__ import annotations

import logging
import time

from a2a.server.tasks import PushNotificationConfigStore
from a2a.server.tasks.push_notification_sender import PushNotificationEvent, PushNotificationSender
from a2a.types.a2a_pb2 import TaskArtifactUpdateEvent
from a2a.utils.proto_utils import to_stream_response
from a2a.utils.push_url_validator import validate_push_notification_url
from google.protobuf.json_format import MessageToDict

from agentship.state.outbox import A2A, Notice, Outbox, event_id, rows

_logger = logging.getLogger("agentship.server")

TOKEN_HEADER = "X-A2A-Notification-Token"


class OutboxPushSender(PushNotificationSender):
    def __init__(self, outbox: Outbox, configs: PushNotificationConfigStore, allow_private: bool) -> None:
        self.outbox = outbox
        self.configs = configs
        self.allow_private = allow_private

    async def send_notification(self, task_id: str, event: PushNotificationEvent) -> None:
        if isinstance(event, TaskArtifactUpdateEvent):
            return
        configs = await self.configs.get_info_for_dispatch(task_id)
        if not configs:
            return
        payload = MessageToDict(to_stream_response(event))
        targets = [(config.id, config.url) for config in configs]
        new = rows(A2A, task_id, "", event_id(), payload, targets, time.time(), self.outbox.ttl_s)
        await self.outbox.add(new)

    async def headers(self, notice: Notice) -> dict[str, str] | None:
        """The delivery's headers, from its config as it is now; None if the config is gone, its
        URL changed, or it is one the server may not call."""
        configs = await self.configs.get_info_for_dispatch(notice.subject)
        config = next((c for c in configs if c.id == notice.destination), None)
        if config is None or config.url != notice.url:
            return None
        if not self.allow_private and not await validate_push_notification_url(config.url):
            return None
        headers = {TOKEN_HEADER: config.token} if config.token else {}
        auth = config.authentication
        if config.HasField("authentication") and auth.scheme and auth.credentials:
            headers["Authorization"] = f"{auth.scheme} {auth.credentials}"
        return headers
