"""api: the `service` ubus object, serving the core's method table."""
