"""Small things every layer shares: syslog priorities, the spawn error type.

Kept here so that the core (pure logic) and the process layer (syscalls)
need not import each other.
"""

LOG_ERR = 3
LOG_WARNING = 4
LOG_NOTICE = 5
LOG_INFO = 6
LOG_DEBUG = 7
LOG_DAEMON = 3 << 3


class SpawnError(Exception):
    """An instance cannot be started; str() is the reason shown to users."""
