"""Receiver-side kernel counters: interface statistics and the nft sink counter.

The sink is an nft table in the receiver namespace that counts (and by default drops) the benchmark
UDP flow at input priority 100, after any filtering the path itself does; what it counts is what
reached the receiver's stack. Interface counters are kept alongside (sender tx is the `sent` figure).
"""

from __future__ import annotations

from dataclasses import dataclass

from kvnet.sys.cmd import run, run_json

SINK_TABLE = "kvbench"


@dataclass(frozen=True)
class LinkCounters:
    rx_packets: int
    rx_bytes: int
    rx_dropped: int
    tx_packets: int
    tx_bytes: int
    tx_dropped: int


@dataclass(frozen=True)
class SinkCounter:
    packets: int
    bytes: int


def link_counters(netns: str, dev: str) -> LinkCounters:
    data = run_json(["ip", "-n", netns, "-j", "-s", "link", "show", "dev", dev])
    stats = data[0]["stats64"]
    rx, tx = stats["rx"], stats["tx"]
    return LinkCounters(rx["packets"], rx["bytes"], rx["dropped"], tx["packets"], tx["bytes"], tx["dropped"])


def sink_ruleset(port: int, verdict: str = "drop") -> str:
    if verdict not in ("drop", "accept"):
        raise ValueError(f"sink verdict must be drop or accept, not {verdict!r}")
    return (
        f"table inet {SINK_TABLE} {{\n"
        "  chain sink {\n"
        "    type filter hook input priority 100; policy accept;\n"
        f"    udp dport {port} counter {verdict}\n"
        "  }\n"
        "}\n"
    )


def install_sink(netns: str, port: int, verdict: str = "drop") -> None:
    """(Re)create the sink table in `netns` counting UDP to `port`."""
    run(["nft", "delete", "table", "inet", SINK_TABLE], netns=netns, check=False)
    run(["nft", "-f", "-"], netns=netns, input=sink_ruleset(port, verdict))


def remove_sink(netns: str) -> None:
    run(["nft", "delete", "table", "inet", SINK_TABLE], netns=netns, check=False)


def parse_sink(nft_json: dict) -> SinkCounter:
    for item in nft_json.get("nftables", []):
        rule = item.get("rule")
        if rule and rule.get("chain") == "sink":
            for expr in rule.get("expr", []):
                if "counter" in expr:
                    return SinkCounter(expr["counter"]["packets"], expr["counter"]["bytes"])
    raise LookupError("no sink counter in the nft ruleset")


def sink_counter(netns: str) -> SinkCounter:
    return parse_sink(run_json(["nft", "-j", "list", "table", "inet", SINK_TABLE], netns=netns))
