"""The inbox: Matrix events stored before a transaction is acknowledged, then processed in order."""
