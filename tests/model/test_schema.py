"""The state schema: exactly the state's fields, domains that hold, the README's table."""

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from ballast.model.config import Config, preset
from ballast.model.schema import SCHEMA, Field, Kind, Record, assemble, field, render_state_table
from ballast.model.state import State, plain_value, state_from_dict
from ballast.model.system import BalloonModel
from ballast.simulation.randomwalk import random_run

README = Path(__file__).resolve().parents[2] / "README.md"
START = "<!-- state table: generated from model/schema.py"
END = "<!-- end of state table -->"


def test_schema_lists_exactly_the_dataclass_fields_in_order() -> None:
    for record in Record:
        names = [f.name for f in dataclasses.fields(record.cls)
                 if f.name not in ("guest", "module")]
        assert [f.name for f in SCHEMA if f.record is record] == names, record


def test_keys_are_unique_and_the_model_names() -> None:
    keys = [f.key for f in SCHEMA]
    assert len(set(keys)) == len(keys)
    for f in SCHEMA:
        assert f.key.split(".")[-1] == f.name
        assert field(f.key) is f
    assert field("module.target").record is Record.MODULE and field("target").record is Record.VM


def _states(name: str, seed: int, **changes: Any) -> tuple[Config, list[State]]:
    cfg = dataclasses.replace(preset(name), **changes)
    run = random_run(BalloonModel(cfg), seed=seed, steps=150, record_states=True)
    return cfg, [state_from_dict(st.state) for st in run.trace.steps if st.state is not None]


def _in_domain(cfg: Config, f: Field, value: Any) -> list[str]:
    """Why ``value`` is outside the field's domain (empty if it is inside)."""
    def ok(d: Any, x: int) -> bool:
        return x in d.range(cfg)
    out = []
    feature_off = f.feature is not None and not getattr(cfg, f.feature)
    if f.kind is Kind.COUNTER:
        assert f.values is not None
        if feature_off and value != 0 or not feature_off and not ok(f.values, value):
            out.append(f"{f.path} = {value}")
        return out
    if f.kind in (Kind.SET, Kind.QUEUE, Kind.ORDER):
        items = [(x,) for x in value]
        if feature_off and items:
            out.append(f"{f.path} not empty")
    elif f.kind is Kind.MAP:
        assert len(value) == f.elements[0].size(cfg)
        items = [(i, x) for i, x in enumerate(value)]
    else:
        items = list(value)
    for item in items:
        idx = item if f.kind in (Kind.SET, Kind.QUEUE, Kind.ORDER) else item[:-1]
        if not all(ok(d, x) for d, x in zip(f.elements, idx)):
            out.append(f"{f.path} index {idx}")
        if f.values is not None and not ok(f.values, item[-1]):
            out.append(f"{f.path} value {item[-1]}")
    return out


@pytest.mark.parametrize("name,seed,changes", [
    ("default", 3, {}), ("hostile", 5, {}), ("processors", 7, {}),
    ("core", 11, {"processors": False}),
])
def test_every_reachable_value_lies_in_its_domain(name: str, seed: int,
                                                   changes: dict[str, Any]) -> None:
    cfg, states = _states(name, seed, **changes)
    assert len(states) > 100
    bad = [why for s in states for f in SCHEMA for vm in (range(cfg.vms) if f.record
                                                           is not Record.HOST else [0])
           for why in _in_domain(cfg, f, f.read(s, vm))]
    assert bad == []


def test_a_value_outside_its_domain_is_seen() -> None:
    cfg = preset("default")
    assert _in_domain(cfg, field("p2m"), (cfg.machine_pages,) + (-1,) * (cfg.guest_pages - 1))
    assert _in_domain(cfg, field("actual"), cfg.guest_pages + 2)
    assert _in_domain(dataclasses.replace(cfg, processors=False), field("vcpus"),
                      frozenset({0}))


def test_assemble_inverts_read_on_reachable_states() -> None:
    cfg, states = _states("default", 13)
    for s in states[::10]:
        host = {f.key: f.read(s, 0) for f in SCHEMA if f.record is Record.HOST}
        vms = [{f.key: f.read(s, v) for f in SCHEMA if f.record is not Record.HOST}
               for v in range(cfg.vms)]
        assert assemble(host, vms) == s


def test_readme_state_table_is_generated_from_the_schema() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index(START)
    body = text[text.index("\n", start) + 1:text.index(END)]
    assert body == render_state_table(), (
        "README.md's state table differs from model/schema.py; regenerate it with "
        "`python -m ballast.model.schema` and paste the output between the markers")


def test_state_table_names_every_field_once() -> None:
    table = render_state_table()
    for f in SCHEMA:
        assert table.count(f"| `{f.path}` |") == 1


@pytest.mark.parametrize("name", ["default", "hostile", "processors"])
def test_the_dict_form_is_the_records_plain_values_and_reads_back(name: str) -> None:
    _, states = _states(name, 5)
    for s in states[::5]:
        d = s.to_dict()
        assert json.dumps(d) == json.dumps(plain_value(s))  # same keys, order and values
        assert state_from_dict(d) == s


def test_a_dict_without_a_field_is_refused() -> None:
    d = _states("default", 1)[1][0].to_dict()
    del d["vms"][0]["module"]["actual"]
    with pytest.raises(KeyError):
        state_from_dict(d)
