"""core: service/instance specs, diff, instance state machine, registry, triggers.

Pure logic over a clock and an abstract spawner: no ubus, no fork, no syscalls.
"""
