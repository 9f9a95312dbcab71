"""Tests of the status report: its figures on a seeded database and its rendering."""
