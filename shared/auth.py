"""Who is calling and what they may do. The permission matrix is one table; tests iterate over it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.errors import Forbidden


class Permission(StrEnum):
    READ = "read"
    TENANTS_MANAGE = "tenants.manage"
    KEYS_MANAGE = "keys.manage"
    MASTER_WRITE = "master.write"
    RECEIPTS_WRITE = "receipts.write"
    COUNTS_WRITE = "counts.write"
    RUNS_WRITE = "runs.write"
    EXPORTS_CREATE = "exports.create"
    INTEGRATIONS_MANAGE = "integrations.manage"
    INTEGRATIONS_DISPATCH = "integrations.dispatch"
    SETTINGS_MANAGE = "settings.manage"  # the tenant's costing settings (owners)


OPERATOR = "operator"
P = Permission

# role model -> role -> permissions. The operator is a platform role: it never writes the ledger.
ROLE_PERMISSIONS: dict[str, dict[str, frozenset[Permission]]] = {
    "platform": {
        OPERATOR: frozenset({P.READ, P.TENANTS_MANAGE, P.KEYS_MANAGE, P.MASTER_WRITE, P.INTEGRATIONS_DISPATCH}),
    },
    "standard": {
        "owner": frozenset(P) - {P.TENANTS_MANAGE},
        "manager": frozenset(
            {
                P.READ,
                P.MASTER_WRITE,
                P.RECEIPTS_WRITE,
                P.COUNTS_WRITE,
                P.RUNS_WRITE,
                P.EXPORTS_CREATE,
                P.INTEGRATIONS_DISPATCH,
            }
        ),
        "clerk": frozenset({P.READ, P.RECEIPTS_WRITE, P.COUNTS_WRITE}),
        "viewer": frozenset({P.READ}),
    },
    "simple": {
        "owner": frozenset(P) - {P.TENANTS_MANAGE},
        "member": frozenset(
            {
                P.READ,
                P.MASTER_WRITE,
                P.RECEIPTS_WRITE,
                P.COUNTS_WRITE,
                P.RUNS_WRITE,
                P.EXPORTS_CREATE,
                P.INTEGRATIONS_DISPATCH,
            }
        ),
    },
}


def roles_for(role_model: str) -> tuple[str, ...]:
    return tuple(ROLE_PERMISSIONS[role_model])


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: str
    role_model: str  # "platform" for operators
    tenant_id: str | None  # the key's tenant; for an operator, the X-Tenant-ID it acts on (or None)

    @property
    def is_operator(self) -> bool:
        return self.role == OPERATOR

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role_model].get(self.role, frozenset())

    def require(self, permission: Permission) -> None:
        if not self.can(permission):
            raise Forbidden(f"role '{self.role}' may not perform '{permission.value}'", reason="ROLE_FORBIDDEN")


# The actor recorded for administrator commands run on the host (`asora tenants create`, `asora keys create`):
# they talk to the database directly, so there is no API key; the audit names the role "cli".
LOCAL_ADMIN = Principal(key_id="local-admin", role="cli", role_model="platform", tenant_id=None)
