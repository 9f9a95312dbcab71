"""The web section as an admin writes it: defaults, bad values with keyed errors, and
check-config compiling the page templates (an admin's override included)."""

from __future__ import annotations

import pytest

from mailticket import cli
from mailticket import config as configmod
from mailticket.errors import ConfigError
from tests.helpers import settings_for, write_config


def test_defaults_follow_the_listen_address_and_the_reopen_window(tmp_path):
    settings = settings_for(tmp_path, "sqlite:///x.db", extra="web: {listen: '[::1]:8081'}\n")
    web = settings.web
    assert (web.host, web.port, web.base_url) == ("::1", 8081, "http://[::1]:8081")
    assert web.ticket_link_days is None and web.sign_in_minutes == 15 and not web.secure
    assert settings_for(tmp_path, "sqlite:///x.db").web is None  # no section: no portal


@pytest.mark.parametrize("web, problem", [
    ("{base_url: 'ftp://desk.example.org'}", "web.base_url: expected http://HOST"),
    ("{base_url: 'https://desk.example.org/?next=x'}", "web.base_url: expected http://HOST"),
    ("{listen: 'everywhere'}", "web.listen: expected HOST:PORT"),
    ("{sign_in_minutes: 0}", "web.sign_in_minutes: must be at least 1"),
    ("{ticket_link_days: many}", "web.ticket_link_days: expected an integer"),
    ("{bind: '127.0.0.1:8080'}", "web.bind: unknown key"),
])
def test_bad_web_values_name_the_key(tmp_path, web, problem):
    with pytest.raises(ConfigError) as error:
        settings_for(tmp_path, "sqlite:///x.db", extra=f"web: {web}\n")
    assert problem in str(error.value)


def test_https_base_url_makes_cookies_secure(tmp_path):
    settings = settings_for(tmp_path, "sqlite:///x.db",
                            extra="web: {base_url: 'https://desk.example.org/'}\n")
    assert settings.web.base_url == "https://desk.example.org" and settings.web.secure


def test_check_config_compiles_the_pages_and_names_a_broken_override(tmp_path, capsys):
    override = tmp_path / "templates" / "web"
    override.mkdir(parents=True)
    config = write_config(tmp_path, f"sqlite:///{tmp_path / 'x.db'}",
                          extra="web: {listen: '127.0.0.1:8080'}\n")
    assert cli.main(["--config", str(config), "check-config"]) == 0
    (override / "home.html.j2").write_text('{% extends "base.html.j2" %}{% block main %}'
                                           "{{ oops( }}{% endblock %}")
    config.write_text(config.read_text() + f"templates: {tmp_path / 'templates'}\n")
    configmod.load(config, environ={})
    assert cli.main(["--config", str(config), "check-config"]) == cli.EXIT_CONFIG
    err = capsys.readouterr().err
    assert "templates: web/home.html.j2, line 1:" in err and "Traceback" not in err
