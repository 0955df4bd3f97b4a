"""`batchtag sandbox`: the command lives with the emulator (batchtag.sandbox.cli)."""

from batchtag.sandbox.cli import sandbox_command

__all__ = ["sandbox_command"]
