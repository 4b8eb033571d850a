# The one description of the OpenWrt package `pyprocd`.
#
# Read by both builders, so the feed and `make ipk` cannot drift apart:
#   - feeds/pyprocd/pyprocd/Makefile includes it (OpenWrt build tree / SDK);
#   - tools/ipk/mkipk.py parses it (`make ipk`, any Linux host, no SDK).
# Keep to plain `NAME:=value` lines (a trailing \ continues a line) so that
# both GNU make and the Python reader understand it.
# The version is not here: both take it from src/pyprocd/__init__.py.

PYPROCD_RELEASE:=1
PYPROCD_TITLE:=procd-compatible service supervisor in Python
PYPROCD_SECTION:=utils
PYPROCD_CATEGORY:=Utilities
PYPROCD_LICENSE:=GPL-2.0-only
PYPROCD_MAINTAINER:=pyprocd developers <pyprocd@users.noreply.github.com>
PYPROCD_DESCRIPTION:=pyprocd serves the ubus object `service` with procd's API (or the same API under its own name next to procd), so unmodified procd-style init scripts, LuCI and ubus clients can use it. One process, one event loop, standard library plus cffi.

# Runtime packages. python3-light is the interpreter plus most of the standard
# library; every other standard-library module pyprocd imports lives in its own
# python3-* package and must be listed here (tests/packaging checks the imports).
PYPROCD_DEPENDS:=python3-light python3-cffi

PYPROCD_CONFFILES:=/etc/config/pyprocd

# Files besides the Python package: <path on the router>:<mode>.
# Each one is openwrt/files<path on the router> in the checkout.
PYPROCD_FILES:= \
	/usr/bin/pyprocd:0755 \
	/etc/init.d/pyprocd:0755 \
	/etc/config/pyprocd:0644 \
	/lib/functions/pyprocd.sh:0644

# The Python package: src/<name> goes to the interpreter's site-packages/<name>.
PYPROCD_PYTHON_PACKAGE:=pyprocd

# Interpreter whose site-packages `make ipk` installs into (the feed uses the
# feed's own PYTHON3_VERSION). 3.11 is the python3 of OpenWrt 23.05 and 24.10,
# the releases whose package manager is opkg.
PYPROCD_IPK_PYTHON_VERSION:=3.11
