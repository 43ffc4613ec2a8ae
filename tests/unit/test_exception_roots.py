"""One exception root per package (the shared ones and each service), and the tree
documented in its ``errors`` module names every exception the package defines (so the
documentation cannot fall behind)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import pytest

import switchboard.analytics
import switchboard.crm
import switchboard.events
import switchboard.flows
import switchboard.ingest
import switchboard.mtproto
import switchboard.outbound
import switchboard.runtime
import switchboard.sandbox
from switchboard.analytics import errors as analytics_errors
from switchboard.analytics.errors import AnalyticsServiceError
from switchboard.crm import errors as crm_errors
from switchboard.crm.errors import CrmServiceError
from switchboard.events import errors as catalog_errors
from switchboard.events.errors import CatalogError
from switchboard.flows import errors as flows_errors
from switchboard.flows.errors import FlowsServiceError
from switchboard.ingest import errors as ingest_errors
from switchboard.ingest.errors import IngestServiceError
from switchboard.mtproto import errors as mtproto_errors
from switchboard.mtproto.errors import MtprotoServiceError
from switchboard.outbound import errors as outbound_errors
from switchboard.outbound.errors import OutboundServiceError
from switchboard.runtime import errors as runtime_errors
from switchboard.runtime.errors import SwitchboardRuntimeError
from switchboard.runtime.settings import ConfigError
from switchboard.sandbox import errors as sandbox_errors
from switchboard.sandbox.errors import SandboxError

# package, its errors module, its root, what stands outside the tree on purpose
PACKAGES = [
    # ConfigError is a SystemExit: it ends start-up and is not meant to be caught.
    (switchboard.runtime, runtime_errors, SwitchboardRuntimeError, {ConfigError}),
    (switchboard.events, catalog_errors, CatalogError, set()),
    (switchboard.sandbox, sandbox_errors, SandboxError, set()),
    # each service: one root of its own (the runtime's failure classes stay a second base
    # where an exception means one of them)
    (switchboard.ingest, ingest_errors, IngestServiceError, set()),
    (switchboard.crm, crm_errors, CrmServiceError, set()),
    (switchboard.outbound, outbound_errors, OutboundServiceError, set()),
    (switchboard.mtproto, mtproto_errors, MtprotoServiceError, set()),
    (switchboard.analytics, analytics_errors, AnalyticsServiceError, set()),
    (switchboard.flows, flows_errors, FlowsServiceError, set()),
]


def _exceptions(package: ModuleType) -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    prefix = package.__name__ + "."
    for info in pkgutil.walk_packages(package.__path__, prefix):
        if ".testing" in info.name or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == module.__name__
                and not name.startswith("_")
            ):
                found.add(obj)
    return found


@pytest.mark.parametrize(("package", "errors", "root", "outside"), PACKAGES)
def test_every_exception_has_the_one_root(
    package: ModuleType, errors: ModuleType, root: type, outside: set[type]
) -> None:
    found = _exceptions(package)
    assert root in found  # the walk found the package's exceptions
    assert len(found) >= 2
    strays = sorted(e.__qualname__ for e in found - outside if not issubclass(e, root))
    assert strays == []


@pytest.mark.parametrize(("package", "errors", "root", "outside"), PACKAGES)
def test_the_documented_tree_names_every_exception(
    package: ModuleType, errors: ModuleType, root: type, outside: set[type]
) -> None:
    doc = errors.__doc__ or ""
    missing = sorted(e.__qualname__ for e in _exceptions(package) if e.__qualname__ not in doc)
    assert missing == []


def test_near_synonyms_of_a_lost_lease_are_gone() -> None:
    names = {e.__qualname__ for e in _exceptions(switchboard.runtime)}
    assert "LostLeadershipError" not in names
    assert "LeaseLostError" in names
