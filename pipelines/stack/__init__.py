"""The embedded stack: real servers started as local processes on 127.0.0.1, state under `.flywheel/`."""

from pipelines.stack.manager import Stack, StackStatus

__all__ = ["Stack", "StackStatus"]
