"""The table of what each routing action does: every action route can decide has its desk
operation, except QUARANTINE, which the pipeline keeps aside and never hands to the desk."""

from __future__ import annotations

from mailticket.intake.apply import OPERATIONS
from mailticket.intake.route import Action


def test_every_action_but_quarantine_has_a_desk_operation():
    assert set(OPERATIONS) == set(Action) - {Action.QUARANTINE}
