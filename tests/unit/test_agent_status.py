"""The agent reports only what it applied: port status from the pass's typed results, retries with
backoff, a pass that raises or a host the model lacks changes and reports nothing (no root)."""

from __future__ import annotations

from typing import Any

from kvnet.agent import loop
from kvnet.agent.loop import Agent
from kvnet.agent.model import CloudModel
from kvnet.dataplane import Failure, ReconcileResult
from kvnet.model.resources import CloudConfig, Host, Network, Port, Resource
from kvnet.plan import HostPlan, port_device_name

NET = "fedcba98-7654-4000-8000-000000000003"
A = "aaaaaaaa-0000-4000-8000-00000000000a"
B = "bbbbbbbb-0000-4000-8000-00000000000b"


class RecordingClient:
    def __init__(self) -> None:
        self.status: list[tuple[str, str, dict[str, Any], str | None]] = []
        self.heartbeats: list[dict[str, Any]] = []

    def set_port_status(self, port_id: str, status: str, detail: dict[str, Any], host: str | None = None) -> None:
        self.status.append((port_id, status, detail, host))

    def heartbeat(self, host: str, info: dict[str, Any]) -> None:
        self.heartbeats.append(info)


class ScriptedDriver:
    """Returns the given results in turn (or raises the given exception); records the plans it got."""

    def __init__(self, *results: ReconcileResult | Exception) -> None:
        self.results = list(results)
        self.plans: list[HostPlan] = []

    def reconcile(self, plan: HostPlan) -> ReconcileResult:
        self.plans.append(plan)
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        if isinstance(result, Exception):
            raise result
        return result


def agent(driver: ScriptedDriver, *, host: bool = True, status: str = "BUILD") -> tuple[Agent, RecordingClient]:
    client = RecordingClient()
    resources: list[Resource] = [CloudConfig(), Network(id=NET, segmentation_id=100),
                                 *(Port(id=pid, network_id=NET, mac_address=f"fa:16:3e:00:00:0{i}",
                                        binding_host="h1", status=status) for i, pid in enumerate((A, B)))]
    if host:
        resources.append(Host(name="h1", tunnel_ip="192.0.2.1"))
    the_agent = Agent("h1", client, driver)  # type: ignore[arg-type]
    the_agent.model = CloudModel.from_resources(resources)
    return the_agent, client


def reported(client: RecordingClient) -> dict[str, tuple[str, dict[str, Any]]]:
    return {port: (status, detail) for port, status, detail, _ in client.status}


def test_a_port_whose_objects_failed_is_error_with_the_kernels_message_the_other_active() -> None:
    failure = Failure("port", port_device_name(A), "RTNETLINK answers: Operation not permitted", (A,))
    the_agent, client = agent(ScriptedDriver(ReconcileResult(failures=(failure,))))
    the_agent.reconcile_once()
    got = reported(client)
    assert got[A][0] == "ERROR" and got[B][0] == "ACTIVE"
    assert got[A][1]["errors"] == [f"port {port_device_name(A)}: RTNETLINK answers: Operation not permitted"]
    assert got[A][1]["host"] == "h1" and "1 object(s) not applied" in got[A][1]["reason"]
    assert {host for *_, host in client.status} == {"h1"}  # the reporting host, for the server to check
    assert the_agent.retry_backoff == loop.RETRY_FIRST


def test_a_failure_is_repaired_on_retry_and_the_port_turns_active() -> None:
    failure = Failure("link", "kvb-x", "No buffer space available", (A, B))
    the_agent, client = agent(ScriptedDriver(ReconcileResult(failures=(failure,)), ReconcileResult()))
    the_agent.reconcile_once()
    assert {s for _, s, _, _ in client.status} == {"ERROR"}
    the_agent.reconcile_once()
    assert [s for _, s, _, _ in client.status[2:]] == ["ACTIVE", "ACTIVE"] and the_agent.retry_backoff == 0


def test_messages_are_few_and_short() -> None:
    failures = tuple(Failure("fdb", f"entry {i}", "x" * 1000, (A,)) for i in range(10))
    the_agent, client = agent(ScriptedDriver(ReconcileResult(failures=failures)))
    the_agent.reconcile_once()
    errors = reported(client)[A][1]["errors"]
    assert len(errors) == 3 and all(len(e) <= 300 for e in errors)
    summary = the_agent.stats.last_summary
    assert summary is not None and len(summary["failures"]) == 10 and summary["pending_retries"] == 10
    assert all(len(f["message"]) <= 300 for f in summary["failures"])


def test_what_could_not_be_read_is_reported_as_nothing_not_down() -> None:
    unknown = Failure("l2", "*", "bridge -j fdb show exited 1", (A, B), observe=True)
    the_agent, client = agent(ScriptedDriver(ReconcileResult(failures=(unknown,))), status="ACTIVE")
    the_agent.reconcile_once()
    assert client.status == [] and the_agent.retry_backoff > 0


def test_a_bound_port_without_device_is_down_with_the_reason_not_build_forever() -> None:
    missing = ReconcileResult(missing_ports=(A,), missing_devices=(port_device_name(A),))
    the_agent, client = agent(ScriptedDriver(missing))
    the_agent.reconcile_once()
    status, detail = reported(client)[A]
    assert status == "DOWN" and detail["reason"] == f"device {port_device_name(A)} not present on this host"


def test_a_driver_that_raises_never_kills_the_agent_and_reports_nothing() -> None:
    the_agent, client = agent(ScriptedDriver(RuntimeError("nft: command not found")))
    result = the_agent.reconcile_once()
    assert result is not None and result.unknown and client.status == []
    assert the_agent.retry_backoff == loop.RETRY_FIRST
    for _ in range(20):
        the_agent.reconcile_once()
    assert the_agent.retry_backoff == loop.RETRY_MAX  # doubled, capped


def test_a_compile_that_raises_never_kills_the_agent_and_touches_nothing(monkeypatch: Any) -> None:
    """A model the compiler cannot read (a bug, found once: rules that did not sort) must not end the
    agent: the pass changes and reports nothing and is retried with backoff."""
    driver = ScriptedDriver(ReconcileResult())
    the_agent, client = agent(driver)

    def broken(host: str, model: CloudModel) -> HostPlan:
        raise TypeError("'<' not supported between instances of 'str' and 'NoneType'")

    monkeypatch.setattr(loop, "compile_host", broken)
    assert the_agent.reconcile_once() is None
    assert driver.plans == [] and client.status == [] and the_agent.retry_backoff == loop.RETRY_FIRST


def test_a_host_missing_from_the_model_changes_and_reports_nothing() -> None:
    driver = ScriptedDriver(ReconcileResult())
    the_agent, client = agent(driver, host=False)
    assert the_agent.reconcile_once() is None
    assert driver.plans == [] and client.status == []


def test_the_heartbeat_carries_a_summary_of_the_last_pass() -> None:
    the_agent, client = agent(ScriptedDriver(ReconcileResult(added={"link": 2}, duration_ms=12.5)))
    the_agent.reconcile_once()
    the_agent._heartbeat()
    info = client.heartbeats[-1]
    last = info["last_reconcile"]
    assert (last["duration_ms"], last["changed"], last["ports"], last["routers"]) == (12.5, 2, 2, 0)
    assert last["failures"] == [] and last["pending_retries"] == 0 and info["last_full_resync"] is not None
