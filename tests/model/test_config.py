"""Configuration: validation, presets, TOML files."""

from pathlib import Path

import pytest

from ballast.errors import ConfigError, InputError
from ballast.model.config import PRESETS, Config, GuestPolicyName, ModuleKind, load_config, preset


def test_every_preset_is_consistent() -> None:
    for name, cfg in PRESETS.items():
        assert Config.from_dict(cfg.to_dict()) == cfg, name


HOSTILE_LEAVES_OFF = {
    "guest_system": "a generic guest system is not a VM: no p2m, no sharing, no host use",
    "balloon_unit_pages": "a unit of several pages is never migrated, and the hostile preset "
                          "migrates pages (Config)",
    "accept_beyond_target": "the hostile preset's VMM is vmw_balloon's side, which may refuse "
                            "any page (refusal); a device that checks no target is virtio's, "
                            "the qemu preset's",
}
"""What the hostile preset leaves at its default, and why: every other switch is on."""


def test_the_hostile_preset_switches_on_every_feature_that_combines() -> None:
    cfg, plain = preset("hostile"), Config()
    switches = [f for f, v in plain.to_dict().items() if isinstance(v, bool)]
    off = {f for f in switches if not getattr(cfg, f) and f not in HOSTILE_LEAVES_OFF}
    assert not off, f"the hostile preset leaves {sorted(off)} off"
    # More than one host page unit (so host pages are not the balloon's unit), a hostile VM
    # beside an honest one, a non-zero poison value, and processors with room to take back.
    assert cfg.host_page_units > 1 and cfg.hostile_vms and len(cfg.hostile_vms) < cfg.vms
    assert cfg.page_poison and cfg.poison_val != 0
    # Each switch left off is one a preset of its own turns on.
    for f in HOSTILE_LEAVES_OFF:
        assert any(getattr(c, f) != getattr(plain, f) for c in PRESETS.values()), f


def test_host_pages_must_divide_machine_pages() -> None:
    with pytest.raises(ConfigError, match="multiple of host_page_units"):
        Config(machine_pages=6, host_page_units=4)


def test_hostile_vm_must_exist() -> None:
    with pytest.raises(ConfigError, match="do not exist"):
        Config(vms=2, hostile_vms=frozenset({2}))


def test_toml_file_starts_from_a_preset(tmp_path: Path) -> None:
    f = tmp_path / "c.toml"
    f.write_text('preset = "core"\nvms = 2\nmodule = "application"\n')
    cfg = load_config(f)
    assert cfg.vms == 2 and cfg.module is ModuleKind.APPLICATION
    assert cfg.guest_pages == preset("core").guest_pages


@pytest.mark.parametrize("text, expected", [
    ("vms = \n", "not valid TOML"),
    ("frobs = 1\n", "unknown configuration key 'frobs'"),
    ("vms = 'two'\n", "expected a whole number"),
    ("sharing = 1\n", "expected true or false"),
    ("guest_policy = 'nope'\n", 'expected one of "lru", "lowest", "any"'),
    ("machine_pages = 5\nhost_page_units = 2\n", "multiple of host_page_units"),
])
def test_bad_toml_names_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(InputError, match=expected) as info:
        load_config(f)
    assert str(f) in str(info.value)


def test_unknown_preset() -> None:
    with pytest.raises(InputError, match="unknown preset"):
        preset("nope")


def test_balloon_units_combine_with_refusal_oom_reporting_and_hinting_but_not_migration() -> None:
    units = Config(guest_pages=4, batch=2, balloon_unit_pages=2)
    cfg = units.replace(refusal=True, deflate_on_oom=True, oom_notifier=True,
                        free_page_reporting=True, free_page_hint=True,
                        guest_policy=GuestPolicyName.ANY)
    assert cfg.balloon_unit_pages == 2
    with pytest.raises(ConfigError, match="never migrated"):
        units.replace(migration=True)
    with pytest.raises(ConfigError, match="balloon_unit_pages"):
        units.replace(module=ModuleKind.APPLICATION)
    with pytest.raises(ConfigError, match="balloon_unit_pages"):
        units.replace(guest_policy=GuestPolicyName.LOWEST)
    assert preset("large-units").refusal and preset("large-units").oom_notifier


def test_a_named_choice_given_as_text_is_the_same_configuration() -> None:
    # The model compares named choices by identity: a module given as its text used to be
    # an application that reported a driver's batch.
    as_text = Config(module="application", guest_policy="any")  # type: ignore[arg-type]
    assert as_text.module is ModuleKind.APPLICATION
    assert as_text.guest_policy is GuestPolicyName.ANY
    assert as_text == Config(module=ModuleKind.APPLICATION, guest_policy=GuestPolicyName.ANY)
    assert as_text.balloon_report_pages == 1
    with pytest.raises(ConfigError, match="module must be one of 'driver', 'application'"):
        Config(module="kernel")  # type: ignore[arg-type]
