"""Entry point for ``python -m mailticket``."""

from mailticket.cli import main

raise SystemExit(main())
