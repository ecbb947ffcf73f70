"""Errors that end a command with one clear sentence instead of a traceback."""


class FlywheelError(Exception):
    """A failure the user can act on: the message says what failed and what to do."""


class SpecError(FlywheelError):
    """A dataset spec file is invalid; the message names the file, the field and the reason."""


class StackError(FlywheelError):
    """The embedded stack could not be started, stopped or reached."""


class LakeError(FlywheelError):
    """A lakeFS call or a lakeFS URI failed; the message names the call or URI and what to do."""
