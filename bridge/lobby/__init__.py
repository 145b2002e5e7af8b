"""The lobby: guests knock on the join page, the room answers with a reaction."""
