"""bus: ubus client, host bus (broker) and the ubus command line."""
