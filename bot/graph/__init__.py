"""Microsoft Graph v1.0: the client, its models and its errors."""

from bot.graph.client import GraphClient
from bot.graph.errors import (
    GraphAuthError,
    GraphError,
    GraphNotFound,
    GraphThrottled,
    GraphTimeout,
    GraphUnavailable,
)
from bot.graph.models import (
    BatchRequest,
    BatchResponse,
    GraphEvent,
    MailboxSettings,
    OnlineMeeting,
    Person,
    ResponseStatus,
    RoomList,
    ScheduleItem,
)

__all__ = [
    "BatchRequest",
    "BatchResponse",
    "GraphAuthError",
    "GraphClient",
    "GraphError",
    "GraphEvent",
    "GraphNotFound",
    "GraphThrottled",
    "GraphTimeout",
    "GraphUnavailable",
    "MailboxSettings",
    "OnlineMeeting",
    "Person",
    "ResponseStatus",
    "RoomList",
    "ScheduleItem",
]
