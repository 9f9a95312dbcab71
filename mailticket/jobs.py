"""The timed jobs, one table: each job's name, how often the scheduler runs it, what it does,
and the function (``desk.jobs`` for the SLA and auto-close, ``reports.runner`` for the status
reports). ``run_job`` runs one as at a given moment and records when it ran (``jobs list``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import peewee

from mailticket.db import transaction
from mailticket.desk.jobs import auto_close, sla_check
from mailticket.desk.outages import resume_resolves
from mailticket.desk.spikes import sweep_spikes
from mailticket.desk.tickets import Desk
from mailticket.models import Setting
from mailticket.reports.runner import run_due

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_seconds: int
    description: str
    run: Callable[[Desk, peewee.Database, datetime], str]


JOBS = {
    "sla-check": Job("sla-check", 60, "warn groups before the first-response target, alert the "
                     "service lead on a breach", sla_check),
    "auto-close": Job("auto-close", 300, "close resolved tickets the user did not answer within "
                      "sla.verify_close_after", auto_close),
    "outage-resolve": Job("outage-resolve", 60, "finish resolving outages left resolving "
                          "(e.g. by a process stopped mid-resolve)", resume_resolves),
    "spike-sweep": Job("spike-sweep", 300, "let spikes that stopped standing go (expired, or "
                       "their outage resolved) and delete topics older than outages.spike.within",
                       sweep_spikes),
    "reports": Job("reports", 60, "send each status report once per slot (late within "
                   "reports.grace, else skipped)", run_due),
}


def run_job(name: str, desk: Desk, db: peewee.Database, now: datetime) -> str:
    """Run one job as at ``now`` and record when it ran (for ``jobs list``)."""
    # What the job changes on tickets is dated as at ``now`` (history, closed_at); the mail it
    # queues is due at once all the same (the outbox keeps the real clock).
    result = JOBS[name].run(desk.as_at(now), db, now)
    with transaction(db):
        key = f"job:{name}:last_run"
        value = f"{now.isoformat(timespec='seconds')} {result}"
        # An upsert: two daemons finishing the same job at once must not collide.
        (Setting.insert(name=key, value=value)
         .on_conflict(conflict_target=[Setting.name], update={Setting.value: value}).execute())
    log.info("job %s as at %s: %s", name, now.isoformat(timespec="seconds"), result)
    return result


def last_run(name: str) -> str | None:
    row = Setting.get_or_none(Setting.name == f"job:{name}:last_run")
    return row.value if row else None
