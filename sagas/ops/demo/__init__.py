"""`sagas demo`: the whole system on this machine, driven end to end."""

from sagas.ops.demo.command import add_parser

__all__ = ["add_parser"]
