"""Outages on the portal in a real browser (tests/portal/test_portal_browser.py's way): the
banner on a ticket's page and the status page pass axe-core's check on a laptop and a phone, fit
the window, keep the Content-Security-Policy with nothing refused, and the status page is
reached from the header with no sign-in and no JavaScript."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mailticket.db import transaction
from tests.portal.test_portal_browser import (  # noqa: F401 (fixtures)
    ANN,
    LAPTOP,
    PHONE,
    Tour,
    arrive,
    browsing,
    heading,
    ticket_link,
)

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("viewport", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_the_banner_and_the_status_page_pass_axe_and_keep_the_csp(portal, browsing, viewport):
    with transaction(portal.app.db):
        portal.app.desk.open_outage(
            "ada", "Records system down for every agency since this morning",
            applications=["records"], public_text="Searches fail with error RMS-0042.\n"
            "We expect it back by noon; you do not need to write again.")
    number = arrive(portal, "RMS search fails", "The records search shows an error.")
    tour = Tour()

    page = browsing.page(viewport=viewport)
    page.goto(ticket_link(portal, number))
    expect(heading(page)).to_contain_text(f"#{number}")
    banner = page.get_by_role("region", name="Known problems")
    expect(banner).to_contain_text("Records system down")
    expect(banner).to_contain_text("Searches fail with error RMS-0042.")
    tour.check("ticket with the banner", page)

    visitor = browsing.page(viewport=viewport)  # signed out, another browser
    visitor.goto(portal.base + "/")
    tour.check("home with the banner", visitor)
    visitor.get_by_role("navigation").get_by_role("link", name="Service status").click()
    expect(heading(visitor)).to_have_text("Service status")
    expect(visitor.get_by_role("heading", level=2)).to_contain_text("Records system down")
    expect(visitor.get_by_text("Ongoing")).to_be_visible()
    tour.check("status page", visitor)

    assert not tour.problems, tour.report()
    assert not browsing.csp_reports(), "\n".join(browsing.csp_reports())
    assert not browsing.pages_without_the_policy()
