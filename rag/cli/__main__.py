"""`python -m rag.cli`: the rag command line."""

from rag.cli.commands import main

raise SystemExit(main())
