"""The reaper may end a frozen fence holder that PostgreSQL's own timeouts never reach.

A job transaction that a paused or partitioned worker leaves *idle* is ended by
`idle_in_transaction_session_timeout`, which releases the stream's fence. One frozen in the middle of a statement
that waits on the client (a COPY FROM STDIN whose data stops coming, or a result the client stops reading) is
*active*, not idle: no timeout of the worker's session applies (workers have no statement timeout, a large run's
COPY may take minutes), TCP keepalives pass while the peer's kernel answers, and the fence is held until the
process resumes: the likeliest cause of the one stall in 20 soak passes of the SIGSTOP scenario (docs/reliability.md).

`asora_sys_end_frozen_fence_holder(key)` terminates the backend holding the advisory-lock fence `key` only when
that backend is an application login's, `active`, and waiting on its client (`ClientRead`/`ClientWrite`). The
reaper calls it only for a stream whose running job's heartbeat is stale (the worker process stopped), so a live
worker streaming a COPY is never touched. It is owned by `asora_reaper` (NOLOGIN, no member, no table
privilege), whose only powers are PostgreSQL's `pg_signal_backend` and `pg_read_all_stats` (to see another
login's backend state); `asora_system` is NOINHERIT and cannot use predefined roles. Where the migrating role
cannot create that role (a managed database), the function is owned by `asora_system`, sees no backend's
state and ends nothing, and the stall lasts until the worker resumes or dies, as before (docs/security.md).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURE = "asora_sys_end_frozen_fence_holder(p_key bigint)"
DEFINER = "SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp"

# An advisory lock taken with one bigint key shows its high 32 bits as classid, its low 32 bits as objid and
# objsubid 1 (the fence keys are CRC-32s, so classid is 0).
BODY = """
DECLARE
  holder integer;
  ended integer := 0;
BEGIN
  FOR holder IN
    SELECT a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid::bigint = (p_key >> 32) AND l.objid::bigint = (p_key & 4294967295)
      AND a.usename = 'asora_app_login' AND a.state = 'active'
      AND a.wait_event_type = 'Client' AND a.wait_event IN ('ClientRead', 'ClientWrite')
  LOOP
    BEGIN
      IF pg_terminate_backend(holder) THEN
        ended := ended + 1;
      END IF;
    EXCEPTION WHEN insufficient_privilege THEN
      RAISE WARNING 'may not end backend % (no pg_signal_backend; docs/security.md)', holder;
    END;
  END LOOP;
  RETURN ended;
END"""


def upgrade() -> None:
    op.execute("""
        DO $$ BEGIN
          IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'asora_reaper') THEN
            CREATE ROLE asora_reaper NOLOGIN NOSUPERUSER NOBYPASSRLS INHERIT;
          END IF;
          GRANT pg_signal_backend, pg_read_all_stats TO asora_reaper;
          IF NOT pg_has_role(current_user, 'asora_reaper', 'MEMBER') THEN
            EXECUTE format('GRANT asora_reaper TO %I', current_user);
          END IF;
        EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation OR duplicate_object OR unique_violation THEN
          RAISE WARNING 'cannot set up role asora_reaper: a frozen fence holder will not be ended (docs/security.md)';
        END $$;
    """)
    op.execute(f"CREATE FUNCTION {SIGNATURE} RETURNS integer LANGUAGE plpgsql {DEFINER} AS $fn$ {BODY} $fn$")
    op.execute(f"""
        DO $$ BEGIN
          IF pg_has_role(current_user, 'asora_reaper', 'MEMBER') THEN
            ALTER FUNCTION {SIGNATURE} OWNER TO asora_reaper;
          ELSE
            ALTER FUNCTION {SIGNATURE} OWNER TO asora_system;
          END IF;
        EXCEPTION WHEN undefined_object THEN
          ALTER FUNCTION {SIGNATURE} OWNER TO asora_system;
        END $$;
    """)
    op.execute(f"REVOKE ALL ON FUNCTION {SIGNATURE} FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {SIGNATURE} TO asora_ops")


def downgrade() -> None:
    op.execute(f"DROP FUNCTION {SIGNATURE}")
    # The role is cluster-wide and other databases of the cluster may use it; it is left in place.
