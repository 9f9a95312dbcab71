"""Keyed tokens in our Message-IDs: only the desk's key makes one that verifies."""

from __future__ import annotations

import pytest

from mailticket.mail import tokens

KEY = bytes(range(32))


def test_a_token_names_its_ticket_and_is_a_valid_message_id():
    made = tokens.message_id(KEY, "desk.example.org", 42)
    assert made.startswith("<mt.42.") and made.endswith("@desk.example.org>")
    assert tokens.ticket_of(KEY, made) == 42
    assert tokens.ticket_of(KEY, f"  {made.upper()}  ") == 42  # clients may change case
    assert tokens.message_id(KEY, "desk.example.org", 42) != made  # a fresh nonce each time


def test_mail_about_no_ticket_names_none():
    assert tokens.ticket_of(KEY, tokens.message_id(KEY, "d.example", None)) is None


@pytest.mark.parametrize("value", [
    "", "<>", "<mt.42@x>", "<m1@example.org>", "<mt.42.zzzzzzzzzzzz.0123456789abcdef0123@x>",
    "<mt.42.0123456789ab.0123456789abcdef0123@x>", "mt.42.0123456789ab.0123456789abcdef0123@x",
    "<mt.999999999999999.0123456789ab.0123456789abcdef0123@x>",
])
def test_anything_else_names_no_ticket(value):
    assert tokens.ticket_of(KEY, value) is None


def test_changing_any_part_breaks_the_token():
    made = tokens.message_id(KEY, "d.example", 7)
    number, nonce, mac = made[1:].split("@")[0].split(".")[1:]
    for forged in (f"<mt.8.{nonce}.{mac}@d.example>",
                   f"<mt.7.{nonce[:-1]}{'0' if nonce[-1] != '0' else '1'}.{mac}@d.example>",
                   f"<mt.7.{nonce}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}@d.example>"):
        assert tokens.ticket_of(KEY, forged) is None
    assert tokens.ticket_of(b"another key", made) is None
