# Test stand-ins for OpenWrt's /lib/functions.sh (config_*) and
# /lib/functions/procd.sh (procd_*), written for these tests.
#
# Every procd_* call (and ubus/logger) is recorded in $PROCD_STUB_LOG as one
# line: the function name and its arguments, each followed by \037. The test
# turns the records into the JSON procd.sh would send with `ubus call service
# set`, following the procd.sh mapping in shared/spec/procd-service-api.md §7.
# UCI files are read the way uci_load does it: `uci export` output is shell
# (package/config/option/list calls), and so is the file itself.

_stub_record() {
	printf '%s\037' "$@" >>"$PROCD_STUB_LOG"
	printf '\n' >>"$PROCD_STUB_LOG"
}

_stub_section_count=0
package() { :; }
config() {
	local type="$1" section="$2"
	_stub_section_count=$((_stub_section_count + 1))
	[ -n "$section" ] || section="cfg$_stub_section_count"
	CONFIG_SECTION="$section"
	eval "CONFIG_${section}_TYPE=\$type"
}
option() { eval "CONFIG_${CONFIG_SECTION}_$1=\$2"; }
list() { eval "CONFIG_${CONFIG_SECTION}_$1=\"\${CONFIG_${CONFIG_SECTION}_$1:+\${CONFIG_${CONFIG_SECTION}_$1} }\$2\""; }

config_load() { . "$UCI_CONFIG_DIR/$1"; }

# config_get <var> <section> <option> [default]: default when unset or empty.
config_get() { eval "$1=\${CONFIG_$2_$3:-\$4}"; }

# config_get_bool <var> <section> <option> [default]: 1/0.
config_get_bool() {
	local _b
	eval "_b=\${CONFIG_$2_$3:-\$4}"
	case "$_b" in
	1|on|true|yes|enabled) _b=1 ;;
	0|off|false|no|disabled) _b=0 ;;
	*) _b="$4" ;;
	esac
	eval "$1=\$_b"
}

procd_open_service() { _stub_record procd_open_service "$@"; }
procd_open_instance() { _stub_record procd_open_instance "$@"; }
procd_set_param() { _stub_record procd_set_param "$@"; }
procd_append_param() { _stub_record procd_append_param "$@"; }
procd_close_instance() { _stub_record procd_close_instance "$@"; }
procd_add_reload_trigger() { _stub_record procd_add_reload_trigger "$@"; }
procd_add_raw_trigger() { _stub_record procd_add_raw_trigger "$@"; }

# procd.sh: closes `instances`, collects the script's triggers, sends `set`.
procd_close_service() {
	if type service_triggers >/dev/null 2>&1; then
		service_triggers
	fi
	_stub_record procd_close_service "$@"
}

ubus() { _stub_record ubus "$@"; }
logger() { _stub_record logger "$@"; }
