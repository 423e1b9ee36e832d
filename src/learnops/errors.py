"""Errors a user can fix; the CLI prints them as one line, without a traceback."""


class LearnopsError(Exception):
    """A user-facing error: bad input, missing data, refused operation.

    ``details``: further lines the CLI prints under the one-line message (e.g. the bad rows of
    an import, each with its line number), never a traceback."""

    def __init__(self, message: str = "", details: list[str] | None = None) -> None:
        super().__init__(message)
        self.details = list(details or [])


class NoTrainingData(LearnopsError):
    """The export window holds no rows."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("No training data available" + (f": {detail}" if detail else ""))


class TrainingInProgress(LearnopsError):
    """Another retrain holds the lock."""

    def __init__(self) -> None:
        super().__init__("Training already in progress")
