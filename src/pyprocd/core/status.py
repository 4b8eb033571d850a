"""ubus status codes, as procd's `service` methods return them, and the
exceptions a core operation raises to ask for one.

One definition, in the wire layer (they are protocol facts); the core
re-exports the ones its method table uses. wire.ubusmsg imports nothing
above the wire layer, so this adds no dependency cycle.
"""

import errno
import os

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


class CallError(Exception):
    """A core operation refused: `status` is the ubus status the api layer answers."""

    status = UNKNOWN_ERROR

    def __init__(self, message="", status=None):
        super().__init__(message)
        if status is not None:
            self.status = status


class NotFound(CallError):
    status = NOT_FOUND


class InvalidArgument(CallError):
    status = INVALID_ARGUMENT


class PermissionDenied(CallError):
    status = PERMISSION_DENIED


def error_for_errno(err):
    """procd's mapping of a failed kill() (spec §1.4)."""
    kind = {errno.EINVAL: InvalidArgument, errno.EPERM: PermissionDenied,
            errno.ESRCH: NotFound}.get(err, CallError)
    return kind(os.strerror(err))
