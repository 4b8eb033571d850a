"""pyprocd: a procd-compatible service supervisor for OpenWrt, in CPython."""

__version__ = "0.1.0"
