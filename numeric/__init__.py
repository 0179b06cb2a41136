"""The fast numeric core: the model's actions and invariants on NumPy arrays, at scale.

Modules: :mod:`.arrays` (the state as arrays, exact conversion to and from a model
``State``), :mod:`.engine` (every action, batched over VMs, seeded faults),
:mod:`.invariants` (every state invariant, vectorised), :mod:`.workload` (random
batches), :mod:`.runner` (one seed), :mod:`.shrink`, :mod:`.campaign` (many
seeds over processes), :mod:`.scale`, :mod:`.suite` (``ballast check``) and
:mod:`.cli` (``ballast fuzz``).
"""
