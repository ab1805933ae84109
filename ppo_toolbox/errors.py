"""The exceptions that end a run with one line instead of a traceback. Imports nothing."""


class UsageError(Exception):
    """A mistake in how the program was called, or a file it was given: one line, exit code 2."""


class TrainingDiverged(Exception):
    """A loss or a weight became NaN or infinite."""


class Damaged(Exception):
    """A file that is not what a .param file holds; the message says what is wrong."""


class Refused(Damaged):
    """A file that asks to run code or build objects a .param file never holds."""


class NotParam(Damaged):
    """A file that is not a pickle at all (a text file, an image): no .param file of any kind."""
