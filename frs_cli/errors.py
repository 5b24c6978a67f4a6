"""Domain errors. The core raises these; the CLI turns them into one line and an exit code."""

from __future__ import annotations

# Exit codes, documented in README and docs/design.md.
EXIT_OK = 0
EXIT_FAILURE = 1  # nothing could be done
EXIT_USAGE = 2  # Click's own code for bad usage
EXIT_PARTIAL = 3  # some inputs failed, the rest were processed


class FrsError(Exception):
    """An error the user can act on. `str(err)` is the whole message."""

    exit_code = EXIT_FAILURE


class UsageError(FrsError):
    exit_code = EXIT_USAGE


class ModelsMissing(FrsError):
    pass


class WatchlistError(FrsError):
    pass


class InputError(FrsError):
    """One input (a video or a photo) could not be used. Other inputs carry on."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def internal_error(err: BaseException) -> str:
    """The one line an unforeseen exception becomes (never a traceback unless asked)."""
    text = str(err).splitlines()[0] if str(err) else ""
    what = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return f"internal error ({what}); FRS_DEBUG=1 shows the traceback"


class OutputError(FrsError):
    """The output could not be written (a full disk), or its reader went away (`closed`:
    `frs scan ... | head -1`). The scan stops; what was written before stays whole."""

    def __init__(self, message: str, closed: bool = False):
        super().__init__(message)
        self.closed = closed


EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT
EXIT_PIPE_CLOSED = 141  # stdout's reader went away, as shells report SIGPIPE
