"""The desk: the domain. Tickets and their lifecycle (``tickets.Desk``), agents' commands, the
timed jobs (SLA checks, auto-close), and the read-only queries the CLI, jobs and reports share."""
