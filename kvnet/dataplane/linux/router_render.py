"""render_routers(plan, host_netns) -> {namespace: RouterNs}: the router namespaces one HostPlan needs. Pure."""

from __future__ import annotations

from kvnet.dataplane.linux.nat import render_table
from kvnet.dataplane.linux.router_state import LegLink, RouterNs, router_ns
from kvnet.plan import HostPlan, RouterPlan


def render_routers(plan: HostPlan, host_netns: str | None) -> dict[str, RouterNs]:
    out = {}
    for router in plan.routers:
        ns = render_router(router, router_ns(host_netns, router.router_id, router.instance))
        out[ns.name] = ns
    return out


def render_router(router: RouterPlan, name: str) -> RouterNs:
    digest, body = render_table(router)
    ns = RouterNs(name=name, nft_digest=digest, nft_text=body,
                  routes=set(router.routes), rules=set(router.rules), neighbours=set(router.neighbours))
    for leg in router.legs:
        ns.links[leg.name] = LegLink(leg.name, leg.mac, leg.mtu, leg.device)
        ns.addresses.update((leg.name, addr) for addr in leg.addresses)
    if router.external_leg:
        ns.announce = {f.floating_ip: router.external_leg for f in router.fips if f.local}
    return ns
