"""The portal's links on a real database: signed, bound to one address and one ticket (or to
a nonce), expiring by the desk's clock, and revoked per address."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailticket.db import transaction
from mailticket.portal.links import CONFIRM, SIGN_IN, TICKET, LinkRefused
from mailticket.wiring import build
from tests.helpers import Clock, settings_for

WEB = "web: {listen: '127.0.0.1:8080', base_url: 'https://desk.example.org/help'}\n"


@pytest.fixture
def app(tmp_path, database_url):
    made = build(settings_for(tmp_path, database_url, extra=WEB), clock=Clock())
    yield made
    made.close()


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_ticket_link_points_at_base_url_and_proves_one_address_and_one_ticket(app):
    url = app.links.ticket_link("Ann@Example.org", 41)
    assert url.startswith("https://desk.example.org/help/t/")
    grant = app.links.ticket_grant(token_of(url))
    assert (grant.address, grant.ticket) == ("ann@example.org", 41)


def test_no_changed_character_makes_the_link_mean_anything_else(app):
    """Every change is refused, except where base64's spare low bits of a last character
    decode to the very same bytes: then it is the same link, for the same ticket."""
    token = token_of(app.links.ticket_link("ann@example.org", 41))
    original = app.links.ticket_grant(token)
    refused_count = 0
    for i in range(len(token)):
        for replacement in "AQw-_9":
            if replacement == token[i]:
                continue
            changed = token[:i] + replacement + token[i + 1:]
            try:
                grant = app.links.ticket_grant(changed)
            except LinkRefused as refused:
                refused_count += 1
                assert refused.why == "invalid", (i, replacement, refused.why)
            else:
                assert grant == original
    assert refused_count > len(token) * 4


def test_a_link_of_one_kind_is_no_link_of_another(app):
    ticket = token_of(app.links.ticket_link("ann@example.org", 41))
    sign_in = token_of(app.links.nonce_link(SIGN_IN, "n1", "ann@example.org"))
    for kind, token in ((SIGN_IN, ticket), (CONFIRM, sign_in), (TICKET, sign_in)):
        with pytest.raises(LinkRefused, match="invalid"):
            app.links.read(kind, token)


def test_a_link_made_with_another_desks_key_is_refused(app, tmp_path, database_url):
    token = token_of(app.links.ticket_link("ann@example.org", 41))
    app.links._key = b"another desk's key"
    with pytest.raises(LinkRefused, match="invalid"):
        app.links.ticket_grant(token)


def test_ticket_links_expire_after_their_lifetime_and_say_what_they_were_for(app):
    clock = app.mailer.clock
    token = token_of(app.links.ticket_link("ann@example.org", 41))
    assert app.links.ticket_lifetime == timedelta(days=30)  # the reopen window, by default
    clock.now += timedelta(days=29, hours=23)
    assert app.links.ticket_grant(token).ticket == 41
    clock.now += timedelta(hours=2)
    with pytest.raises(LinkRefused) as refused:
        app.links.ticket_grant(token)
    assert (refused.value.why, refused.value.address, refused.value.ticket) == (
        "expired", "ann@example.org", 41)


def test_sign_in_links_live_for_minutes(app):
    clock = app.mailer.clock
    token = token_of(app.links.nonce_link(SIGN_IN, "nonce-1", "ann@example.org"))
    clock.now += timedelta(minutes=14)
    assert app.links.read(SIGN_IN, token) == {"n": "nonce-1", "g": 0}
    clock.now += timedelta(minutes=2)
    with pytest.raises(LinkRefused, match="expired"):
        app.links.read(SIGN_IN, token)


def test_revoking_an_address_refuses_its_links_made_before_and_no_one_elses(app):
    ann = token_of(app.links.ticket_link("ann@example.org", 41))
    bob = token_of(app.links.ticket_link("bob@example.org", 41))
    ann_sign_in = app.links.read(SIGN_IN, token_of(app.links.nonce_link(
        SIGN_IN, "n1", "ann@example.org")))
    app.links.check_nonce_link(ann_sign_in, "ann@example.org")
    with transaction(app.db):
        assert app.links.revoke("ANN@example.org") == 1
    with pytest.raises(LinkRefused, match="revoked"):
        app.links.check_nonce_link(ann_sign_in, "ann@example.org")
    with pytest.raises(LinkRefused) as refused:
        app.links.ticket_grant(ann)
    assert (refused.value.why, refused.value.ticket) == ("revoked", 41)
    assert app.links.ticket_grant(bob).address == "bob@example.org"
    fresh = token_of(app.links.ticket_link("ann@example.org", 41))
    assert app.links.ticket_grant(fresh).generation == 1
    with transaction(app.db):
        app.links.revoke("ann@example.org")
    with pytest.raises(LinkRefused, match="revoked"):
        app.links.ticket_grant(fresh)


def test_the_key_is_the_databases_and_survives_a_restart(app, tmp_path, database_url):
    token = token_of(app.links.ticket_link("ann@example.org", 41))
    other = build(settings_for(tmp_path, database_url, extra=WEB), clock=Clock())
    try:
        assert other.links is not app.links
        assert other.links.ticket_grant(token).ticket == 41
    finally:
        other.close()
