"""GCE-shaped errors: ``{"error": {"code", "message", "errors": [{"domain", "reason", "message"}]}}``."""

from __future__ import annotations

from typing import Any

# The synchronous reason GCE gives for each status when a test injects a fault without one.
DEFAULT_REASONS = {
    400: "badRequest",
    403: "forbidden",
    404: "notFound",
    409: "alreadyExists",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}
DEFAULT_MESSAGES = {
    429: "Rate Limit Exceeded",
    500: "Internal error. Please try again or contact Google Support.",
    503: "The service is currently unavailable.",
    403: "Required permission is missing.",
}
# Operation errors carry an UPPER_CASE code instead of a camelCase reason.
OPERATION_CODES = {
    400: "INVALID_USAGE",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_NOT_FOUND",
    409: "RESOURCE_ALREADY_EXISTS",
    412: "CONDITION_NOT_MET",
    429: "RATE_LIMIT_EXCEEDED",
    500: "INTERNAL_ERROR",
    503: "SERVICE_UNAVAILABLE",
}
HTTP_STATUS_TEXT = {
    400: "BAD REQUEST",
    403: "FORBIDDEN",
    404: "NOT FOUND",
    409: "CONFLICT",
    412: "PRECONDITION FAILED",
    429: "TOO MANY REQUESTS",
    500: "INTERNAL SERVER ERROR",
    503: "SERVICE UNAVAILABLE",
}


class ApiError(Exception):
    """A synchronous API error; the HTTP layer turns it into the GCE error body."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "errors": [{"domain": "global", "reason": self.reason, "message": self.message}],
            }
        }


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid", message)


def invalid_field(field: str, value: object, why: str = "") -> ApiError:
    text = f"Invalid value for field '{field}': '{value}'."
    return invalid(f"{text} {why}" if why else text)


def required(field: str) -> ApiError:
    return ApiError(400, "required", f"Required field '{field}' not specified")


def not_found(path: str) -> ApiError:
    return ApiError(404, "notFound", f"The resource '{path}' was not found")


def already_exists(path: str) -> ApiError:
    return ApiError(409, "alreadyExists", f"The resource '{path}' already exists")


def in_use(kind: str, path: str, user: str) -> ApiError:
    return ApiError(
        400,
        "resourceInUseByAnotherResource",
        f"The {kind} resource '{path}' is already being used by '{user}'",
    )


def precondition(message: str) -> ApiError:
    return ApiError(412, "conditionNotMet", message)
