"""The nft table `ip kvnet` of one router namespace: 1:1 floating IP NAT, SNAT, hairpin. Pure.

Floating IPs are stateless 1:1 rewrites, so every namespace of a router can translate them without
sharing conntrack state -- which is what makes the DVR hairpin (VM -> another VM's FIP, on another
host) stay inside the cloud and symmetric. Only what the namespace's role needs right now is rendered,
and a packet that cannot match leaves each chain after one comparison or one set lookup:
- `pre` (prerouting, raw priority, before conntrack and routing): from the external leg, the
  destination of a local FIP is rewritten to its fixed IP (`ext_in`, then accept); anything else
  reaching any FIP of the router (`@fips`, the one lookup east-west traffic pays) jumps to `to_fip`:
  from a VM with a local FIP it is rewritten to the fixed IP and marked MARK_HAIRPIN. (Only FIP holders
  and the external network reach a namespace with local FIPs on a DVR host: the router's own `dvr`
  namespace has no FIP, so a source without one reaches any FIP through the SNAT host.)
- `post_fip` (postrouting, before srcnat): the source of a VM with a local FIP becomes its FIP when it
  leaves through the external leg or when the packet was hairpinned.
Where the gateway is (centralized, dvr_snat), stateful NAT for what has no FIP:
- `dnat`: a source without FIP reaching a FIP (from the inside) -> the fixed IP;
- `snat`: the router's subnets leaving through the gateway, and those hairpinned, -> the gateway IP.
A namespace that only routes east-west (a DVR instance without local FIPs, a router without FIPs and
without a gateway here) has no table at all: no nft hook runs for its packets.
"""

from __future__ import annotations

from kvnet.dataplane.linux import nft_table
from kvnet.dataplane.linux.router_state import NFT_TABLE
from kvnet.plan import MARK_HAIRPIN, RouterPlan


def _set(name: str, type_: str, elements: list[str]) -> list[str]:
    body = f"elements = {{ {', '.join(elements)} }}" if elements else ""
    return [f"  {'map' if ':' in type_ else 'set'} {name} {{ type {type_}; {body} }}"]


def render_table(plan: RouterPlan) -> tuple[str | None, str]:
    """(digest, the table's body lines) -- the digest goes into the table comment for observe.
    (None, "") when the namespace needs no nft rule at all."""
    ext = plan.external_leg
    local = [f for f in plan.fips if f.local]
    pre: list[str] = []
    to_fip: list[str] = []
    post: list[str] = []
    if local:
        if ext:
            pre.append(f'iifname "{ext}" ip daddr set ip daddr map @ext_in accept')
            post.append(f'oifname "{ext}" ip saddr set ip saddr map @fip_out')
        to_fip.append(f"ip saddr @fip_holders ip daddr set ip daddr map @fip_in meta mark set {MARK_HAIRPIN:#x} "
                      "return")
        post.append(f"meta mark {MARK_HAIRPIN:#x} ip saddr set ip saddr map @fip_out")
        pre.append("ip daddr @fips jump to_fip")
    chains = [*_regular("to_fip", to_fip), *_chain("pre", "filter", "prerouting", "raw", pre),
              *_chain("post_fip", "filter", "postrouting", "srcnat - 10", post)]
    if plan.snat_ip and ext:
        not_ext = f'iifname != "{ext}" '
        if plan.fips:
            chains += _chain("nat_pre", "nat", "prerouting", "dstnat",
                             [f"{not_ext}ip daddr @fips dnat to ip daddr map @fip_in"])
        snat = [f'oifname "{ext}" ip saddr {{ {", ".join(plan.snat_subnets)} }} snat to {plan.snat_ip}'
                ] if plan.snat_subnets else []
        if plan.fips:
            snat.append(f"ct status dnat {not_ext}ip saddr != @fip_holders snat to {plan.snat_ip}")
        chains += _chain("nat_post", "nat", "postrouting", "srcnat", snat)
    if not chains:
        return None, ""
    lines = [*_set("fips", "ipv4_addr", [f.floating_ip for f in plan.fips]),
             *_set("fip_holders", "ipv4_addr", [f.fixed_ip for f in local]),
             *_set("fip_in", "ipv4_addr : ipv4_addr", [f"{f.floating_ip} : {f.fixed_ip}" for f in plan.fips]),
             *_set("ext_in", "ipv4_addr : ipv4_addr", [f"{f.floating_ip} : {f.fixed_ip}" for f in local]),
             *_set("fip_out", "ipv4_addr : ipv4_addr", [f"{f.fixed_ip} : {f.floating_ip}" for f in local]),
             *chains]
    body = "\n".join(lines)
    return nft_table.digest(body), body


def _chain(name: str, type_: str, hook: str, priority: str, rules: list[str]) -> list[str]:
    """A base chain, only if it has rules: an empty one would still cost a hook call per packet."""
    if not rules:
        return []
    return [f"  chain {name} {{", f"    type {type_} hook {hook} priority {priority}; policy accept;",
            *(f"    {rule}" for rule in rules), "  }"]


def _regular(name: str, rules: list[str]) -> list[str]:
    return [f"  chain {name} {{", *(f"    {rule}" for rule in rules), "  }"] if rules else []


def table_script(digest: str | None, body: str) -> str:
    """Replace the router namespace's table in one transaction, or delete it (digest None)."""
    return nft_table.replace_script("ip", NFT_TABLE, digest, body)
