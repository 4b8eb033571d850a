"""daemon: main loop, signals, detach/pidfile/monitor, re-exec, settings."""
