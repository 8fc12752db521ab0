"""supervise: the daemontools 0.76 service supervision and logging tools."""
