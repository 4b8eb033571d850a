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

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def clamp_int32(n):
    return max(INT32_MIN, min(n, INT32_MAX))


def atoi(text):
    """C atoi(): leading blanks, one optional sign, ASCII digits; anything else
    stops it ("--5" is 0). Saturates at the 32-bit int range, as strtol does
    on the 32-bit routers (on 64-bit glibc the result of an overflow differs)."""
    text = text.lstrip(" \t\n\r\v\f")
    sign, start = 1, 0
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        start = 1
    end = start
    while end < len(text) and "0" <= text[end] <= "9":
        end += 1
    if end == start:
        return 0
    digits = text[start:end].lstrip("0")[:11]  # more digits than int32 holds: saturated anyway
    return clamp_int32(sign * int(digits or "0"))
