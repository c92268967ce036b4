"""Proxies are found through the `harness.proxies` entry-point group: the public plug-in point."""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any, ClassVar

import pytest

from harness import registry
from harness.errors import UsageError
from harness.model.objects import Service
from harness.proxies.base import TrackingProxy


class CandidateProxy(TrackingProxy):
    """A third-party proxy, as a package would register it."""

    name: ClassVar[str] = "candidate"
    description: ClassVar[str] = "a candidate from another package"

    def program(self, services: Any, changed: set[str]) -> None:
        self.programmed = dict(services)


class Undocumented(CandidateProxy):
    """First docstring line is the description."""

    description: ClassVar[str] = ""


def fake_entry_points(points: list[EntryPoint]) -> Any:
    def entry_points(group: str) -> list[EntryPoint]:
        return [p for p in points if p.group == group]

    return entry_points


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    here = __name__
    points = [
        EntryPoint("candidate", f"{here}:CandidateProxy", registry.PROXY_GROUP),
        EntryPoint("plain", f"{here}:Undocumented", registry.PROXY_GROUP),
        EntryPoint("broken", "hk_no_such_module:Proxy", registry.PROXY_GROUP),
        EntryPoint("model", "harness.targets.model:ModelTarget", registry.TARGET_GROUP),
    ]
    monkeypatch.setattr(registry, "entry_points", fake_entry_points(points))


@pytest.mark.usefixtures("installed")
def test_an_entry_point_proxy_is_listed_with_its_description() -> None:
    found = registry.proxies(include_mutants=False)
    assert set(found) == {"candidate", "plain", "broken"}
    assert found["candidate"].description == "a candidate from another package"
    assert found["plain"].description == "First docstring line is the description."
    assert found["broken"].description.startswith("(fails to load:")


@pytest.mark.usefixtures("installed")
def test_an_entry_point_proxy_loads_and_runs_through_the_contract() -> None:
    cls = registry.load_proxy("candidate")
    assert cls is CandidateProxy
    proxy = cls()
    proxy.on_service_add(Service("web", "10.96.0.10", (("app", "web"),)))
    proxy.sync()
    assert set(proxy.programmed) == {"web"}


@pytest.mark.usefixtures("installed")
def test_an_unknown_proxy_is_a_usage_error_naming_the_installed_ones() -> None:
    with pytest.raises(UsageError, match="candidate"):
        registry.load_proxy("nope")


def test_the_packaged_proxies_are_registered() -> None:
    found = registry.proxies(include_mutants=False)
    for name in ("nginx", "haproxy", "external"):
        assert name in found, f"{name} is not registered under {registry.PROXY_GROUP}"
        assert not found[name].description.startswith("(fails to load"), found[name].description
