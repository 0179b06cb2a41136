"""Small configurations and random reachable states for the proof tests."""

from __future__ import annotations

import random

from ballast.model.config import Config, GuestPolicyName, ModuleKind
from ballast.model.faults import FAULTS
from ballast.model.state import State
from ballast.model.system import BalloonModel

#: Every feature switched on, sized so that one state's check takes well under a second.
RICH = Config(vms=2, guest_pages=2, guest_data_pages=2, guest_disk_slots=1, machine_pages=4,
              host_swap=True, host_swap_slots=1, sharing=True, refusal=True, reset=True,
              deflate_on_oom=True, processors=True, vcpus=2, pcpus=5, tokens=2, batch=2,
              hostile_vms=frozenset({1}))

#: Configurations the agreement tests draw from (module kinds, policies, virtio flags).
CONFIGS = {
    "rich": RICH,
    "virtio": Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                     machine_pages=3, must_tell_host=False, deflate_on_oom=True),
    "application": Config(vms=1, guest_pages=3, guest_data_pages=2, machine_pages=3,
                          module=ModuleKind.APPLICATION, pin_limit=2, kernel_reserve=1),
    "any-policy": Config(vms=1, guest_pages=3, guest_data_pages=2, machine_pages=4,
                         guest_policy=GuestPolicyName.ANY, kernel_reserve=1, sharing=True),
    "hugepages": Config(vms=2, guest_pages=2, guest_data_pages=1, machine_pages=4,
                        host_page_units=2),
    "real-driver": Config(vms=1, guest_pages=3, guest_data_pages=2, guest_disk_slots=1,
                          machine_pages=3, must_tell_host=False, deflate_on_oom=True,
                          guest_policy=GuestPolicyName.ANY, migration=True, oom_notifier=True,
                          accept_beyond_target=True),
}

#: The small configuration each seeded fault is refuted on (plus the fault's own changes).
CONTROL = Config(vms=2, guest_pages=2, guest_data_pages=1, guest_disk_slots=1, machine_pages=4,
                 host_swap_slots=1, tokens=1, batch=1)


#: The control configuration with one VM, for the faults within one VM.
ONE_VM = CONTROL.replace(vms=1, machine_pages=2)


def control_config(fault: str) -> Config:
    """The negative-control configuration of one seeded fault."""
    f = FAULTS[fault]
    base = CONTROL
    if not f.config.get("sharing") and f.config.get("vms", 1) == 1:
        # A fault within one VM shows on one VM; a bounded search over two costs about
        # five times as much.
        base = ONE_VM
    if fault == "release_keeps_balloon_set":
        # The accounting fault needs a full inflate-deflate round trip (10 steps): one VM
        # with one page keeps the bounded search short.
        base = Config(vms=1, guest_pages=1, guest_data_pages=1, guest_disk_slots=0,
                      machine_pages=1, host_swap_slots=0, tokens=1, batch=1, host_use=False)
    if fault == "migrate_forgets_old_page":
        # A migration needs a balloon page and a free one; nothing else keeps the
        # eight-step search short.
        base = Config(vms=1, guest_pages=2, guest_data_pages=0, guest_disk_slots=0,
                      machine_pages=2, host_swap_slots=0, tokens=1, batch=1, host_use=False)
    return base.replace(**f.config)


def random_walk(cfg: Config, seed: int, length: int, faults: tuple[str, ...] = ()
                ) -> list[State]:
    """The states of one random run of the model (the initial state first)."""
    model = BalloonModel(cfg, faults)
    rng = random.Random(seed)
    s = model.init_states()[0]
    out = [s]
    for _ in range(length):
        succ = list(model.successors(s))
        if not succ:
            break
        # Pick an action name first, so that rare actions are not drowned by common ones.
        names = sorted({a.name for a, _ in succ})
        pick = rng.choice(names)
        s = rng.choice([post for a, post in succ if a.name == pick])
        out.append(s)
    return out
