"""The service-test fixture (`db_session`, tests/conftest.py) keeps its promises: it runs as the application
role under row-level security, nothing it writes is committed (another connection never sees it), what one
test wrote is gone in the next, and `commit()` or a service's `begin_nested()` only moves savepoints."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shared import db
from shared.inventory.models import Hub
from shared.tenants.models import Tenant
from tests import factories

# Both runs of the test below write this same tenant: the second would find the first's row if it had lasted.
SHARED_ID = factories.new_tenant_id("iso")


def _seen_elsewhere(tenant_id: str) -> bool:
    """Whether a committed row is there, as a fresh connection of the application sees it."""
    with db.unit_of_work(tenant_id) as other:
        return other.get(Tenant, tenant_id) is not None


def _in_savepoint(session: Session, write: Callable[[], object], *, fail: bool = False) -> None:
    """What a service does with `begin_nested`: write, flush, and maybe give up."""
    with session.begin_nested():
        write()
        session.flush()
        if fail:
            raise RuntimeError("the service gives up")


@pytest.mark.parametrize("run", [1, 2])
def test_a_row_written_in_one_test_is_gone_in_the_next_and_never_committed(db_session: Session, run: int) -> None:
    db.scope_session(db_session, SHARED_ID)
    assert db_session.get(Tenant, SHARED_ID) is None, f"run {run} sees a tenant an earlier test wrote"
    db_session.add(Tenant(id=SHARED_ID, name="isolation", plan="free", role_model="standard"))
    db_session.commit()  # releases a savepoint; the outer transaction stays open
    assert db_session.get(Tenant, SHARED_ID) is not None
    assert not _seen_elsewhere(SHARED_ID)


def test_the_session_runs_as_the_application_role_under_row_level_security(db_session: Session) -> None:
    assert db_session.scalar(text("SELECT current_user")) == db.APP_LOGIN
    with pytest.raises(DBAPIError, match="row-level security"):
        _in_savepoint(
            db_session,
            lambda: db_session.add(Tenant(id=factories.new_tenant_id(), name="x", plan="free", role_model="simple")),
        )
    tenant_id = factories.tenant(db_session)
    assert db_session.get(Tenant, tenant_id) is not None
    db.scope_session(db_session, factories.new_tenant_id())
    assert db_session.scalar(select(func.count()).select_from(Tenant).where(Tenant.id == tenant_id)) == 0


def test_a_services_nested_transaction_and_the_edges_rollback_are_savepoints(db_session: Session) -> None:
    tenant_id = factories.tenant(db_session)
    factories.hub(db_session, tenant_id, "kept")
    with pytest.raises(RuntimeError):
        _in_savepoint(db_session, lambda: factories.hub(db_session, tenant_id, "undone"), fail=True)
    assert db_session.scalars(select(Hub.name).where(Hub.tenant_id == tenant_id)).all() == ["kept"]
    db_session.rollback()  # the edge's rollback: back to where the test's transaction began, no further
    db.scope_session(db_session, tenant_id)
    assert db_session.get(Tenant, tenant_id) is None
    assert db_session.scalar(text("SELECT 1")) == 1  # the outer transaction is still usable


def test_units_of_work_share_the_tests_transaction_and_leave_its_scope_alone(
    db_session: Session, db_units: None
) -> None:
    tenant_id = factories.tenant(db_session)
    with db.unit_of_work(tenant_id) as unit:
        assert unit.get(Tenant, tenant_id) is not None  # sees the test's uncommitted row
    assert db_session.scalar(text("SELECT current_setting('asora.tenant_id', true)")) == tenant_id
