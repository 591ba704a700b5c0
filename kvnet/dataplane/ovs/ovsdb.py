"""OVSDB I/O through ovsdbapp: one IDL connection to the instance's unix socket, observe, apply.

`observe` reads the IDL's in-memory replica (kept current by ovsdbapp's connection thread, read
under its lock), so it costs no round trip. `apply` sends every row change of a pass as one
transaction; ovsdbapp then waits until ovs-vswitchd has taken the new configuration (cur_cfg), so
the ofports of new ports are known when the flows are rendered right after.
"""

from __future__ import annotations

import logging
from typing import Any

from ovsdbapp.backend.ovs_idl import connection
from ovsdbapp.schema.open_vswitch import impl_idl

from kvnet.dataplane.ovs.diff import DbChanges
from kvnet.dataplane.ovs.state import Bridge, ObservedDb, Port

# ovsdbapp logs a traceback for every port whose device does not exist yet (ofport -1) after a
# transaction; kvnet reports those as missing devices itself.
logging.getLogger("ovsdbapp.schema.open_vswitch.impl_idl").setLevel(logging.CRITICAL)
TABLES = ("Open_vSwitch", "Bridge", "Port", "Interface")


class Ovsdb:
    def __init__(self, endpoint: str, timeout: float = 10.0) -> None:
        self.endpoint = endpoint
        idl = connection.OvsdbIdl.from_server(endpoint, "Open_vSwitch", helper_tables=TABLES)
        self._conn = connection.Connection(idl, timeout)
        # ovsdbapp keeps the connection in a class attribute: a class of our own per instance lets
        # one process (a test, the benchmark) talk to several OVS instances.
        api_class = type("KvnetOvsdbIdl", (impl_idl.OvsdbIdl,), {"_ovsdb_connection": None})
        self.api: Any = api_class(self._conn)

    def close(self) -> None:
        self._conn.stop(timeout=5)

    def observe(self) -> ObservedDb:
        with self._conn.lock:
            tables = self._conn.idl.tables
            seen = ObservedDb()
            for row in tables["Bridge"].rows.values():
                seen.bridges[row.name] = Bridge(row.name, row.datapath_type, _kvnet_ids(row.external_ids),
                                                row.fail_mode[0] if row.fail_mode else "")
                for port in row.ports:
                    iface = port.interfaces[0] if port.interfaces else None
                    seen.ports[port.name] = _port(port, iface, row.name)
                    ofport = iface.ofport[0] if iface is not None and iface.ofport else -1
                    seen.ofports[port.name] = ofport
        return seen

    def ofports(self) -> dict[str, int]:
        """name -> ofport of every interface (cheap; the restart monitor compares these)."""
        with self._conn.lock:
            return {row.name: (row.ofport[0] if row.ofport else -1)
                    for row in self._conn.idl.tables["Interface"].rows.values()}

    def apply(self, changes: DbChanges) -> str | None:
        """Apply every row change in one transaction; an error string if it failed (nothing applied)."""
        if changes.empty:
            return None
        api = self.api
        try:
            with api.transaction(check_error=True) as txn:
                for name in changes.bridge_del:
                    txn.add(api.del_br(name))
                for name in changes.port_del:
                    txn.add(api.del_port(name))
                for bridge in changes.bridge_add:
                    txn.add(api.add_br(bridge.name, datapath_type=bridge.datapath_type))
                for bridge in changes.bridge_add + changes.bridge_change:
                    txn.add(api.db_set("Bridge", bridge.name, ("fail_mode", bridge.fail_mode),
                                       ("datapath_type", bridge.datapath_type),
                                       ("external_ids", dict(bridge.external_ids))))
                for port in changes.port_add:
                    attrs: dict[str, Any] = {"external_ids": dict(port.external_ids)}
                    if port.type:
                        attrs["type"] = port.type
                    if port.options:
                        attrs["options"] = dict(port.options)
                    txn.add(api.add_port(port.bridge, port.name, **attrs))
                for port in changes.port_add:
                    for cmd in _port_columns(api, port, new=True):
                        txn.add(cmd)
                for port in changes.port_change:
                    for cmd in _port_columns(api, port, new=False):
                        txn.add(cmd)
        except Exception as exc:  # ovsdbapp raises its own and RuntimeError types; report, retry next pass
            return f"ovsdb transaction ({_count(changes)} row changes): {exc}"
        return None


def _port_columns(api: Any, port: Port, *, new: bool) -> list[Any]:
    """Set the Port/Interface columns kvnet manages; a row inserted in this transaction has none to clear."""
    cmds = [api.db_set("Port", port.name, ("external_ids", dict(port.external_ids))),
            api.db_set("Interface", port.name, ("external_ids", dict(port.external_ids)))]
    for table, column, value in (("Port", "tag", port.tag), ("Interface", "mtu_request", port.mtu_request)):
        if value is not None:
            cmds.append(api.db_set(table, port.name, (column, value)))
        elif not new:
            cmds.append(api.db_clear(table, port.name, column))
    return cmds


def _count(changes: DbChanges) -> int:
    return (len(changes.bridge_add) + len(changes.bridge_change) + len(changes.bridge_del)
            + len(changes.port_add) + len(changes.port_change) + len(changes.port_del))


def _kvnet_ids(external_ids: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """Only kvnet's keys: an operator's own external_ids on the same row are not a difference."""
    return tuple((k, v) for k, v in external_ids.items() if k.startswith("kvnet-"))


def _port(port: Any, iface: Any, bridge: str) -> Port:
    ids = _kvnet_ids(port.external_ids)
    if iface is None:
        return Port(port.name, bridge, external_ids=ids)
    return Port(port.name, bridge, iface.type, tuple(iface.options.items()),
                port.tag[0] if port.tag else None, ids,
                iface.mtu_request[0] if iface.mtu_request else None)
