"""A local emulator of the Gcore snapshot API, for the demo, the tests and rehearsals."""

from batchtag.sandbox.app import SandboxConfig, make_app
from batchtag.sandbox.server import SandboxServer, serve
from batchtag.sandbox.store import SnapshotStore

__all__ = ["SandboxConfig", "SandboxServer", "SnapshotStore", "make_app", "serve"]
