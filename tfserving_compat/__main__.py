"""`python -m tfserving_compat`."""

from tfserving_compat.cli import main

raise SystemExit(main())
