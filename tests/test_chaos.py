"""Never lose, never duplicate (issue 3): mail arrives by IMAP while the daemon is killed with
SIGKILL at random moments and started again; after a last clean run every request is on exactly
one ticket, every follow-up on the ticket it answers, INBOX is empty and every request was
acknowledged. A small version of ``bench/chaos.py`` (same workload and counting:
tests/servers/chaos.py)."""

from __future__ import annotations

import pytest

from tests.servers.chaos import KILL_KINDS, ChaosRun, tail

pytestmark = pytest.mark.integration

MESSAGES = 60
KILLS = 7  # one of each kind (tests/servers/chaos.py KILL_KINDS)


def test_sigkill_loses_and_duplicates_nothing(tmp_path, database_url, fresh_mailbox, smtp_sink):
    run = ChaosRun(tmp_path, database_url, fresh_mailbox, smtp_sink, messages=MESSAGES,
                   kills=KILLS, seed=3, log=print)
    try:
        tally = run.run()
    finally:
        run.stop()
        if run.daemon is not None:
            print(f"--- {run.daemon.log.name} ---\n{tail(run.daemon.log_text(), 40)}")
    print(tally.table())  # shown by pytest when the test fails

    assert tally.kills == KILLS and set(tally.kill_kinds) == set(KILL_KINDS)
    assert tally.unexpected_exits == 0 and tally.final_exit_code == 0
    assert tally.messages_in == MESSAGES and tally.duplicate_ids > 0 and tally.follow_ups > 0

    assert tally.lost_tokens == []
    assert tally.tickets_created == tally.tickets_expected == tally.requests
    assert tally.requests_on_a_ticket == tally.requests
    assert tally.duplicated_tickets == 0 and tally.unexpected_tickets == 0
    assert tally.duplicate_extra_tickets == 0 and tally.messages_recorded_twice == 0
    assert tally.follow_ups_attached == tally.follow_ups and tally.follow_ups_misattached == 0

    assert tally.inbox_left == 0
    assert tally.quarantined == 0
    assert tally.acks_delivered == tally.acks_expected  # at least once
    assert tally.acks_second == 0 and tally.acks_wrong_ticket == 0
    assert tally.outbox_unsent == 0
    assert tally.ok, tally.problems
