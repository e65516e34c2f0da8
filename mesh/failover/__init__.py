"""The failover controller (CONF-49): moves a managed TrafficSplit's weight from the
primary Service to its secondaries while the primary has no ready endpoints, and back."""
