"""A local Conversions API endpoint for demos, tests and users without a Meta account."""

from target_meta_capi.sandbox.faults import GraphErrorFault
from target_meta_capi.sandbox.server import SandboxConfig, SandboxServer

__all__ = ["GraphErrorFault", "SandboxConfig", "SandboxServer"]
