"""The nft table `ip kvnet` of one router namespace: 1:1 floating IP NAT, SNAT, hairpin. Pure.

Floating IPs are stateless 1:1 rewrites, so every namespace of a router can translate them without
sharing conntrack state -- which is what makes the DVR hairpin (VM -> another VM's FIP, on another
host) stay inside the cloud and symmetric:
- `pre` (prerouting, raw priority, before conntrack and routing): traffic from the external leg to a
  local FIP gets its destination rewritten to the fixed IP; traffic from a VM that has a local FIP to
  any FIP of the router is rewritten the same way and marked MARK_HAIRPIN; in a DVR instance without
  the gateway, any other source reaching a FIP is marked MARK_TO_SNAT (policy-routed to the SNAT host).
- `post_fip` (postrouting, before srcnat): the source of a VM with a local FIP becomes its FIP when it
  leaves through the external leg or when the packet was hairpinned.
Where the gateway is (centralized, dvr_snat), stateful NAT for what has no FIP:
- `dnat`: a source without FIP reaching a FIP (from the inside) -> the fixed IP;
- `snat`: the router's subnets leaving through the gateway, and those hairpinned, -> the gateway IP.
"""

from __future__ import annotations

import hashlib

from kvnet.agent.plan import MARK_HAIRPIN, MARK_TO_SNAT, RouterPlan
from kvnet.dataplane.linux.router_state import NFT_TABLE


def _set(name: str, type_: str, elements: list[str]) -> list[str]:
    body = f"elements = {{ {', '.join(elements)} }}" if elements else ""
    return [f"  {'map' if ':' in type_ else 'set'} {name} {{ type {type_}; {body} }}"]


def render_table(plan: RouterPlan) -> tuple[str, str]:
    """(digest, the table's body lines) -- the digest goes into the table comment for observe."""
    ext = plan.external_leg
    local = [f for f in plan.fips if f.local]
    lines = [*_set("fips", "ipv4_addr", [f.floating_ip for f in plan.fips]),
             *_set("local_fips", "ipv4_addr", [f.floating_ip for f in local]),
             *_set("fip_holders", "ipv4_addr", [f.fixed_ip for f in local]),
             *_set("fip_in", "ipv4_addr : ipv4_addr", [f"{f.floating_ip} : {f.fixed_ip}" for f in plan.fips]),
             *_set("fip_out", "ipv4_addr : ipv4_addr", [f"{f.fixed_ip} : {f.floating_ip}" for f in local])]
    pre = []
    post = []
    if ext:
        pre.append(f'iifname "{ext}" ip daddr @local_fips ip daddr set ip daddr map @fip_in')
        post.append(f'oifname "{ext}" ip saddr @fip_holders ip saddr set ip saddr map @fip_out')
    not_ext = f'iifname != "{ext}" ' if ext else ""
    pre.append(f"{not_ext}ip saddr @fip_holders ip daddr @fips ip daddr set ip daddr map @fip_in "
               f"meta mark set {MARK_HAIRPIN:#x}")
    post.append(f"meta mark {MARK_HAIRPIN:#x} ip saddr @fip_holders ip saddr set ip saddr map @fip_out")
    if plan.role == "dvr":
        pre.append(f"ip daddr @fips meta mark set {MARK_TO_SNAT:#x}")
    lines += _chain("pre", "filter", "prerouting", "raw", pre)
    lines += _chain("post_fip", "filter", "postrouting", "srcnat - 10", post)
    if plan.snat_ip and ext:
        subnets = "{ " + ", ".join(plan.snat_subnets) + " }" if plan.snat_subnets else None
        dnat = [f"{not_ext}ip daddr @fips dnat to ip daddr map @fip_in"]
        lines += _chain("nat_pre", "nat", "prerouting", "dstnat", dnat)
        snat = [f'ct status dnat {not_ext}ip saddr != @fip_holders snat to {plan.snat_ip}']
        if subnets:
            snat.insert(0, f'oifname "{ext}" ip saddr {subnets} snat to {plan.snat_ip}')
        lines += _chain("nat_post", "nat", "postrouting", "srcnat", snat)
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
    return digest, "\n".join(lines)


def _chain(name: str, type_: str, hook: str, priority: str, rules: list[str]) -> list[str]:
    return [f"  chain {name} {{", f"    type {type_} hook {hook} priority {priority}; policy accept;",
            *(f"    {rule}" for rule in rules), "  }"]


def table_script(digest: str, body: str) -> str:
    """One nft transaction that replaces the table atomically: no packet ever sees it half-written."""
    return (f"table ip {NFT_TABLE} {{}}\ndelete table ip {NFT_TABLE}\n"
            f"table ip {NFT_TABLE} {{\n  comment \"kvnet:{digest}\"\n{body}\n}}\n")


def delete_script() -> str:
    return f"table ip {NFT_TABLE} {{}}\ndelete table ip {NFT_TABLE}\n"
