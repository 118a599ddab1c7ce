"""``python -m compressopt``: the command line of :mod:`compressopt.cli`."""

from compressopt.cli import main

raise SystemExit(main())
