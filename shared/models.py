"""Imports every domain's models so that the metadata (and Alembic) sees all tables."""

from shared.audit.models import AuditEvent
from shared.base import Base
from shared.exports.models import Export
from shared.integrations.models import Dispatch, Integration, OutboxEntry
from shared.inventory.models import Bin, Category, Count, CountLine, Hub, Item, Vendor
from shared.jobs.models import IdempotencyKey, Job, JobBlob
from shared.landed_costs.models import LandedCost, LandedCostLine
from shared.ledger.models import LedgerEvent, Lot
from shared.reports import models as _report_indexes  # noqa: F401 - indexes on lots and ledger_events
from shared.returns.models import Return, ReturnLine
from shared.runs.models import CostedSku, RepostRun, Run, RunAllocation, RunSale, RunSku, RunValidationError
from shared.tenants.models import ApiKey, LedgerHead, Plan, PlanLimit, ScopeKey, Tenant, TenantCounter

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Base",
    "Bin",
    "Category",
    "CostedSku",
    "Count",
    "CountLine",
    "Dispatch",
    "Export",
    "Hub",
    "IdempotencyKey",
    "Integration",
    "Item",
    "Job",
    "JobBlob",
    "LandedCost",
    "LandedCostLine",
    "LedgerEvent",
    "LedgerHead",
    "Lot",
    "OutboxEntry",
    "Plan",
    "PlanLimit",
    "RepostRun",
    "Return",
    "ReturnLine",
    "Run",
    "RunAllocation",
    "RunSale",
    "RunSku",
    "RunValidationError",
    "ScopeKey",
    "Tenant",
    "TenantCounter",
    "Vendor",
]
