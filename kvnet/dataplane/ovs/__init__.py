"""The Open vSwitch dataplane: an integration bridge, physnet bridges, flow-based tunnels, OpenFlow tables.

render (plan -> OVSDB rows, render.py; -> flows, flows.py, where the table layout is documented)
-> observe (ovsdb.py via ovsdbapp; openflow.py via ovs-ofctl) -> diff (diff.py) -> apply (one OVSDB
transaction, one OpenFlow bundle per bridge). `OvsDriver` strings them together.
"""

from kvnet.dataplane.ovs.driver import OvsDriver

__all__ = ["OvsDriver"]
