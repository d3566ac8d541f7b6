"""The command line: `fashionstyle <command>`, one module per command (see main.py)."""
from fashionstyle.cli.main import COMMANDS, build_parser, main

__all__ = ["COMMANDS", "build_parser", "main"]
