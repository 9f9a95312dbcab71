"""The agency and county directory: who the sponsor, registrar or JTAC is for a user, agency or
county, read from one YAML or CSV file the admin keeps.

It knows nothing of tickets or the database. The file formats, the look-up rules and the checks
are documented in config/directory.example.yaml (and, for CSV, in ``csv_form``).
"""

from mailticket.config.directory.checks import DirectoryError
from mailticket.config.directory.entries import Agency, Answer, Contact, County
from mailticket.config.directory.lookups import Directory

__all__ = ["Agency", "Answer", "Contact", "County", "Directory", "DirectoryError"]
