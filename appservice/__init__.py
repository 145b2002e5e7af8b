"""The Matrix edge of visio-bridge: HTTP intake, commands, rendering, and the wiring of it all."""
