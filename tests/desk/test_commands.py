"""The command lines at the top of an agent's mail."""

from __future__ import annotations

import pytest

from mailticket.desk.commands import split_commands


def test_commands_at_the_top_are_taken_off_and_the_rest_kept():
    commands, text = split_commands("#assign alice\n\n#Escalate network the switch\n"
                                    "Hello Ann,\n\nfixed.\n> #close (quoted)\n")
    assert [(c.name, c.argument, c.known) for c in commands] == [
        ("assign", "alice", True), ("escalate", "network the switch", True)]
    assert text == "Hello Ann,\n\nfixed.\n> #close (quoted)"


@pytest.mark.parametrize("body", ["Hello\n#assign x", "#42 is broken", "# heading", "", "\n\n"])
def test_text_that_is_no_command_stays_text(body):
    commands, text = split_commands(body)
    assert commands == [] and text == body.strip("\n")


def test_unknown_commands_are_kept_to_be_reported():
    [command], text = split_commands("#frobnicate now\nhi")
    assert (command.name, command.known, command.line, text) == ("frobnicate", False,
                                                                  "#frobnicate now", "hi")


def test_a_mail_of_commands_only_has_no_text():
    commands, text = split_commands("#resolve\n#comment\n")
    assert [c.name for c in commands] == ["resolve", "comment"] and text == ""


def test_the_command_table_is_what_split_and_the_listings_know():
    from mailticket.desk.commands import COMMANDS, command_help

    [command], _ = split_commands("#Assign nora\ntext")
    assert command.known and command.name in COMMANDS
    assert [line.split(":")[0].split()[0] for line in command_help()] == [
        f"#{name}" for name in COMMANDS]
    assert set(COMMANDS) == {"assign", "escalate", "resolve", "close", "status", "comment",
                             "outage", "incident"}
