"""The rag command line: a thin edge that parses arguments and calls the library."""

from rag.cli.commands import main, rebuild_main

__all__ = ["main", "rebuild_main"]
