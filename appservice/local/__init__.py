"""Local servers for the demo and the tests: Synapse, livekit-server, and free ports."""
