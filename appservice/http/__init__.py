"""The HTTP edge: the appservice API, LiveKit webhooks, the join, widget and token routes."""
