"""Bytes <-> messages. Nothing in this package touches the database."""
