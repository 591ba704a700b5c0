"""The Linux kernel dataplane: bridges, VXLAN, FDB and neighbour entries.

render (plan -> DesiredState, pure) -> observe (kernel -> ObservedState) -> diff (pure ChangeSet)
-> apply (`ip -batch` / `bridge -batch`). `LinuxDriver` strings them together.
"""

from kvnet.dataplane.linux.driver import LinuxDriver

__all__ = ["LinuxDriver"]
