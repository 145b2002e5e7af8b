"""Meetings: the store, the start/end service, and the lifecycle LiveKit's webhooks drive."""
