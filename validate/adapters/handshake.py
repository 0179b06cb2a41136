"""The ``hello`` exchange: which protocol version, configuration, actions and observations.

Ballast proposes the newest protocol version it speaks (2) and the
implementation answers with the version it speaks: 1 (Ballast chooses every
argument of every step) or 2 (the implementation makes its own choices and
reports them). Any other version stops the run with a message naming both.

Ballast proposes a configuration; the implementation answers with the
configuration it runs (keys it leaves out are taken as proposed), the model
actions it carries out and the observation keys it reports. A configuration
that differs from the proposal is bad usage (the user picked a preset the
implementation does not run), not a divergence.

>>> from ballast.model import preset
>>> cfg = preset("virtio")
>>> h = check_hello(cfg, {"id": 0, "hello": {"protocol": 1, "actions": ["host_set_target"],
...                       "observe": ["vms/*/target"], "config": {"vms": 1}}})
>>> h.keys, h.protocol
(('vms/0/target',), 1)
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ballast.errors import UsageError
from ballast.model.actions import ACTIONS
from ballast.model.config import Config
from ballast.validate.adapters.observe import OBSERVATIONS, expand_keys
from ballast.validate.adapters.process import (
    PROTOCOL_VERSION,
    PROTOCOL_VERSIONS,
    AdapterFailed,
    AdapterGarbage,
    AdapterProcess,
    one_line,
    schema_errors,
)

__all__ = ["ConfigMismatch", "Hello", "ProtocolMismatch", "check_hello", "handshake",
           "hello_request"]


class ConfigMismatch(UsageError):
    """The implementation runs another configuration than the one asked for."""


class ProtocolMismatch(UsageError):
    """The implementation speaks a protocol version Ballast does not."""


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
    protocol: int = 1
    """The protocol version it speaks (1: Ballast chooses; 2: it chooses and reports)."""
    widened: tuple[tuple[str, Any], ...] = ()
    """Protocol 2: configuration keys it set to a value that admits more (its own
    allocator and replacement policy: ``guest_policy = "any"``; eager backing:
    ``eager_backing = true``); the run uses them."""

    def run_config(self, cfg: Config) -> Config:
        """The configuration the run checks against: ``cfg`` with :attr:`widened` applied."""
        return Config.from_dict({**cfg.to_dict(), **dict(self.widened)}) if self.widened \
            else cfg


WIDENINGS = frozenset({("guest_policy", "lru", "any"), ("eager_backing", False, True)})
"""(key, proposed, declared) changes a protocol-2 implementation may make: each makes
the model admit more (any free pages for the balloon, any resident victim; a VMM that
backs pages not in the balloon before the guest touches them), never less."""


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
                             f"{one_line(', '.join(unknown))}", request)
    version = int(body["protocol"])
    widened = tuple((k, runs[k]) for k in sorted(runs)
                    if version == 2 and isinstance(runs[k], (str, bool))
                    and any(w == (k, proposed[k], runs[k]) for w in WIDENINGS))
    differ = [f"{k}={one_line(repr(runs[k]))} (asked for {proposed[k]!r})" for k in sorted(runs)
              if _normal(runs[k]) != _normal(proposed[k]) and k not in dict(widened)]
    name = one_line(str(body.get("implementation", "implementation")))
    if differ:
        raise ConfigMismatch(f"{name} runs another configuration: {'; '.join(differ)}; "
                             "choose a preset or configuration it runs")
    bad_actions = [a for a in body["actions"] if a not in ACTIONS]
    if bad_actions:
        raise AdapterGarbage(f"hello names actions the model does not have: "
                             f"{one_line(', '.join(bad_actions))}", request)
    bad_keys = [k for k in body["observe"] if k not in OBSERVATIONS]
    if bad_keys:
        raise AdapterGarbage(f"hello names unknown observation keys: "
                             f"{one_line(', '.join(bad_keys))}; "
                             f"expected some of {', '.join(OBSERVATIONS)}", request)
    offered = set(body["actions"])
    runs_cfg = Config.from_dict({**cfg.to_dict(), **dict(widened)}) if widened else cfg
    actions = tuple(n for n, spec in ACTIONS.items() if n in offered and spec.feature(runs_cfg))
    ignored = tuple(n for n, spec in ACTIONS.items()
                    if n in offered and not spec.feature(runs_cfg))
    if not actions:
        raise ConfigMismatch(f"{name} carries out none of the actions of this configuration")
    observe = tuple(body["observe"])
    return Hello(name, actions, ignored, observe, tuple(expand_keys(cfg, observe)),
                 version, widened)


def _normal(value: Any) -> Any:
    # Sets travel as lists: compare them whatever their order. A list whose items do not
    # compare (numbers and strings mixed) is no proposed value, so it differs as it is.
    if isinstance(value, list):
        try:
            return sorted(value)
        except TypeError:
            return value
    return value


def handshake(proc: AdapterProcess, cfg: Config) -> Hello:
    """Send ``hello`` and check the answer."""
    request = hello_request(cfg)
    reply = proc.request(request, reply_kind="hello_reply", validate=False)
    body = reply.get("hello")
    version = body.get("protocol") if isinstance(body, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) \
            and version not in PROTOCOL_VERSIONS:
        name = one_line(str(body.get("implementation",  # type: ignore[union-attr]
                                     "the implementation")))
        raise ProtocolMismatch(
            f"{name} speaks adapter protocol version {version}; Ballast speaks versions "
            f"{' and '.join(map(str, PROTOCOL_VERSIONS))} (see docs/adapter-protocol.md)")
    if "error" in reply and not schema_errors("error_reply", reply):
        raise AdapterFailed(f"the implementation reports an error: {one_line(reply['error'])}",
                            request, proc.stderr_tail())
    if version is not None and type(version) is not int:
        # JSON Schema's enum takes 1.0 and true for 1; a version number is written whole.
        raise AdapterGarbage(f"not a valid hello reply: the protocol version must be a whole "
                             f"number, got {json.dumps(version)}: {_json_text(reply)!r}", request,
                             proc.stderr_tail())
    errors = schema_errors("hello_reply", reply)
    if errors:
        shown = _json_text(reply)
        raise AdapterGarbage(f"not a valid hello reply: {errors[0]}: {shown!r}", request,
                             proc.stderr_tail())
    return check_hello(cfg, reply)


def _json_text(reply: dict[str, Any]) -> str:
    """The first 200 characters of a reply, as it was sent."""
    return json.dumps(reply, separators=(",", ":"))[:200]
