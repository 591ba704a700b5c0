"""HTTP client for the kvnet API, over TCP (`http://127.0.0.1:9797`) or a unix socket (`unix:/path`).

Errors come back as the same exception classes the server raised, with field and message.
"""

from __future__ import annotations

import os
from typing import Any

import httpx

from kvnet import errors

DEFAULT_URL = "http://127.0.0.1:9797"
ERROR_TYPES: dict[str, type[errors.KvnetError]] = {
    cls.__name__: cls for cls in (errors.InvalidInput, errors.NotFound, errors.Conflict,
                                  errors.RetryableConflict, errors.Exhausted)
}


class ServerUnavailable(errors.KvnetError):
    status = 503


def default_url() -> str:
    return os.environ.get("KVNET_URL", DEFAULT_URL)


class Client:
    def __init__(self, url: str | None = None, timeout: float = 30.0) -> None:
        self.url = url or default_url()
        if self.url.startswith("unix:"):
            transport = httpx.HTTPTransport(uds=self.url.removeprefix("unix:"))
            self._http = httpx.Client(transport=transport, base_url="http://kvnet", timeout=timeout)
        else:
            self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                timeout: float | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=json, params=params,
                                          timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
        except httpx.TransportError as exc:
            raise ServerUnavailable(f"cannot reach the kvnet server at {self.url}: {exc}") from None
        if response.status_code >= 400:
            raise _error_from(response)
        return response.json() if response.content else None

    # -- resources ------------------------------------------------------------------------------
    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/v1/{kind}", json=body)

    def list(self, kind: str, **filters: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/{kind}", params=filters or None)

    def get(self, kind: str, rid: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/{kind}/{rid}")

    def update(self, kind: str, rid: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/{kind}/{rid}", json=changes)

    def delete(self, kind: str, rid: str) -> None:
        self.request("DELETE", f"/v1/{kind}/{rid}")

    def find(self, kind: str, ref: str) -> dict[str, Any]:
        """A resource by id or by unique name."""
        try:
            return self.get(kind, ref)
        except errors.NotFound:
            matches = self.list(kind, name=ref)
            if len(matches) == 1:
                return matches[0]
            if matches:
                raise errors.Conflict(f"{len(matches)} {kind} are named {ref!r}; use the id", field="name") from None
            raise errors.NotFound(f"no {kind[:-1]} with id or name {ref!r}", field="id") from None

    # -- actions --------------------------------------------------------------------------------
    def router_add_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self.request("PUT", f"/v1/routers/{router_id}/add_interface", json={"subnet_id": subnet_id})

    def router_remove_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self.request("PUT", f"/v1/routers/{router_id}/remove_interface", json={"subnet_id": subnet_id})

    def set_port_status(self, port_id: str, status: str, detail: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/v1/ports/{port_id}/status", json={"status": status, "detail": detail})

    def heartbeat(self, host: str, agent: dict[str, Any]) -> dict[str, Any]:
        return self.request("PUT", f"/v1/hosts/{host}/heartbeat", json=agent)

    def config(self) -> dict[str, Any]:
        return self.request("GET", "/v1/config")

    def set_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", "/v1/config", json=changes)

    def snapshot(self) -> dict[str, Any]:
        return self.request("GET", "/v1/snapshot")

    def watch(self, from_revision: int, timeout: float = 30.0) -> dict[str, Any]:
        return self.request("GET", "/v1/watch", params={"from_revision": from_revision, "timeout": timeout},
                            timeout=timeout + 10)

    def health(self) -> dict[str, Any]:
        return self.request("GET", "/healthz")


def _error_from(response: httpx.Response) -> errors.KvnetError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    info = body.get("error") if isinstance(body, dict) else None
    if isinstance(info, dict):
        if response.status_code == 410:
            return errors.Compacted(info.get("message", ""), int(body.get("compact_revision", 0)))
        cls = ERROR_TYPES.get(info.get("type", ""), errors.KvnetError)
        exc = cls(info.get("message", ""), field=info.get("field"))
        exc.status = response.status_code
        return exc
    detail = body.get("detail") if isinstance(body, dict) else response.text
    exc = errors.InvalidInput(str(detail)) if response.status_code == 422 else errors.KvnetError(str(detail))
    exc.status = response.status_code
    return exc
