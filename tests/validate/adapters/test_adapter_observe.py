"""Adapter observation keys: the state paths come from the state schema."""

from pathlib import Path

from ballast.model.config import preset
from ballast.model.schema import SCHEMA, Kind
from ballast.model.state import initial_state
from ballast.validate.adapters.observe import OBSERVATIONS, expand_keys, is_state_path, observe

DOC = Path(__file__).resolve().parents[3] / "docs" / "adapter-protocol.md"


def test_state_paths_are_the_schema_fields_marked_observable() -> None:
    paths = [k for k in OBSERVATIONS if is_state_path(k.replace("*", "0"))]
    assert paths == [f.path for f in SCHEMA if f.observable]
    for f in SCHEMA:
        if f.observable:
            assert OBSERVATIONS[f.path].unordered == (f.kind in (Kind.SET, Kind.QUEUE))


def test_every_state_path_observes_the_field_it_names() -> None:
    cfg = preset("default")
    s = initial_state(cfg)
    keys = expand_keys(cfg, [f.path for f in SCHEMA if f.observable])
    obs = observe(s, keys)
    for f in SCHEMA:
        if not f.observable:
            continue
        for v in range(cfg.vms) if f.per_vm else [0]:
            value = f.read(s, v)
            want = sorted(value) if f.kind in (Kind.SET, Kind.QUEUE) else value
            assert obs[f.path.replace("*", str(v))] == want


def test_protocol_document_lists_every_observation_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [k for k in OBSERVATIONS if f"| `{k}` |" not in text]
    assert missing == [], f"docs/adapter-protocol.md does not list {missing}"
