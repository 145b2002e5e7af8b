"""Call recordings: starting and stopping LiveKit's egress, and telling the room about it."""
