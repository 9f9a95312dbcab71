"""Is the sender's address vouched for? Authentication-Results (RFC 8601) from our own servers.

Only headers whose authserv-id is one the admin trusts count (``trusted_authserv_ids``): the
site's border MTA adds them and, as RFC 8601 section 5 asks, removes any that arrive with its id,
so a sender cannot forge them. A pass counts when it is about the From domain: DKIM ``pass``
with ``header.d`` (or ``header.i``) the From domain or a parent of it, SPF ``pass`` with
``smtp.mailfrom`` in the From domain, or DMARC ``pass`` with ``header.from`` the From domain.
"""

from __future__ import annotations

import re

from mailticket.mail.parse import ParsedMail

__all__ = ["vouched_by"]

_COMMENT = re.compile(r"\([^()]*\)")
_RESULT = re.compile(r"^\s*([a-z0-9_-]+)\s*=\s*([a-z]+)\b(.*)$", re.IGNORECASE | re.DOTALL)
_PROPERTY = re.compile(r"([a-z0-9_-]+\.[a-z0-9_-]+)\s*=\s*(\"[^\"]*\"|[^\s;]+)", re.IGNORECASE)


def _strip_comments(value: str) -> str:
    for _ in range(5):  # nested comments: peel a few levels, no more
        value = _COMMENT.sub(" ", value)
    return value


def _domain(value: str) -> str:
    value = value.strip().strip('"').lower().rstrip(".")
    return value.rpartition("@")[2]


def _aligned(domain: str, sender_domain: str) -> bool:
    return bool(domain) and (sender_domain == domain or sender_domain.endswith("." + domain))


def vouched_by(mail: ParsedMail, trusted_ids: frozenset[str]) -> str | None:
    """Why the From address is authenticated, e.g. "dkim=pass header.d=example.org (by
    mx.example.org)"; None when no trusted server vouches for it."""
    if mail.sender is None or not trusted_ids:
        return None
    sender_domain = mail.sender.key.rpartition("@")[2]
    trusted = {t.lower() for t in trusted_ids}
    for header in mail.headers.get("authentication-results", ())[:20]:
        text = _strip_comments(header[:4000])
        authserv, _, rest = text.partition(";")
        authserv_id = authserv.strip().split()[0].lower() if authserv.strip() else ""
        if authserv_id not in trusted:
            continue
        for resinfo in rest.split(";"):
            reason = _pass_about(resinfo, sender_domain)
            if reason is not None:
                return f"{reason} (by {authserv_id})"
    return None


def _pass_about(resinfo: str, sender_domain: str) -> str | None:
    """The pass one result of an Authentication-Results field reports about the From domain."""
    match = _RESULT.match(resinfo)
    if match is None:
        return None
    method, result, props_text = match.group(1).lower(), match.group(2).lower(), match.group(3)
    if result != "pass":
        return None
    props = {k.lower(): v for k, v in _PROPERTY.findall(props_text)}
    if method == "dkim":
        signer = props.get("header.d") or props.get("header.i") or ""
        if _aligned(_domain(signer), sender_domain):
            return f"dkim=pass header.d={_domain(signer)}"
    elif method == "spf":
        envelope = props.get("smtp.mailfrom", "")
        if _aligned(_domain(envelope), sender_domain):
            return f"spf=pass smtp.mailfrom={_domain(envelope)}"
    elif method == "dmarc":
        if _domain(props.get("header.from", "")) == sender_domain:
            return f"dmarc=pass header.from={sender_domain}"
    return None
