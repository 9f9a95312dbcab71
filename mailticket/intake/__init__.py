"""Mail coming in: the sources (IMAP, SMTP/LMTP), routing and the one-transaction pipeline."""
