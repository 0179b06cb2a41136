"""The ``hello`` exchange: which configuration, actions and observations a run uses.

Ballast proposes a configuration; the implementation answers with the
configuration it runs (keys it leaves out are taken as proposed), the model
actions it carries out and the observation keys it reports. A configuration
that differs from the proposal is bad usage (the user picked a preset the
implementation does not run), not a divergence.

>>> from ballast.model import preset
>>> cfg = preset("virtio")
>>> h = check_hello(cfg, {"id": 0, "hello": {"protocol": 1, "actions": ["host_set_target"],
...                       "observe": ["vms/*/target"], "config": {"vms": 1}}})
>>> h.keys
('vms/0/target',)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ballast.errors import UsageError
from ballast.model.actions import ACTIONS
from ballast.model.config import Config
from ballast.validate.adapter_observe import OBSERVATIONS, expand_keys
from ballast.validate.adapter_process import (
    PROTOCOL_VERSION,
    AdapterGarbage,
    AdapterProcess,
)

__all__ = ["ConfigMismatch", "Hello", "check_hello", "handshake", "hello_request"]


class ConfigMismatch(UsageError):
    """The implementation runs another configuration than the one asked for."""


@dataclass(frozen=True)
class Hello:
    """What the implementation said about itself."""

    implementation: str
    """Its name, for reports."""
    actions: tuple[str, ...]
    """Model actions it carries out that exist in the configuration, in model order."""
    ignored_actions: tuple[str, ...]
    """Actions it offered that the configuration switches off."""
    observe: tuple[str, ...]
    """Declared observation keys (templates with ``*``)."""
    keys: tuple[str, ...]
    """Concrete observation keys every reply carries."""


def hello_request(cfg: Config) -> dict[str, Any]:
    """The request that opens every run."""
    return {"id": 0, "hello": {"protocol": PROTOCOL_VERSION, "config": cfg.to_dict()}}


def check_hello(cfg: Config, reply: dict[str, Any]) -> Hello:
    """Check a hello reply against the proposed configuration and the model."""
    body = reply["hello"]
    request = hello_request(cfg)
    proposed = cfg.to_dict()
    runs = body.get("config", {})
    unknown = sorted(set(runs) - set(proposed))
    if unknown:
        raise AdapterGarbage(f"hello names configuration keys the model does not have: "
                             f"{', '.join(unknown)}", request)
    differ = [f"{k}={runs[k]!r} (asked for {proposed[k]!r})" for k in sorted(runs)
              if _normal(runs[k]) != _normal(proposed[k])]
    name = str(body.get("implementation", "implementation"))
    if differ:
        raise ConfigMismatch(f"{name} runs another configuration: {'; '.join(differ)}; "
                             "choose a preset or configuration it runs")
    bad_actions = [a for a in body["actions"] if a not in ACTIONS]
    if bad_actions:
        raise AdapterGarbage(f"hello names actions the model does not have: "
                             f"{', '.join(bad_actions)}", request)
    bad_keys = [k for k in body["observe"] if k not in OBSERVATIONS]
    if bad_keys:
        raise AdapterGarbage(f"hello names unknown observation keys: {', '.join(bad_keys)}; "
                             f"expected some of {', '.join(OBSERVATIONS)}", request)
    offered = set(body["actions"])
    actions = tuple(n for n, spec in ACTIONS.items() if n in offered and spec.feature(cfg))
    ignored = tuple(n for n, spec in ACTIONS.items() if n in offered and not spec.feature(cfg))
    if not actions:
        raise ConfigMismatch(f"{name} carries out none of the actions of this configuration")
    observe = tuple(body["observe"])
    return Hello(name, actions, ignored, observe, tuple(expand_keys(cfg, observe)))


def _normal(value: Any) -> Any:
    # Sets travel as lists: compare them whatever their order.
    return sorted(value) if isinstance(value, list) else value


def handshake(proc: AdapterProcess, cfg: Config) -> Hello:
    """Send ``hello`` and check the answer."""
    reply = proc.request(hello_request(cfg), reply_kind="hello_reply")
    return check_hello(cfg, reply)
