"""Recording fakes of the bridge's ports, for the fast tests."""
