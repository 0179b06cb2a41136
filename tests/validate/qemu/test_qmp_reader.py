"""Reading QEMU's QMP log (:mod:`ballast.validate.qemu.qmp_reader`): what a refused
``x-query-virtio-status`` answer says was expected (the rest is in ``test_log.py``)."""

from __future__ import annotations

import json

import pytest

from ballast.validate.qemu.source import QemuLogError
from ballast.validate.qemu.qmp_reader import feature_bits, read_qmp


def _status_log(features: object) -> list[str]:
    """A QMP log whose ``x-query-virtio-status`` answer (line 3) has ``features``."""
    records = [
        {"t": 1, "dir": "recv", "msg": {"QMP": {"version": {}, "capabilities": []}}},
        {"t": 2, "dir": "send",
         "msg": {"execute": "x-query-virtio-status", "id": 1, "arguments": {"path": "/b"}}},
        {"t": 3, "dir": "recv",
         "msg": {"return": {"name": "virtio-balloon", "guest-features": features,
                            "host-features": 0}, "id": 1}},
    ]
    return [json.dumps(r) for r in records]


@pytest.mark.parametrize(
    ("features", "words", "got"),
    [
        ({"dev-features": [7]}, '"dev-features" must be a list of strings', "got an item 7"),
        ({"dev-features": "STATS_VQ"}, '"dev-features" must be a list', "got 'STATS_VQ'"),
        ("6", "must be a feature mask (an integer) or an object", "got '6'"),
        (True, "must be a feature mask (an integer) or an object", "got True"),
    ],
)
def test_malformed_features_say_what_was_expected(features: object, words: str,
                                                  got: str) -> None:
    with pytest.raises(QemuLogError) as caught:
        list(read_qmp(_status_log(features), name="qmp.log"))
    assert caught.value.line == 3 and words in caught.value.message, caught.value.message
    assert caught.value.message.endswith(got)  # and what it got instead


def test_a_long_value_is_cut_short_in_the_message() -> None:
    with pytest.raises(ValueError) as caught:
        feature_bits({"dev-features": ["x" * 1000, 1]})
    with pytest.raises(ValueError) as long:
        feature_bits({"dev-features": [["y" * 1000]]})
    assert "got an item 1" in str(caught.value) and len(str(long.value)) < 300
