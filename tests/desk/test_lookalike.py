"""The look-alike rule (desk/lookalike.py) as a table: subject and body in, topic keys out."""

from __future__ import annotations

import pytest

from mailticket.config.outages import Application
from mailticket.desk.lookalike import significant_words, topics

APPS = (Application("records", names=("records system", "RMS")), Application("mail"))


@pytest.mark.parametrize(("subject", "body", "keys"), [
    # a configured application, as a phrase of whole words, in the subject or the body
    ("RMS is down", "", ["application:records"]),
    ("Cannot log in", "The Records  System says error 500.", ["application:records"]),
    ("Re: [DESK #4] records system???", "", ["application:records"]),
    ("RMSX is down", "", ["word:rmsx"]),  # whole words only
    ("Mail and RMS both down", "", ["application:records", "application:mail"]),
    # otherwise pairs of significant subject words (stop words, numbers, short words out)
    ("Printer on floor 3 prints blank pages", "",
     ["words:floor printer", "words:print printer", "words:blank printer", "words:page printer",
      "words:floor print", "words:blank floor", "words:floor page", "words:blank print",
      "words:page print", "words:blank page"]),
    ("VPN not working", "", ["word:vpn"]),
    ("VPN not working", "so the records system is out of reach", ["application:records"]),
    ("Help! Urgent problem, please", "", []),
    ("BT-b00042 12345", "", []),
    ("", "records system", ["application:records"]),
])
def test_topics(subject, body, keys):
    assert [t.key for t in topics(subject, body, APPS)] == keys


def test_two_subjects_that_share_two_words_share_a_key_and_unlike_ones_do_not():
    def keys(subject):
        return {t.key for t in topics(subject, "Hello desk, thanks, Ann", ())}

    assert keys("Timesheet portal login fails") & keys("Cannot login to timesheet portal")
    assert not keys("Timesheet portal login fails") & keys("Printer jammed on floor 2")
    assert not keys("Password reset") & keys("Password expired for VPN")  # one word in common


def test_significant_words_keep_order_fold_case_and_stop_at_the_limit():
    assert significant_words("Zoë's Drucker druckt nicht – Grüße") == [
        "zoë", "drucker", "druckt", "nicht", "grüsse"]
    assert significant_words("one two three four five six seven eight", limit=3) == [
        "one", "two", "three"]
