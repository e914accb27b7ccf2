"""The job-kind table is the one source of queues and handlers: Celery, the workers `asora up` starts and the
deploy manifests agree with it, every kind has a handler, and handlers exist as soon as the table is
imported."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

from shared.jobs.kinds import JobKind, Queue
from shared.registry import KINDS, QUEUES, handler_for, queue_for

ROOT = Path(__file__).resolve().parents[3]


def _queue_lists(command: list[str]) -> set[str]:
    return set(command[command.index("-Q") + 1].split(",")) if "-Q" in command else set()


def test_every_kind_has_a_handler_and_a_queue():
    assert set(KINDS) == set(JobKind)
    for kind, spec in KINDS.items():
        assert handler_for(kind) is spec.handler
        assert queue_for(str(kind)) is spec.queue
    assert set(QUEUES) == set(Queue)


def test_handlers_are_loaded_when_the_table_is_imported():
    code = "from shared.registry import handler_for; print(type(handler_for('cogs_run')).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "CogsRun"


def test_celery_declares_the_tables_queues_and_one_task_per_kind():
    from worker.celery_app import app
    from worker.publisher import task_name

    assert {q.name for q in app.conf.task_queues} == {str(q) for q in QUEUES}
    import worker.tasks.jobs  # noqa: F401 - registers the tasks

    registered = set(app.tasks)
    assert {task_name(kind) for kind in JobKind} <= registered


def test_the_stack_and_the_deploy_manifests_run_workers_on_every_queue():
    from shared.stack import ALL_QUEUES, WORKER_POOLS

    expected = {str(q) for q in QUEUES}
    assert set(ALL_QUEUES.split(",")) == expected
    pooled = [set(queues.split(",")) for _, queues, _ in WORKER_POOLS]
    assert set().union(*pooled) == expected, "asora up starts workers on another set of queues"
    assert sum(len(p) for p in pooled) == len(expected), "a queue is served by two pools of asora up"

    compose = yaml.safe_load((ROOT / "deploy/docker-compose.yml").read_text())
    commands = [s["command"] for s in compose["services"].values() if "worker" in s.get("command", [])]
    worker_queues = [_queue_lists(c) for c in commands]
    assert worker_queues and set().union(*worker_queues) == expected

    k8s = [d for d in yaml.safe_load_all((ROOT / "deploy/k8s/asora.yaml").read_text()) if d]
    commands = [
        c["command"]
        for d in k8s
        if d["kind"] == "Deployment"
        for c in d["spec"]["template"]["spec"]["containers"]
        if "worker" in c["command"]
    ]
    assert commands and set().union(*(_queue_lists(c) for c in commands)) == expected
    assert all(re.fullmatch(r"[a-z,]+", c[c.index("-Q") + 1]) for c in commands)
