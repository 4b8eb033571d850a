"""process: the OS side of supervision: spawner, child setup, cffi shim, log sink, pidfiles."""
