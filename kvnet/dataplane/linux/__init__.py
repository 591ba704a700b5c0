"""The Linux kernel dataplane: bridges, VXLAN, FDB and neighbour entries.

render (plan -> DesiredState, pure) -> observe (kernel -> ObservedState) -> diff (pure ChangeSet)
-> apply (`ip -batch` / `bridge -batch`). `LinuxDriver` runs its managers in order (`LinuxDriver.phases`):
redirects, routers, L2, bridge limits, pins, redirects again, FIP announcements.
"""

from kvnet.dataplane.linux.driver import LinuxDriver

__all__ = ["LinuxDriver"]
