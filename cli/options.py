"""The model options every subcommand takes: ``--preset``, ``--config``, ``--set``, ``--fault``.

Declared once, in :data:`MODEL_OPTIONS`, and added to an argparse parser by
:func:`add_model_options` or to pytest by :func:`add_pytest_options` (as
``--ballast-preset`` and so on): the same names, defaults and help everywhere.
Only the default preset differs between commands: :data:`DEFAULT_PRESETS` names it for
each, with the reason the help gives.

:func:`config_from_args` turns them into the :class:`~ballast.model.config.Config`
a command runs, in one order for every command: the preset or configuration file
(or, for commands that read a trace, the trace's own), shrunk by ``--small``
where a command offers it, then every ``--set`` and size flag, then what the seeded
faults need (:func:`~ballast.model.faults.with_fault_needs`: a switch set, a size at
least the fault's), so that every fault runs on every command's default preset.
``--small`` shrinks only what the user did not set: a size given with ``--set`` is kept.
:func:`config_line` is the one line each command prints to say what it runs.

>>> import argparse
>>> p = argparse.ArgumentParser()
>>> add_model_options(p, command="explore")
>>> args = p.parse_args(["--set", "guest_pages=2", "--fault", "share_without_cow"])
>>> cfg = config_from_args(args)
>>> (cfg.guest_pages, cfg.sharing)
(2, True)
>>> config_line(cfg, args.fault, origin(args))  # doctest: +NORMALIZE_WHITESPACE
'configuration: preset core, --set guest_pages=2: 1 VMs x 2 PPNs, 3 MPNs, host page 1 unit(s),
module driver; must_tell_host, sharing, host_use; faults: share_without_cow'
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ballast.argtypes import positive_int
from ballast.errors import InputError, UsageError

if TYPE_CHECKING:
    from ballast.model.config import Config
    from ballast.model.trace import TraceHeader

__all__ = ["DEFAULT_PRESETS", "HeaderConfig", "MODEL_OPTIONS", "ModelOption", "SIZE_FLAGS",
           "add_model_options", "add_pytest_options", "add_size_options", "base_config",
           "check_faults", "config_from_args", "config_line", "config_summary", "fault_changes",
           "given", "header_config", "options_of_pytest", "origin", "with_sets"]


@dataclass(frozen=True)
class ModelOption:
    """One model option: its flag, destination, default and help, for argparse and pytest."""

    flag: str
    dest: str
    metavar: str
    help: str
    repeat: bool = False
    """Repeatable: the values gather into a list (default empty)."""

    def kwargs(self, default_preset: str) -> dict[str, Any]:
        """The ``add_argument`` keywords (pytest's ``addoption`` takes the same)."""
        text = self.help.replace("{preset}", default_preset)
        if self.repeat:
            return {"action": "append", "default": [], "metavar": self.metavar, "help": text}
        return {"default": None, "metavar": self.metavar, "help": text}


MODEL_OPTIONS: tuple[ModelOption, ...] = (
    ModelOption("--preset", "preset", "NAME",
                "named configuration (default: {preset}); see 'ballast list presets'"),
    ModelOption("--config", "config", "FILE.toml",
                "TOML file with Config fields (may start from 'preset = NAME'); "
                "instead of --preset"),
    ModelOption("--set", "overrides", "KEY=VALUE",
                "change one Config field, TOML syntax for the value (repeatable; e.g. "
                "--set vms=3 --set pcpus=6 --set sharing=false --set module='\"application\"')",
                repeat=True),
    ModelOption("--fault", "fault", "NAME",
                "seed a broken variant of the model (repeatable); see 'ballast list faults'",
                repeat=True),
)
"""The options every subcommand takes, in the order ``--help`` lists them."""

DEFAULT_PRESETS: dict[str, tuple[str, str]] = {
    "check": ("default", "2 VMs, one hostile, the classic features on"),
    "run": ("default", "2 VMs, one hostile, the classic features on"),
    "prove": ("default", "2 VMs, one hostile, the classic features on"),
    "explore": ("core", "small enough to visit every reachable state"),
    "fuzz": ("large", "many VMs and pages for the numeric core at scale"),
    "diff": ("virtio", "what a virtio-balloon adapter implements"),
}
"""Each command's preset when none is given, and why it is that one: ``default`` has the
classic features on (the virtio 1.x ones, migration and the others have presets of their
own, ``ballast list presets``); a command whose work grows with the configuration's size
starts from a preset that fits it. ``replay`` and ``validate`` run the trace's own
configuration."""

SIZE_FLAGS = ("vms", "guest_pages", "machine_pages", "host_page_units")
"""Config fields with a flag of their own (``--vms`` ...), shorthand for ``--set``."""


def add_model_options(p: argparse.ArgumentParser, *, command: str | None = None,
                      default_preset: str = "default", default_text: str | None = None) -> None:
    """Add :data:`MODEL_OPTIONS` to ``p``. ``command``: take the default preset and its
    reason from :data:`DEFAULT_PRESETS`; else ``default_preset``. ``default_text`` says
    where the configuration comes from without options, if not from a preset (a trace's
    header)."""
    if command is not None:
        default_preset, why = DEFAULT_PRESETS[command]
        default_text = default_text or f"{default_preset}: {why}"
    group = p.add_argument_group("model", "the configuration and seeded faults of the model")
    for opt in MODEL_OPTIONS:
        kw = opt.kwargs(default_text or default_preset)
        if opt.dest == "config":
            kw["type"] = Path
        group.add_argument(opt.flag, dest=opt.dest, **kw)
    p.set_defaults(default_preset=default_preset)


def add_size_options(p: argparse.ArgumentParser) -> None:
    """``--vms``, ``--guest-pages``, ``--machine-pages``, ``--host-page-units``: shorthand
    for ``--set`` of those fields."""
    p.add_argument("--vms", type=positive_int, default=None, help="number of VMs")
    p.add_argument("--guest-pages", type=positive_int, default=None, help="PPNs per VM")
    p.add_argument("--machine-pages", type=positive_int, default=None, help="MPNs on the host")
    p.add_argument("--host-page-units", type=positive_int, default=None,
                   help="balloon units per host page (1, 16, 512, ...)")
    p.set_defaults(size_flags=True)


def add_pytest_options(group: Any, *, default_preset: str) -> None:
    """Add :data:`MODEL_OPTIONS` to a pytest option group as ``--ballast-preset`` ...,
    with the same help and defaults (``--ballast-set``, ``--ballast-fault``)."""
    for opt in MODEL_OPTIONS:
        group.addoption(f"--ballast-{opt.flag[2:]}", dest=f"ballast_{opt.dest}",
                        **opt.kwargs(default_preset))


def options_of_pytest(getoption: Callable[[str], Any], *,
                     default_preset: str) -> argparse.Namespace:
    """The ``--ballast-*`` model options of a pytest run as :func:`config_from_args` reads
    them."""
    return argparse.Namespace(**{o.dest: getoption(f"ballast_{o.dest}") for o in MODEL_OPTIONS},
                              default_preset=default_preset)


def _set_values(args: argparse.Namespace) -> dict[str, object]:
    """The Config fields given with ``--set`` or a size flag, parsed as TOML values."""
    changes: dict[str, object] = {}
    for item in getattr(args, "overrides", None) or []:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise InputError("--set", None, f"expected KEY=VALUE, got {item!r}")
        try:
            changes[key.strip()] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except (tomllib.TOMLDecodeError, RecursionError):
            changes[key.strip()] = raw.strip()
    for flag in SIZE_FLAGS if getattr(args, "size_flags", False) else ():
        value = getattr(args, flag, None)
        if value is not None:
            changes[flag] = value
    return changes


def given(args: argparse.Namespace) -> bool:
    """Whether the invocation names a configuration or a fault of its own."""
    return bool(getattr(args, "preset", None) or getattr(args, "config", None)
                or _set_values(args) or getattr(args, "fault", None))


def base_config(args: argparse.Namespace, base: "Config | None" = None) -> "Config":
    """The configuration before any change: ``--config``, ``--preset``, else ``base`` (a
    trace's configuration), else the command's default preset."""
    from ballast.model.config import load_config, preset

    for flag, value in (("--preset", args.preset), ("--config", args.config)):
        if value is not None and not str(value).strip():
            raise UsageError(f"{flag} needs a name, got an empty one"
                             + ("; see 'ballast list presets'" if flag == "--preset" else ""))
    if args.preset and args.config:
        raise UsageError("give --preset or --config, not both")
    if args.config:
        return load_config(args.config)
    if args.preset or base is None:
        return preset(args.preset or args.default_preset)
    return base


def with_sets(args: argparse.Namespace, cfg: "Config",
              changes: "dict[str, object] | None" = None) -> "Config":
    """``cfg`` with every ``--set`` and size flag (or just ``changes``) applied."""
    from ballast.model.config import Config

    changes = _set_values(args) if changes is None else changes
    if not changes:
        return cfg
    return Config.from_dict({**cfg.to_dict(), **changes}, source="command line")


def check_faults(names: list[str]) -> None:
    """Refuse, as bad usage, a ``--fault`` the model does not have or one given twice."""
    from ballast.model.faults import FAULTS

    for i, name in enumerate(names):
        if name not in FAULTS:
            raise UsageError(f"unknown fault {name!r}; expected one of {', '.join(sorted(FAULTS))}")
        if name in names[:i]:
            raise UsageError(f"--fault {name} is given twice; give each fault once")


def fault_changes(args: argparse.Namespace) -> dict[str, Any]:
    """The configuration changes the seeded faults need (an unknown fault, or one given
    twice, is bad usage)."""
    from ballast.model.faults import FAULTS

    check_faults(args.fault)
    needed: dict[str, Any] = {}
    for name in args.fault:
        needed.update(FAULTS[name].config)
    return needed


def config_from_args(args: argparse.Namespace, *, base: "Config | None" = None,
                     shrink: "Callable[[Config], Config] | None" = None) -> "Config":
    """The Config an invocation asks for.

    :func:`base_config`, then every ``--set`` and size flag, then what the seeded faults
    need (a size is raised to the fault's, never lowered); with ``shrink`` (``--small``), that is
    shrunk and what the user set is put back (a field a seeded fault needs stays the fault's, as
    without ``--small``).
    """
    from ballast.model.faults import with_fault_needs

    needed = fault_changes(args)
    cfg = with_sets(args, base_config(args, base))
    if needed:
        cfg = with_fault_needs(cfg, args.fault)
    if shrink is not None:
        kept = {k: v for k, v in _set_values(args).items() if k not in needed}
        cfg = with_sets(args, shrink(cfg), kept)
    return cfg


def origin(args: argparse.Namespace, *, base: str = "") -> str:
    """Where the configuration comes from, in the words of the command line."""
    if getattr(args, "config", None):
        parts = [f"--config {args.config}"]
    elif getattr(args, "preset", None) or not base:
        parts = [f"preset {args.preset or args.default_preset}"]
    else:
        parts = [base]
    if getattr(args, "small", False):
        parts.append("--small")
    parts += [f"--set {k}={v}" for k, v in _set_values(args).items()]
    return ", ".join(parts)


def config_summary(cfg: "Config") -> str:
    """The sizes and switched-on features of a configuration, in one line.

    >>> from ballast.model.config import preset
    >>> config_summary(preset("core"))
    '1 VMs x 3 PPNs, 3 MPNs, host page 1 unit(s), module driver; must_tell_host, host_use'

    Sizes and choices other than the defaults are named too (balloon units of several
    pages, the guest's allocator policy, the poison value):

    >>> config_summary(preset("large-units")).split(";")[0]
    '1 VMs x 4 PPNs, 4 MPNs, host page 1 unit(s), module driver, balloon unit 2 pages'
    """
    from ballast.model.config import GuestPolicyName, features_on
    feats = features_on(cfg)
    extra = []
    if cfg.balloon_unit_pages > 1:
        extra.append(f"balloon unit {cfg.balloon_unit_pages} pages")
    if cfg.guest_policy is not GuestPolicyName.LRU:
        extra.append(f"guest policy {cfg.guest_policy.value}")
    if cfg.hostile_vms:
        extra.append(f"hostile {sorted(cfg.hostile_vms)}")
    if cfg.page_poison and cfg.poison_val:
        extra.append(f"poison_val {cfg.poison_val}")
    return (f"{cfg.vms} VMs x {cfg.guest_pages} PPNs, {cfg.machine_pages} "
            f"MPNs, host page {cfg.host_page_units} unit(s), module {cfg.module.value}"
            f"{''.join(', ' + e for e in extra)}"
            f"{'; ' + ', '.join(feats) if feats else ''}")


def config_line(cfg: "Config", faults: Sequence[str], where: str) -> str:
    """The one line a command prints about the configuration it runs."""
    return (f"configuration: {where}: {config_summary(cfg)}; "
            f"faults: {', '.join(faults) or 'none'}")


def header_config(args: argparse.Namespace, header: "TraceHeader",
                  where: str) -> tuple["TraceHeader", str]:
    """A trace's header under the configuration and faults the options ask for (the
    header's own when none are given; ``--fault`` adds to the header's faults), and
    where that configuration comes from (``where``: the header)."""
    import dataclasses

    if not given(args):
        return header, where
    cfg = config_from_args(args, base=header.config)
    faults = header.faults + tuple(f for f in args.fault if f not in header.faults)
    return dataclasses.replace(header, config=cfg, faults=faults), origin(args, base=where)


class HeaderConfig:
    """:func:`header_config` as the trace reader's ``configure`` step, so that the steps are
    read against the configuration they are judged under; :attr:`where` then says where it
    comes from."""

    def __init__(self, args: argparse.Namespace, source: str) -> None:
        self.args = args
        self.where = f"header of {source}"

    def __call__(self, header: "TraceHeader") -> "TraceHeader":
        header, self.where = header_config(self.args, header, self.where)
        return header
