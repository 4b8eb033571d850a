"""ubus status codes, as procd's `service` methods return them.

One definition, in the wire layer (they are protocol facts); the core
re-exports the ones its method table uses. wire.ubusmsg imports nothing
above the wire layer, so this adds no dependency cycle.
"""

from pyprocd.wire.ubusmsg import (  # noqa: F401 - re-exported
    CONNECTION_FAILED,
    INVALID_ARGUMENT,
    INVALID_COMMAND,
    METHOD_NOT_FOUND,
    NO_DATA,
    NOT_FOUND,
    NOT_SUPPORTED,
    OK,
    PERMISSION_DENIED,
    TIMEOUT,
    UNKNOWN_ERROR,
)
