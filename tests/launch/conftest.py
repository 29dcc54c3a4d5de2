"""The Kubernetes the launch tests talk to: kmock's emulator on a random loopback port, through a real
`kubernetes.client.ApiClient` (or a kubeconfig naming it, as `hpo launch k8s` and `hpo stop` read one).

kmock's emulator stores what it is sent and serves it back; it runs no controllers and ignores label selectors,
so the tests that use it check the requests and the flow, not Kubernetes semantics."""

from __future__ import annotations

import asyncio
import base64
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kubernetes import client as k8s


class _Emulator(kmock.KubernetesEmulator):
    """kmock's emulator, plus the one thing a real API server does that the launcher relies on: a uid for every
    object it creates."""

    async def _handle(self, request: Any) -> Any:
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            request.data.setdefault("metadata", {}).setdefault("uid", str(uuid.uuid4()))
        return await super()._handle(request)


@dataclass
class Cluster:
    emulator: _Emulator
    url: str
    api: k8s.ApiClient

    def stored(self, plural: str, namespace: str = "default") -> dict[str, dict[str, Any]]:
        """The live objects of one resource in one namespace, as the emulator holds them."""
        return {name: obj.raw for (resource, ns, name), obj in list(self.emulator.objects.items())
                if resource.plural == plural and ns == namespace and not obj.deleted}

    def requests(self, method: str) -> list[Any]:
        return [r for r in list(self.emulator) if r.method.name == method]

    def secret(self, url: str, key: str = "url", namespace: str = "default") -> None:
        """The Secret `hpo-db` holding `url` under `key`, as `kubectl create secret generic` makes it."""
        k8s.CoreV1Api(self.api).create_namespaced_secret(namespace, k8s.V1Secret(
            metadata=k8s.V1ObjectMeta(name="hpo-db"), data={key: base64.b64encode(url.encode()).decode()}))

    def kubeconfig(self, folder: Path) -> Path:
        """A kubeconfig whose current context is this emulator, for KUBECONFIG."""
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "me", "user": {"token": "not-a-secret"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "me"}}],
        }
        path = folder / "kubeconfig"
        path.write_text(yaml.safe_dump(config))
        return path


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """A fresh emulator on a random loopback port, served from a thread, and a client configured for it."""
    ready, box = threading.Event(), {}

    async def serve() -> None:
        emulator = _Emulator()
        async with emulator, kmock.Server(emulator) as server:
            box.update(emulator=emulator, url=str(server.url).rstrip("/"), stop=asyncio.Event(),
                       loop=asyncio.get_running_loop())
            ready.set()
            await box["stop"].wait()

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    assert ready.wait(10), "the emulator did not start"
    api = k8s.ApiClient(k8s.Configuration(host=box["url"]))
    try:
        yield Cluster(box["emulator"], box["url"], api)
    finally:
        api.close()
        box["loop"].call_soon_threadsafe(box["stop"].set)
        thread.join(10)
