"""Row-level security is the second wall behind tenant-scoped queries: a connection as the application role
sees nothing without a tenant setting, and a transaction scoped to one tenant can neither see nor write
another tenant's rows."""

from __future__ import annotations

import secrets

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from shared import db
from shared.base import new_id
from shared.inventory.models import Category, Item
from shared.tenants import service as tenants
from tests.support import owner_unit


def _tenant_with_items(prefix: str) -> str:
    tenant_id = f"{prefix}-{secrets.token_hex(4)}"
    with db.unit_of_work() as session:
        tenants.create_tenant(
            session, tenant_id=tenant_id, name=tenant_id, plan="free", role_model="standard", actor=None
        )
    with db.unit_of_work(tenant_id) as session:
        category = Category(id=new_id("cat"), tenant_id=tenant_id, name="c")
        session.add(category)
        session.add(Item(id=new_id("item"), tenant_id=tenant_id, sku="SKU-1", name="i", category_id=category.id))
    return tenant_id


@pytest.fixture(scope="module")
def two_tenants(service_urls):
    return _tenant_with_items("rls-a"), _tenant_with_items("rls-b")


def _tenant_tables() -> list[str]:
    with owner_unit() as session:
        return list(
            session.scalars(
                text("""
                SELECT c.table_name FROM information_schema.columns c
                JOIN information_schema.tables t ON t.table_name = c.table_name AND t.table_schema = c.table_schema
                WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'
                ORDER BY 1""")
            )
        )


def test_every_tenant_table_forces_row_level_security(service_urls):
    tables = [*_tenant_tables(), "tenants"]
    assert {"items", "ledger_events", "lots", "audit_events", "counts", "count_lines"} <= set(tables)
    with owner_unit() as session:
        rows = session.execute(
            text("""
            SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
                   EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'tenant_isolation')
            FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'public' AND c.relname = ANY(:tables)"""),
            {"tables": tables},
        ).all()
    unprotected = [name for name, enabled, forced, policy in rows if not (enabled and forced and policy)]
    assert unprotected == []
    assert len(rows) == len(tables)


def test_without_a_tenant_setting_the_application_sees_nothing(two_tenants):
    with db.get_engine().connect() as conn:
        assert conn.scalar(text("SELECT current_user")) == db.APP_LOGIN
        for table in [*_tenant_tables(), "tenants"]:
            assert conn.scalar(text(f"SELECT count(*) FROM {table}")) == 0, table
        conn.rollback()


def test_a_tenant_scope_cannot_see_or_write_another_tenant(two_tenants):
    a, b = two_tenants
    with db.unit_of_work(a) as session:
        assert session.scalars(text("SELECT DISTINCT tenant_id FROM items")).all() == [a]
        assert session.scalar(text("SELECT count(*) FROM items WHERE tenant_id = :b"), {"b": b}) == 0
        assert session.scalars(text("SELECT id FROM tenants")).all() == [a]
        updated = session.execute(text("UPDATE items SET name = 'stolen' WHERE tenant_id = :b"), {"b": b})
        assert updated.rowcount == 0  # type: ignore[attr-defined]
    with db.unit_of_work(a) as session:
        session.add(Category(id=new_id("cat"), tenant_id=b, name="planted"))
        with pytest.raises(DBAPIError, match="row-level security"):
            session.flush()
        session.rollback()
    with db.unit_of_work(b) as session:
        assert session.scalars(text("SELECT name FROM categories")).all() == ["c"]
        assert session.scalars(text("SELECT name FROM items")).all() == ["i"]


def _copy_run_sale(session, tenant_id: str) -> None:
    from shared.copyio import copy_rows

    copy_rows(
        session,
        "run_sales",
        ("run_id", "sale_id", "tenant_id", "sku", "sale_date", "quantity", "cogs"),
        [("run_missing", "S-1", tenant_id, "SKU-1", "2024-01-01T00:00:00Z", "1", "1")],
    )


def test_bulk_writer_admits_only_the_transactions_tenant(two_tenants):
    """The bulk tables are COPYed as `asora_writer`, which bypasses row-level security; the CHECK constraint of
    migration 0005 and the signed statement check of 0013 keep the wall (tests/shared/test_db_walls.py tries
    harder)."""
    a, b = two_tenants
    with db.unit_of_work(a) as session:
        from shared.copyio import _writer_available

        assert _writer_available(session.connection(), "run_sales")
        assert not _writer_available(session.connection(), "items")
    with (
        pytest.raises(psycopg.errors.CheckViolation, match="ck_run_sales_writer_tenant"),
        db.unit_of_work(a) as session,
    ):
        _copy_run_sale(session, b)
