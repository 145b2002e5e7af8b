"""Room settings: the room's state event, parsed and checked, and the operator's limits over it."""
