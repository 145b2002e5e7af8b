"""Getting into a call: LiveKit tokens, and members proving who they are with Matrix OpenID."""
