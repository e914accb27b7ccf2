"""The fixed sets of values the CLI's options accept, as enums so that `--help` lists them and a value outside
them is a usage error (exit code 2) before anything is sent. tests/cli/test_choices.py proves each matches
the domain's own definition, so none can drift from what the API accepts."""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    VALIDATED = "validated"
    ROLLED_BACK = "rolled_back"


class CostingMode(StrEnum):
    # The contract's v1.1 methods (shared.costing.Method).
    FIFO = "fifo"
    LIFO = "lifo"
    MOVING_AVERAGE = "moving_average"


class JournalFormat(StrEnum):
    CSV = "csv"
    JSON = "json"
    IIF = "iif"
    XERO = "xero"


class JournalGrouping(StrEnum):
    DATE = "date"
    SALE = "sale"


class Plan(StrEnum):
    FREE = "free"
    PRO = "pro"
    ENTERPRISE = "enterprise"


class RoleModel(StrEnum):
    STANDARD = "standard"
    SIMPLE = "simple"


class Role(StrEnum):
    """Every role of every role model; the tenant's role model decides which of them it accepts."""

    OPERATOR = "operator"
    OWNER = "owner"
    MANAGER = "manager"
    CLERK = "clerk"
    VIEWER = "viewer"
    MEMBER = "member"


class Report(StrEnum):
    STOCK_ON_HAND = "stock-on-hand"
    INVENTORY_MOVEMENT = "inventory-movement"
    RECEIVING_SUMMARY = "receiving-summary"
    SHRINK_SUMMARY = "shrink-summary"
    VALUATION = "valuation"
