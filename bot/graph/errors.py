"""Failures of Microsoft Graph calls, as types. Their text never carries a token.

Graph answers errors as `{"error": {"code", "message", "innerError": {"request-id"}}}`
(https://learn.microsoft.com/graph/errors). `status` is the HTTP status (0 when no answer came).
"""

from __future__ import annotations


class GraphError(Exception):
    """A Graph call failed: HTTP status, Graph error code, message and the request id to quote."""

    def __init__(
        self, status: int, code: str, message: str = "", request_id: str | None = None
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        text = f"Graph {status} {code}"
        if message:
            text += f": {message}"
        if request_id:
            text += f" (request-id {request_id})"
        super().__init__(text)


class GraphAuthError(GraphError):
    """401 or 403: the token is expired, lacks consent or a permission."""


class GraphNotFound(GraphError):
    """404: the object does not exist or is not visible to the caller."""


class GraphThrottled(GraphError):
    """429 or 503 that outlasted the retries, or asked for a longer wait than we accept.

    `retry_after` is the wait Graph asked for, in seconds, when it said.
    """

    def __init__(
        self,
        status: int,
        code: str,
        message: str = "",
        request_id: str | None = None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(status, code, message, request_id)
        self.retry_after = retry_after


class GraphTimeout(GraphError):
    """No complete answer within the per-call timeout."""


class GraphUnavailable(GraphError):
    """Graph could not be reached, or answered 5xx (other than throttling) until we gave up."""
