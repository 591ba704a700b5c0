"""Dataplane packets-per-second benchmark: reference paths built by hand, real generators,
kernel counters at the receiver.

Modules: `procs` (process groups), `counters` (kernel/nft counters), `generators` (trafgen, iperf3),
`latency` (ping RTT percentiles), `load` (background CPU load), `base` (Path protocol, registry),
`paths` (hand-built reference paths), `measure` (one measurement), `run` (the whole benchmark).
"""
