"""The desk: the ticket lifecycle (new -> open -> resolved -> closed, and reopened), every change
an event, and the mail each change causes queued in the same transaction.

``Desk`` is assembled from the parts that own each side of the work: ``mail_in.MailIn`` (what
intake's decisions do), ``agent_work.AgentWork`` (what agents do, from the CLI or by mail) and
``agent_mail.AgentMail`` (commands in an agent's mail), ``outages.OutageWork`` (outages
and their tickets; ``spikes.SpikeOutages``, one opened from a spike) and
``user_work.UserWork`` (what users do on the portal besides writing), all standing on
``core.DeskCore``; ``MailIn`` stands on ``spikes.SpikeWatch`` (spike detection at intake).
It is called inside the caller's transaction and never commits.
"""

from __future__ import annotations

from mailticket.desk.agent_mail import AgentMail
from mailticket.desk.core import Arrival
from mailticket.desk.mail_in import MailIn
from mailticket.desk.spikes import SpikeOutages
from mailticket.desk.user_work import UserWork

__all__ = ["Arrival", "Desk"]


class Desk(MailIn, AgentMail, SpikeOutages, UserWork):
    """Every operation on tickets; the pipeline, the CLI, the jobs and the reports call it."""
