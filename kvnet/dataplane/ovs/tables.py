"""kv-int's table numbers and the registers a frame carries between them. What each table does is described
in one place: the docstring of `kvnet.dataplane.ovs.flows`."""

from __future__ import annotations

# Forwarding
CLASSIFY, REDIRECT, ARP, L2, FLOOD = 0, 5, 10, 20, 30
# A filtered port's frames on their way out of it (egress) ...
EGRESS_SPOOF, EGRESS_RULES, EGRESS_COMMIT = 1, 2, 3
# ... and on their way into it (ingress)
INGRESS, INGRESS_BASE, INGRESS_RULES, INGRESS_COMMIT = 40, 41, 42, 43

# Registers (NXM_NX_REG<n>)
REG_RULES = 3  # the id of that port's rule set for the direction (shared by the ports with the same rules)
REG_ZONE = 4  # the conntrack zone of the filtered port being looked at
REG_PORT = 5  # the ofport of the filtered port being looked at (the sender on egress, the receiver on ingress)
REG_LVID = 6  # the network's local VLAN
REG_ORIGIN = 7  # 0: from a local port; 1: from a tunnel or the physnet


def reg(n: int) -> str:
    return f"NXM_NX_REG{n}[]"


def load(value: int, n: int) -> str:
    return f"load:{value:#x}->{reg(n)}"
