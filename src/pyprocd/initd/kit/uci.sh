# uci.sh - UCI from shell through /sbin/uci (pyprocd's init-script kit).
# UCI_CONFIG_DIR selects another config directory; the *_state functions
# work on the runtime state in /var/state.

# load a package into CONFIG_* variables (see functions.sh); CONFIG_APPEND
# keeps what an earlier load found
uci_load() {
	local __package="$1" __data __ret __var
	if [ -z "$CONFIG_APPEND" ]; then
		for __var in $CONFIG_LIST_STATE; do
			_kit_assign "CONFIG_$__var" ""
			_kit_assign "CONFIG_${__var}_LENGTH" ""
		done
		_kit_assign CONFIG_LIST_STATE ""
		_kit_assign CONFIG_SECTIONS ""
		_kit_assign CONFIG_NUM_SECTIONS 0
		_kit_assign CONFIG_SECTION ""
	fi
	__data="$("$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} ${LOAD_STATE:+-P /var/state} -S -n export "$__package" 2>/dev/null)"
	__ret=$?
	[ "$__ret" != 0 ] || [ -z "$__data" ] || eval "$__data"
	unset __data
	${CONFIG_SECTION:+config_cb}
	return "$__ret"
}

_uci_path() {
	printf '%s' "$1${2:+.$2}${3:+.$3}"
}

# uci_get PACKAGE [SECTION [OPTION [DEFAULT [STATEDIR]]]] or uci_get PACKAGE.SECTION.OPTION
uci_get() {
	local __ret
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} ${5:+-P "$5"} -q get "$(_uci_path "$1" "$2" "$3")"
	__ret=$?
	[ "$__ret" -ne 0 ] && [ -n "$4" ] && echo "$4"
	return "$__ret"
}

uci_set() {
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} set "$1.$2.$3=$4"
}

uci_add_list() {
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} add_list "$1.$2.$3=$4"
}

uci_remove_list() {
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} del_list "$1.$2.$3=$4"
}

uci_remove() {
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} del "$(_uci_path "$1" "$2" "$3")"
}

# uci_rename PACKAGE SECTION NAME or PACKAGE SECTION OPTION NAME
uci_rename() {
	if [ "$#" -ge 4 ]; then
		"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} rename "$1.$2.$3=$4"
	else
		"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} rename "$1.$2=$3"
	fi
}

uci_revert() {
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} ${4:+-P "$4"} revert "$(_uci_path "$1" "$2" "$3")"
}

uci_commit() {
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} commit $1
}

# uci_add PACKAGE TYPE [NAME]: the new section's name lands in CONFIG_SECTION
uci_add() {
	if [ -z "$3" ]; then
		_kit_assign CONFIG_SECTION "$("$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} add "$1" "$2")"
	else
		"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} set "$1.$3=$2"
		_kit_assign CONFIG_SECTION "$3"
	fi
}

# import stdin as PACKAGE unless it exists already
uci_set_default() {
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} -q show "$1" >/dev/null && return 0
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} import "$1"
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} commit "$1"
}

uci_get_state() {
	uci_get "$1" "$2" "$3" "$4" /var/state
}

uci_set_state() {
	[ "$#" = 4 ] || return 0
	"$PYPROCD_KIT_ROOT"/sbin/uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} -P /var/state set "$(_uci_path "$1" "$2" "$3")=$4"
}

uci_revert_state() {
	uci_revert "$1" "$2" "$3" /var/state
}

uci_toggle_state() {
	uci_revert_state "$1" "$2" "$3"
	uci_set_state "$1" "$2" "$3" "$4"
}
