"""The export job: render the report to CSV inside the tenant's fenced transaction. Its completion is
audited by the runner (`job.export`, outcome completed, with the file's name, hash and row count)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from shared.base import utcnow
from shared.errors import DomainError
from shared.exports import service as exports
from shared.exports.models import FINISHED, ExportStatus
from shared.integrations import events
from shared.integrations.models import EventName
from shared.jobs.kinds import PENDING, JobStatus
from shared.jobs.models import Job


class ExportJob:
    def status_changed(self, session: Session, job: Job, error: DomainError | None = None) -> None:
        export = exports.export_of_job(session, job)
        if export.status in FINISHED:  # a finished export is immutable (the database enforces it too)
            return
        if job.status in PENDING:
            export.status = ExportStatus(job.status)
        elif job.status == JobStatus.FAILED:
            export.status, export.error, export.finished_at = ExportStatus.FAILED, job.error, utcnow()

    def execute(self, session: Session, job: Job) -> dict[str, Any]:
        result = exports.render_export(session, exports.export_of_job(session, job))
        events.emit(session, job.tenant_id, EventName.EXPORT_COMPLETED, {"job_id": job.id, **result})
        return result
