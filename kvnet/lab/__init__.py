"""An emulated multi-host cloud in network namespaces (see docs/lab.md and `kvnet.lab.names`)."""

from kvnet.lab.lab import DownReport, Lab, LabError
from kvnet.lab.spec import HostSpec, LabSpec, default_spec

__all__ = ["DownReport", "HostSpec", "Lab", "LabError", "LabSpec", "default_spec"]
