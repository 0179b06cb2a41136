"""QEMU's virtio-balloon device with the Linux driver, judged by the model.

- :mod:`~ballast.validate.qemu.events` -- the events of a capture's logs (one hierarchy);
- :mod:`~ballast.validate.qemu.source`, :mod:`~ballast.validate.qemu.fields`,
  :mod:`~ballast.validate.qemu.bulk`, :mod:`~ballast.validate.qemu.trace_reader`,
  :mod:`~ballast.validate.qemu.qmp_reader` -- reading the trace and QMP logs, streaming;
- :mod:`~ballast.validate.qemu.steps` -- trace events as virtio profile events and model steps;
- :mod:`~ballast.validate.qemu.model_judge` -- the reference model applied step by step;
- :mod:`~ballast.validate.qemu.qmp_check` -- the QMP log cross-checked with the trace;
- :mod:`~ballast.validate.qemu.capture` and its parts -- booting a guest and recording a capture.
"""
