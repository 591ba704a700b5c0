"""Whether this host's stateful filter can see bridged traffic at all.

The security groups' rules live in an inet table, which sees bridged frames only through br_netfilter
with `net.bridge.bridge-nf-call-iptables` (and `-ip6tables`) at 1 (this kernel has no nf_conntrack_bridge).
A hypervisor where that is off would forward every frame past the rules: fail open. So before the
filter tables are written the agent makes sure it is on (setting it, loading br_netfilter if it has
to); if it cannot, the filtered ports are left out of the tables' known ports -- their frames are
dropped (fail closed) -- and reported ERROR with the reason.
"""

from __future__ import annotations

from kvnet.sys.cmd import in_netns
from kvnet.sys.runner import Runner

KEYS = ("net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables")


def ensure(runner: Runner, netns: str | None) -> str | None:
    """None when bridged frames reach the inet hooks; else why not (after trying to turn it on)."""
    if _on(runner, netns):
        return None
    runner.run(["modprobe", "br_netfilter"])  # the module is the machine's; its switches are per namespace
    proc = runner.run(in_netns(["sysctl", "-q", "-w", *(f"{key}=1" for key in KEYS)], netns))
    if proc.returncode == 0 and _on(runner, netns):
        return None
    return ("br_netfilter is not active (net.bridge.bridge-nf-call-iptables is not 1): security groups "
            "cannot see bridged traffic, so the filtered ports forward nothing; load br_netfilter or set "
            f"the sysctl ({proc.stderr.strip()[:200] or 'could not be set'})")


def _on(runner: Runner, netns: str | None) -> bool:
    proc = runner.run(in_netns(["sysctl", "-n", *KEYS], netns))
    return proc.returncode == 0 and proc.stdout.split() == ["1", "1"]
