"""Errors a user can act on, and the exit codes the `wit` command returns."""

EXIT_OK = 0
EXIT_FAILED = 1  # an unexpected failure: a bug, or a stage that broke mid-way (see the traceback)
EXIT_BAD_INPUT = 2  # the input or the command line is wrong: the message says what to fix
EXIT_INTERRUPTED = 130  # Ctrl-C; finished shards are kept and a rerun resumes


class WitError(Exception):
    """A problem with the user's input, reported as a message and a hint, never a traceback."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message
