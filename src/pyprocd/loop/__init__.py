"""loop: the single-threaded event loop everything runs on."""

from pyprocd.loop.loop import Loop, Timer

__all__ = ["Loop", "Timer"]
