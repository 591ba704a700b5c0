"""HTTP client for the kvnet API, over TCP (`http://127.0.0.1:9797`) or a unix socket (`unix:/path`).

Errors come back as the same exception classes the server raised, with field and message.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx

from kvnet import errors
from kvnet.model.resources import is_uuid

DEFAULT_URL = "http://127.0.0.1:9797"
ERROR_TYPES: dict[str, type[errors.KvnetError]] = {
    cls.__name__: cls for cls in (errors.InvalidInput, errors.NotFound, errors.Conflict, errors.IdTaken,
                                  errors.RetryableConflict, errors.Exhausted, errors.PayloadTooLarge,
                                  errors.UnsupportedMediaType, errors.MethodNotAllowed)
}


class ServerUnavailable(errors.KvnetError):
    status = 503


def default_url() -> str:
    return os.environ.get("KVNET_URL", DEFAULT_URL)


class Client:
    """`url` may list several servers, comma-separated (`unix:/a.sock,unix:/b.sock` or
    `http://a:9797,http://b:9797`): a request that cannot reach one goes to the next, and the
    client stays with the one that answered."""

    def __init__(self, url: str | None = None, timeout: float = 30.0, project: str | None = None) -> None:
        self.url = url or default_url()
        self.project = project  # where `find` looks names up when not told
        self.urls = [u.strip() for u in self.url.split(",") if u.strip()]
        self._timeout = timeout
        self._current = 0
        self.resent = False
        self._https: dict[str, httpx.Client] = {}

    def _http_for(self, url: str) -> httpx.Client:
        if url not in self._https:
            if url.startswith("unix:"):
                transport = httpx.HTTPTransport(uds=url.removeprefix("unix:"))
                self._https[url] = httpx.Client(transport=transport, base_url="http://kvnet", timeout=self._timeout)
            else:
                self._https[url] = httpx.Client(base_url=url, timeout=self._timeout)
        return self._https[url]

    def close(self) -> None:
        for http in self._https.values():
            http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                timeout: float | None = None) -> Any:
        """Failover: a server that refuses the connection is skipped. One that fails after the request
        was sent is skipped too, except for a POST without an `id` (it may have created something)."""
        failures = []
        self.resent = False  # the request was sent to a server that died before answering, then resent
        for i in range(len(self.urls)):
            index = (self._current + i) % len(self.urls)
            url = self.urls[index]
            try:
                response = self._http_for(url).request(
                    method, path, json=json, params=params,
                    timeout=timeout if timeout is not None else httpx.USE_CLIENT_DEFAULT)
            except httpx.TransportError as exc:
                failures.append(f"{url}: {exc or type(exc).__name__}")
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if sent and method == "POST" and not (isinstance(json, dict) and "id" in json):
                    break
                self.resent = self.resent or sent
                continue
            self._current = index
            if response.status_code >= 400:
                raise _error_from(response)
            return response.json() if response.content else None
        raise ServerUnavailable(f"cannot reach the kvnet server at {'; '.join(failures)}")

    # -- resources ------------------------------------------------------------------------------
    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """With several servers the client names the new resource itself, so that a create whose answer
        was lost can be resent to another server: if the first copy had landed, that one is returned."""
        if len(self.urls) > 1 and "id" not in body and kind != "hosts":  # a host's id is its name
            body = {"id": str(uuid.uuid4()), **body}
        try:
            return self.request("POST", f"/v1/{kind}", json=body)
        except errors.IdTaken as exc:
            rid = body.get("id") or body.get("name")
            if self.resent and "already exists" in exc.message and rid:
                return self.get(kind, rid)  # our first copy landed before its server died
            raise

    def list(self, kind: str, **filters: str) -> list[dict[str, Any]]:
        return self.request("GET", f"/v1/{kind}", params=filters or None)

    def get(self, kind: str, rid: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/{kind}/{rid}")

    def update(self, kind: str, rid: str, changes: dict[str, Any]) -> dict[str, Any]:
        return self.request("PATCH", f"/v1/{kind}/{rid}", json=changes)

    def delete(self, kind: str, rid: str) -> None:
        self.request("DELETE", f"/v1/{kind}/{rid}")

    def find(self, kind: str, ref: str, project: str | None = None) -> dict[str, Any]:
        """A resource by its full id (a UUID; a host's name is its id), else by its name, which must be
        unique (within `project` when given). A name never matches an id, nor an id a name."""
        if kind == "hosts" or is_uuid(ref):
            return self.get(kind, ref)
        project = project or self.project
        filters = {"name": ref} | ({"project_id": project} if project else {})
        matches = self.list(kind, **filters)
        if len(matches) == 1:
            return matches[0]
        where = f" in project {project}" if project else ""
        if matches:
            projects = sorted({m.get("project_id", "") for m in matches})
            hint = f" (projects {', '.join(projects)}: give --project)" if len(projects) > 1 and not project else ""
            raise errors.Conflict(f"{len(matches)} {kind} are named {ref!r}{where}{hint}; use the id", field="name")
        raise errors.NotFound(f"no {kind[:-1]} named {ref!r}{where}", field="name")

    # -- actions --------------------------------------------------------------------------------
    def router_add_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self.request("PUT", f"/v1/routers/{router_id}/add_interface", json={"subnet_id": subnet_id})

    def router_remove_interface(self, router_id: str, subnet_id: str) -> dict[str, Any]:
        return self.request("PUT", f"/v1/routers/{router_id}/remove_interface", json={"subnet_id": subnet_id})

    def set_port_status(self, port_id: str, status: str, detail: dict[str, Any], *, host: str) -> dict[str, Any]:
        """Reported by `host`'s agent, which must be the port's binding host."""
        return self.request("PUT", f"/v1/ports/{port_id}/status",
                            json={"status": status, "detail": detail, "host": host})

    def add_rule(self, group_id: str, rule: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", f"/v1/securitygroups/{group_id}/rules", json=rule)

    def remove_rule(self, group_id: str, rule_id: str) -> None:
        self.request("DELETE", f"/v1/securitygroups/{group_id}/rules/{rule_id}")

    def drain_host(self, host: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/hosts/{host}/drain")

    def batch(self, operations: list[dict[str, Any]]) -> dict[str, Any]:
        """Several writes in one transaction (kvnet.server.batch): {"revision", "results"}."""
        return self.request("POST", "/v1/batch", json={"operations": operations})

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
