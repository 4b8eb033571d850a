# Let an unmodified procd-style init script be managed by pyprocd on a router
# where procd owns the ubus object `service`.
#
# Add this one line right below the `#!/bin/sh /etc/rc.common` line of the
# init script:
#
#     [ -f /lib/functions/pyprocd.sh ] && . /lib/functions/pyprocd.sh
#
# rc.common sources the init script before procd.sh, so this file defines a
# shell function `ubus` that shadows the ubus binary for the whole script run:
# procd.sh (`ubus call service set|add|delete|list|signal|...`), rc.common's
# status/info/running and anything the script calls itself. Shell functions
# win over PATH lookups and are inherited by $(...) subshells, so procd.sh
# and rc.common stay unmodified. The function renames the object `service` to
# the one pyprocd serves and runs the real ubus with everything else as is.
#
# Settings (environment, or set before the line above):
#   PYPROCD_OBJECT    object to use instead of `service`; default: option
#                     `object` of /etc/config/pyprocd, else `pyprocd`
#   PYPROCD_FALLBACK  1: if that object is not on the bus, use procd's
#                     `service` (default 0: fail like any call to a missing
#                     object, so a service never silently changes manager)
# Where no procd runs, pyprocd serves `service` itself and this file is a
# no-op (the object option is then `service`). At boot pyprocd is up once
# S13pyprocd has run: opt in only scripts with START above 13.
# Runs under busybox ash; POSIX sh only.

if [ -z "$PYPROCD_OBJECT" ]; then
	PYPROCD_OBJECT=$(uci -q get pyprocd.main.object 2>/dev/null)
	: "${PYPROCD_OBJECT:=pyprocd}"
fi

# The object a `service` argument becomes: pyprocd's, or procd's if fallback
# is on and pyprocd is not on the bus (checked with the call's own options).
_pyprocd_target() {
	if [ "${PYPROCD_FALLBACK:-0}" = 1 ] && ! command ubus "$@" list "$PYPROCD_OBJECT" >/dev/null 2>&1; then
		echo service
	else
		echo "$PYPROCD_OBJECT"
	fi
}

ubus() {
	# Walk the arguments once: options (-s/-t/-m/-M take a value), the verb,
	# then the object path(s). Each argument is shifted off the front and put
	# back at the end, renamed where it is the object `service`.
	local arg state=opt verb= target= opts=
	for arg; do
		shift
		case "$state" in
		opt)
			case "$arg" in
			-s|-t|-m|-M) state=optval; opts="$opts $arg" ;;
			-*) ;;
			*) verb=$arg; state=path ;;
			esac
			;;
		optval)
			state=opt; opts="$opts $arg"
			;;
		path)
			if [ "$arg" = service ]; then
				case "$verb" in
				call|list|subscribe|wait_for)
					# shellcheck disable=SC2086 # option words, no globbing
					[ -n "$target" ] || target=$(_pyprocd_target $opts)
					arg=$target
					;;
				esac
			fi
			# call and list name one object; subscribe and wait_for several.
			case "$verb" in
			subscribe|wait_for) ;;
			*) state=rest ;;
			esac
			;;
		esac
		set -- "$@" "$arg"
	done
	command ubus "$@"
}
