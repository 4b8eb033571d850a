"""The init-script kit: OpenWrt's shell side of procd, for any Linux host.

`kit/` holds the shell files (rc.common, procd.sh, functions.sh, uci.sh,
jshn.sh) written from the recorded behaviour of OpenWrt's own; the Python
modules are the programs they call (`jshn`, `validate_data`) and the two
ways to use the kit (`pyprocd initd`, `pyprocd kit install`).
"""
