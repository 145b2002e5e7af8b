"""The status message: one per meeting, posted when it starts and edited as people come and go."""
