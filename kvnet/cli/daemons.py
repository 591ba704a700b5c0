"""Long-running processes: `kvnet server` and `kvnet agent`."""

from __future__ import annotations

import typer

from kvnet.store import DEFAULT_STORE


def register(app: typer.Typer) -> None:
    @app.command()
    def server(
        store: str = typer.Option(DEFAULT_STORE, help="sqlite:///path (default) or etcd://HOST:PORT[,HOST:PORT...]"),
        listen: str = typer.Option("127.0.0.1:9797", help="HOST:PORT to listen on (loopback by default)"),
        uds: str = typer.Option(None, help="listen on this unix socket instead of TCP"),
        log_level: str = typer.Option("warning"),
    ) -> None:
        """Run the API server."""
        from kvnet.server.main import serve

        host, _, port = listen.rpartition(":")
        serve(store, host or "127.0.0.1", int(port), uds, log_level)

    @app.command()
    def agent(
        host: str = typer.Option(..., help="this hypervisor's host name, as registered"),
        server: str = typer.Option(None, help="API URL (http://… or unix:/path); default $KVNET_URL"),
        resync: float = typer.Option(30.0, help="seconds between full resyncs"),
        netns: str = typer.Option(None, help="program this network namespace instead of the current one"),
        sriov_emulation: str = typer.Option(
            None, help="lab only: emulated SR-IOV PFs described by this JSON file instead of the host's sysfs"),
    ) -> None:
        """Run the host agent: watch the cloud, program this host's dataplane, report port status."""
        from kvnet.agent.loop import run_agent

        run_agent(host=host, server_url=server, resync_interval=resync, netns=netns, sriov_emulation=sriov_emulation)
