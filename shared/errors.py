"""Domain errors carry the contract's `{code, reason, message, details}`; adapters map them to HTTP or to a
job's recorded error."""

from __future__ import annotations

from typing import Any

STATUS_BY_CODE = {
    "UNAUTHENTICATED": 401,
    "PLAN_LIMIT_EXCEEDED": 402,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "VALIDATION_FAILED": 422,
    "UNAVAILABLE": 503,
}

# Reasons (the envelope's `reason`) of the costing methods (docs/costing.md): a run whose method is not the one
# a SKU is held to (422 VALIDATION_FAILED), and a switch that would revalue stock on hand (409 CONFLICT).
VALUATION_METHOD_MISMATCH = "VALUATION_METHOD_MISMATCH"
REVALUATION_REQUIRED = "REVALUATION_REQUIRED"


class DomainError(Exception):
    code = "VALIDATION_FAILED"

    def __init__(self, message: str, *, reason: str | None = None, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.details = details or []

    @property
    def status_code(self) -> int:
        return STATUS_BY_CODE[self.code]

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "reason": self.reason, "message": self.message, "details": self.details}


class Unauthenticated(DomainError):
    code = "UNAUTHENTICATED"


class Forbidden(DomainError):
    code = "FORBIDDEN"


class PlanLimitExceeded(DomainError):
    code = "PLAN_LIMIT_EXCEEDED"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    code = "CONFLICT"


class ValidationFailed(DomainError):
    code = "VALIDATION_FAILED"


class TooLarge(ValidationFailed):
    """A body, file or field past its documented limit: VALIDATION_FAILED, answered as 413."""

    @property
    def status_code(self) -> int:
        return 413


class Unavailable(DomainError):
    code = "UNAVAILABLE"


BACKDATED_RECEIPT = "BACKDATED_RECEIPT"


class BackdatedReceipt(ValidationFailed):
    """422 VALIDATION_FAILED, reason BACKDATED_RECEIPT: in `reject` mode (the tenant's `backdated_entries`), a
    receipt, count gain or run lot dated before an already-costed sale of its SKU. Each detail names the SKU and
    its latest costed sale date. (The contract's BACKDATED_SALE is its twin for sales.)"""

    def __init__(self, message: str, details: list[dict[str, Any]]) -> None:
        super().__init__(message, reason=BACKDATED_RECEIPT, details=details)
