"""The visio-bridge domain: meetings, LiveKit, persistence. Never imports mautrix or appservice/."""
