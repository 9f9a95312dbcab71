"""The desk: the ticket lifecycle and the domain rules (escalation, SLAs and reports come later)."""
