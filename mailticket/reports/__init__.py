"""The desk's status reports: figures gathered from the database for a period
(``figures.gather``), rendered to a multipart mail by the ``report`` templates (``render.render``).

Nothing here sends or schedules: the scheduler and the command line decide the period and the
recipients, and queue what ``render`` returns.
"""
