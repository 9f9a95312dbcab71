"""The IMAP source: ``ImapSource`` reads one mailbox (source.py) through thin IMAPClient
commands (commands.py), waiting for new mail with IDLE or polling (idle.py).
"""

from mailticket.intake.imap.source import ImapSource

__all__ = ["ImapSource"]
