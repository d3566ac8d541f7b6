"""The one exception type for errors a user can cause."""
from __future__ import annotations


class FashionStyleError(ValueError):
    """A bad input: the message says what, where, and the valid choices.

    The CLI prints it on one line and exits non-zero, without a traceback.
    """
