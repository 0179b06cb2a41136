"""The virtio profile: the VirtIO 5.5 rules checked over a stream of device events, and what
the profile encodes of the model."""
