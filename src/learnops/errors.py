"""Errors a user can fix; the CLI prints them as one line, without a traceback."""


class LearnopsError(Exception):
    """A user-facing error: bad input, missing data, refused operation."""


class NoTrainingData(LearnopsError):
    """The export window holds no rows."""

    def __init__(self, detail: str = "") -> None:
        super().__init__("No training data available" + (f": {detail}" if detail else ""))


class TrainingInProgress(LearnopsError):
    """Another retrain holds the lock."""

    def __init__(self) -> None:
        super().__init__("Training already in progress")
