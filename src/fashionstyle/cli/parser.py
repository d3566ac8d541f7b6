"""The argument parser: a refused command line is one line, with a suggestion for a near miss."""
from __future__ import annotations

import argparse
import difflib
from typing import Any, NoReturn, Sequence


class UsageError(Exception):
    """A command line argparse refuses, as one line (argparse would print the whole usage first)."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message}; see {self.prog} --help")

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> argparse.Namespace:
        self._refuse_unknown_command(args)
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = self._command_parser(getattr(parsed, "command", None))
            hints = [did_you_mean(u, command) for u in unknown]
            command.error(f"unrecognized arguments: {' '.join(unknown)}" + "".join(h for h in hints if h))
        return parsed

    def _refuse_unknown_command(self, args: Sequence[str] | None) -> None:
        """`fashionstyle trian`: 'unknown command trian (did you mean train?)' before argparse's long list."""
        commands = self._commands()
        first = next((a for a in (args or []) if not a.startswith("-")), None)
        if first is None or not commands or first in commands:
            return
        close = difflib.get_close_matches(first, list(commands), n=2, cutoff=0.6)
        hint = f" (did you mean {' or '.join(close)}?)" if close else f"; the commands: {', '.join(commands)}"
        self.error(f"unknown command {first!r}{hint}")

    def _commands(self) -> dict[str, argparse.ArgumentParser]:
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                return dict(action.choices)
        return {}

    def _command_parser(self, command: str | None) -> argparse.ArgumentParser:
        return self._commands().get(command, self) if command else self


def did_you_mean(token: str, parser: argparse.ArgumentParser) -> str:
    """' (did you mean --image-size?)' for a flag close to one of `parser`'s, else ''."""
    if not token.startswith("-"):
        return ""
    flags = [o for a in parser._actions for o in a.option_strings if a.help != argparse.SUPPRESS]
    close = difflib.get_close_matches(token.split("=")[0], flags, n=2, cutoff=0.7)
    return f" (did you mean {' or '.join(close)}?)" if close else ""
