"""Tenants, their plans and limits, API keys, and the per-tenant sequence counters."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from shared.base import Base, CreatedAt


class Plan(Base):
    __tablename__ = "plans"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)


class PlanLimit(Base):
    """One ceiling of a plan; `maximum` NULL means unlimited. Limits live here, not in code."""

    __tablename__ = "plan_limits"

    plan: Mapped[str] = mapped_column(ForeignKey("plans.name"), primary_key=True)
    limit_name: Mapped[str] = mapped_column(String(32), primary_key=True)
    maximum: Mapped[int | None] = mapped_column(BigInteger)


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    plan: Mapped[str] = mapped_column(ForeignKey("plans.name"))
    role_model: Mapped[str] = mapped_column(String(16))
    cogs_account_code: Mapped[str] = mapped_column(String(32), server_default="5000")
    cogs_account_name: Mapped[str] = mapped_column(String(100), server_default="Cost of Goods Sold")
    inventory_account_code: Mapped[str] = mapped_column(String(32), server_default="1400")
    inventory_account_name: Mapped[str] = mapped_column(String(100), server_default="Inventory Asset")
    # reject | repost: what a receipt, count gain or run lot dated before a costed sale does (shared/runs/repost.py)
    backdated_entries: Mapped[str] = mapped_column(String(8), server_default="reject")
    # The costing method of a run that names none (shared.costing.Method; migration 0012).
    valuation_method: Mapped[str] = mapped_column(String(16), server_default="fifo")
    created_at: Mapped[CreatedAt]


class TenantCounter(Base):
    """Gapless per-tenant sequences: an UPDATE ... RETURNING under the row lock hands out the next number,
    and a rolled-back transaction gives it back."""

    __tablename__ = "tenant_counters"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    job_seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))


class LedgerHead(Base):
    """The tenant's last ledger `seq` and hash. Kept apart from `tenant_counters` so a long ledger write
    never blocks intake from numbering new jobs."""

    __tablename__ = "ledger_heads"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    hash: Mapped[str] = mapped_column(String(64), server_default=text("repeat('0', 64)"))


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[CreatedAt]
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ScopeKey(Base):
    """The key that signs tenant scopes (migration 0013, docs/security.md): one row, readable only by the
    `asora_system` role. Processes get it through `asora_sys_scope_key()`; nothing maps rows of it."""

    __tablename__ = "asora_scope_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, server_default=text("1"))
    key: Mapped[bytes] = mapped_column(LargeBinary)
