"""Chat both ways between a room and its call: wire formats, the mirror, our participant."""
