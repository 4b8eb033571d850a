# functions.sh - shell helpers for init scripts (pyprocd's init-script kit).
#
# UCI access the OpenWrt way: config_load evaluates `uci export` output, in
# which every line is a call of one of the functions below (package, config,
# option, list). Each option ends up in CONFIG_<section>_<option>; each
# section in CONFIG_SECTIONS with its type in CONFIG_<section>_TYPE; a list
# option also gets _ITEM<n> and _LENGTH variables and is joined with
# LIST_SEP. Scripts hook config_cb / option_cb / list_cb to see the config
# while it loads. Variables are not exported unless NO_EXPORT is emptied.

NO_EXPORT=1
LOAD_STATE=1
LIST_SEP=" "

# `export -n` (assign and keep unexported) where the shell has it (busybox
# ash); where it does not (dash) a plain assignment does the same job.
if (export -n _kit_probe=1) 2>/dev/null; then
	_kit_export_n=1
else
	_kit_export_n=
fi

# the no-op callbacks; reset_cb brings them back
config_cb() { return 0; }
option_cb() { return 0; }
list_cb() { return 0; }

reset_cb() {
	config_cb() { return 0; }
	option_cb() { return 0; }
	list_cb() { return 0; }
}

debug() {
	${DEBUG:-:} "$@"
}

# append VAR VALUE [SEP]: no separator around an empty value
append() {
	local __var="$1" __value="$2" __sep="${3:- }"
	eval "_kit_assign \"\$__var\" \"\${$__var:+\${$__var}\${__value:+\$__sep}}\$__value\""
}

# prepend VAR VALUE [SEP]: the separator goes in whenever VAR is not empty
prepend() {
	local __var="$1" __value="$2" __sep="${3:- }"
	eval "_kit_assign \"\$__var\" \"\$__value\${$__var:+\$__sep\${$__var}}\""
}

# list_contains VAR VALUE: is VALUE (a glob pattern) a word of $VAR?
list_contains() {
	local __var="$1" __str="$2" __val
	eval "__val=\" \${$__var} \""
	[ "${__val%% $__str *}" != "$__val" ]
}

# the functions `uci export` output calls
package() {
	return 0
}

config() {
	local __type="$1" __name="$2"
	_kit_assign CONFIG_NUM_SECTIONS "$((CONFIG_NUM_SECTIONS + 1))"
	__name="${__name:-cfg$CONFIG_NUM_SECTIONS}"
	append CONFIG_SECTIONS "$__name"
	_kit_assign CONFIG_SECTION "$__name"
	config_set "$CONFIG_SECTION" TYPE "$__type"
	[ -n "$NO_CALLBACK" ] || config_cb "$__type" "$__name"
	return 0
}

option() {
	local __name="$1"
	shift
	config_set "$CONFIG_SECTION" "$__name" "$*"
	[ -n "$NO_CALLBACK" ] || option_cb "$__name" "$*"
}

list() {
	local __name="$1" __len
	shift
	config_get __len "$CONFIG_SECTION" "${__name}_LENGTH" 0
	[ "$__len" = 0 ] && append CONFIG_LIST_STATE "${CONFIG_SECTION}_$__name"
	__len=$((__len + 1))
	config_set "$CONFIG_SECTION" "${__name}_ITEM$__len" "$*"
	config_set "$CONFIG_SECTION" "${__name}_LENGTH" "$__len"
	append "CONFIG_${CONFIG_SECTION}_$__name" "$*" "$LIST_SEP"
	[ -n "$NO_CALLBACK" ] || list_cb "$__name" "$*"
}

config_unset() {
	config_set "$1" "$2" ""
}

config_set() {
	_kit_assign "CONFIG_${1}_$2" "$3"
}

# 0/1 for the spellings UCI uses, else the default (empty if none)
_kit_get_bool() {
	case "$2" in
	1|on|true|yes|enabled) eval "$1=1" ;;
	0|off|false|no|disabled) eval "$1=0" ;;
	*) eval "$1=\$3" ;;
	esac
}

get_bool() {
	local __bool
	_kit_get_bool __bool "$1" "$2"
	echo "$__bool"
}

config_get_bool() {
	local __tmp
	config_get __tmp "$2" "$3" "$4"
	_kit_get_bool __tmp "$__tmp" "$4"
	_kit_assign "$1" "$__tmp"
}

# config_get VAR SECTION OPTION [DEFAULT] sets VAR; config_get SECTION OPTION
# prints. An empty value takes the default; a section or option name that is
# not a shell name makes it a no-op.
config_get() {
	case "$2${3:-$1}" in
	*[!A-Za-z0-9_]*) : ;;
	*)
		case "$3" in
		"") eval echo "\"\${CONFIG_${1}_${2}:-\${4}}\"" ;;
		*) eval "_kit_assign \"\$1\" \"\${CONFIG_${2}_${3}:-\${4}}\"" ;;
		esac
		;;
	esac
}

# NAME VALUE, exported unless NO_EXPORT is set. A NAME that is no shell
# name fails like `export` does; ash names this line in its message
# ("export: line 146: bad-var: bad variable name"), and so does OpenWrt's
# kit for its own config_get, so the line stays where it is (line 146;
# tests/initd checks it).
_kit_assign() {
	if [ -z "$NO_EXPORT" ]; then
		export -- "$1=$2"
	elif [ -n "$_kit_export_n" ]; then
		export -n -- "$1=$2"
	else
		eval "$1=\$2"
	fi
}

config_foreach() {
	local __function="$1"
	[ "$#" -ge 1 ] && shift
	local __type="$1"
	[ "$#" -ge 1 ] && shift
	local section cfgtype
	[ -z "$CONFIG_SECTIONS" ] && return 0
	for section in $CONFIG_SECTIONS; do
		config_get cfgtype "$section" TYPE
		[ -n "$__type" ] && [ "x$cfgtype" != "x$__type" ] && continue
		"$__function" "$section" "$@"
	done
}

config_list_foreach() {
	[ "$#" -ge 3 ] || return 0
	local section="$1" option="$2" __function="$3" __len __val __c=1
	shift 3
	config_get __len "$section" "${option}_LENGTH"
	[ -z "$__len" ] && return 0
	while [ "$__c" -le "$__len" ]; do
		config_get __val "$section" "${option}_ITEM$__c"
		"$__function" "$__val" "$@"
		__c=$((__c + 1))
	done
}

config_load() {
	[ -n "$IPKG_INSTROOT" ] && return 0
	uci_load "$@"
}

include() {
	local __file
	for __file in $(ls "$1"/*.sh 2>/dev/null); do
		. "$__file"
	done
}

board_name() {
	[ -e /tmp/sysinfo/board_name ] && cat /tmp/sysinfo/board_name || echo "generic"
}

# xor HEX HEX...: printed with the width of the first
xor() {
	local __ret="0x$1" __len="${#1}"
	shift
	while [ -n "$1" ]; do
		__ret=$((__ret ^ 0x$1))
		shift
	done
	printf "%0${__len}x" "$__ret"
}

# hex text in groups of four, space separated
data_2xor_val() {
	local __data="$1" __out="" __head
	while [ "${#__data}" -gt 4 ]; do
		__head="${__data%"${__data#????}"}"
		__out="$__out$__head "
		__data="${__data#????}"
	done
	printf '%s' "$__out$__data"
}

# hex text -> the bytes it spells
data_2bin() {
	local __data="$1" __byte
	while [ -n "$__data" ]; do
		__byte="${__data%"${__data#??}"}"
		__data="${__data#??}"
		printf "\\$(printf '%03o' "$((0x$__byte))")"
	done
}

user_exists() {
	grep -qs "^${1}:" "${IPKG_INSTROOT}/etc/passwd"
}

group_exists() {
	grep -qs "^${1}:" "${IPKG_INSTROOT}/etc/group"
}

. "${PYPROCD_KIT_ROOT:-$IPKG_INSTROOT}/lib/config/uci.sh"
