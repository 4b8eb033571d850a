# procd.sh - describe a service to procd (pyprocd's init-script kit).
#
# An init script builds one JSON message per action in the jshn namespace
# "procd" and sends it with `ubus call service set|add|delete|signal|...`:
#
#   procd_open_service NAME [SCRIPT]      { "name", "script", "instances": {
#     procd_open_instance [NAME]            "<NAME or instanceN>": {
#       procd_set_param KEY VALUE...          "KEY": ...
#     procd_close_instance                  }
#   procd_close_service [set|add]         }, "triggers": [...], "data": {...} }
#
# The public functions switch to the "procd" namespace and back, so a
# script's own json_* document is left alone; they return the status of
# that switch (0), like OpenWrt's. PROCD_DEBUG=1 also writes each message to
# stderr before it is sent. PROCD_RELOAD_DELAY (ms, default 1000; 0: none)
# is the delay element of the triggers added after it is set.

. "${PYPROCD_KIT_ROOT:-$IPKG_INSTROOT}/usr/share/libubox/jshn.sh"

PROCD_RELOAD_DELAY=1000
_PROCD_SERVICE=
_procd_instance_seq=0
_procd_trigger_depth=0

# procd_NAME runs _procd_NAME in the "procd" namespace
_procd_in_namespace() {
	local _json_no_warning=1 __procd_saved
	json_set_namespace procd __procd_saved
	"$@"
	json_set_namespace "$__procd_saved"
}

_procd_ubus_call() {
	[ -n "$PROCD_DEBUG" ] && json_dump >&2
	ubus call service "$1" "$(json_dump)"
	json_cleanup
}

_procd_open_service() {
	json_init
	_PROCD_SERVICE="$1"
	_procd_instance_seq=0
	json_add_string name "$1"
	[ -n "$2" ] && json_add_string script "$2"
	json_add_object instances
}

_procd_close_service() {
	json_close_object
	_procd_open_trigger
	service_triggers
	_procd_close_trigger
	json_add_object data
	service_data
	json_close_object
	_procd_ubus_call "${1:-set}"
}

_procd_open_instance() {
	_procd_instance_seq=$((_procd_instance_seq + 1))
	json_add_object "${1:-instance$_procd_instance_seq}"
	[ -n "$TRACE_SYSCALLS" ] && json_add_boolean trace 1
}

# an empty respawn gets procd's defaults, or the ones UCI system.@service[0] sets
_procd_close_instance() {
	local __values
	if json_select respawn; then
		json_get_values __values
		if [ -z "$__values" ]; then
			json_add_string "" "$(uci_get system @service[0] respawn_threshold 3600)"
			json_add_string "" "$(uci_get system @service[0] respawn_timeout 5)"
			json_add_string "" "$(uci_get system @service[0] respawn_retry 5)"
		fi
		json_select ..
	fi
	json_close_object
}

# KEY=VALUE... (no '=': empty value) up to the first empty argument
_procd_add_table_data() {
	local __key __value
	while [ -n "$1" ]; do
		__key="${1%%=*}"
		__value="${1#*=}"
		[ "$__value" = "$1" ] && __value=
		json_add_string "$__key" "$__value"
		shift
	done
}

_procd_add_array_data() {
	while [ "$#" -gt 0 ]; do
		json_add_string "" "$1"
		shift
	done
}

_procd_set_param() {
	local __type="$1"
	shift
	case "$__type" in
	env|data|limits)
		json_add_object "$__type"
		_procd_add_table_data "$@"
		json_close_object
		;;
	command|netdev|file|respawn|watch|watchdog)
		json_add_array "$__type"
		_procd_add_array_data "$@"
		json_close_array
		;;
	error)
		json_add_array "$__type"
		json_add_string "" "$1"
		json_close_array
		;;
	nice|term_timeout)
		json_add_int "$__type" "$1"
		;;
	reload_signal)
		json_add_int "$__type" "$(kill -l "$1")"
		;;
	pidfile|user|group|seccomp|capabilities|facility|extroot|overlaydir|tmpoverlaysize|vrf)
		json_add_string "$__type" "$1"
		;;
	stdout|stderr|no_new_privs)
		json_add_boolean "$__type" "$1"
		;;
	esac
}

# appends to a table or array parameter; sets it when it is missing
_procd_append_param() {
	local __type="$1"
	shift
	json_select "$__type" || {
		_procd_set_param "$__type" "$@"
		return
	}
	case "$__type" in
	env|data|limits) _procd_add_table_data "$@" ;;
	command|netdev|file|respawn|watch|watchdog) _procd_add_array_data "$@" ;;
	error) json_add_string "" "$1" ;;
	esac
	json_select ..
}

_procd_add_instance() {
	_procd_open_instance
	_procd_set_param command "$@"
	_procd_close_instance
}

_procd_add_jail() {
	local __flag
	json_add_object jail
	json_add_string name "$1"
	shift
	for __flag in "$@"; do
		case "$__flag" in
		log|ubus|udebug|procfs|sysfs|ronly|requirejail|netns|userns|cgroupsns)
			json_add_boolean "$__flag" 1
			;;
		esac
	done
	json_add_object mount
	json_close_object
	json_close_object
}

# paths into the instance's jail.mount ("0" read-only, "1" writable)
_procd_add_jail_mount_as() {
	local __mode="$1" __path
	shift
	json_select jail || return
	json_select mount || { json_select ..; return; }
	for __path in "$@"; do
		json_add_string "$__path" "$__mode"
	done
	json_select ..
	json_select ..
}

_procd_add_jail_mount() { _procd_add_jail_mount_as 0 "$@"; }
_procd_add_jail_mount_rw() { _procd_add_jail_mount_as 1 "$@"; }

# triggers: [ EVENT, SCRIPT, DELAY? ]; open/close nest (one array per level 1)
_procd_open_trigger() {
	_procd_trigger_depth=$((_procd_trigger_depth + 1))
	[ "$_procd_trigger_depth" -gt 1 ] && return 0
	json_add_array triggers
}

_procd_close_trigger() {
	_procd_trigger_depth=$((_procd_trigger_depth - 1))
	[ "$_procd_trigger_depth" -lt 1 ] || return 0
	json_close_array
}

_procd_add_timeout() {
	[ "$PROCD_RELOAD_DELAY" -gt 0 ] && json_add_int "" "$PROCD_RELOAD_DELAY"
}

# EVENT VAR VALUE COMMAND...: [EVENT, ["if", ["eq", VAR, VALUE], ["run_script", COMMAND...]], delay]
_procd_add_eq_trigger() {
	local __event="$1" __var="$2" __value="$3"
	shift 3
	_procd_open_trigger
	json_add_array
	json_add_string "" "$__event"
	json_add_array
	json_add_string "" if
	json_add_array
	json_add_string "" eq
	json_add_string "" "$__var"
	json_add_string "" "$__value"
	json_close_array
	json_add_array
	json_add_string "" run_script
	_procd_add_array_data "$@"
	json_close_array
	json_close_array
	_procd_add_timeout
	json_close_array
	_procd_close_trigger
}

_procd_add_config_trigger() {
	local __event="$1" __package="$2"
	shift 2
	_procd_add_eq_trigger "$__event" package "$__package" "$@"
}

_procd_add_reload_trigger() {
	local __package
	for __package in "$@"; do
		_procd_add_config_trigger config.change "$__package" "/etc/init.d/$_PROCD_SERVICE" reload
	done
}

_procd_add_interface_trigger() {
	local __event="$1" __iface="$2"
	shift 2
	_procd_add_eq_trigger "$__event" interface "$__iface" "$@"
}

_procd_add_reload_interface_trigger() {
	_procd_add_interface_trigger "interface.*" "$1" "/etc/init.d/$_PROCD_SERVICE" reload
}

_procd_add_reload_data_trigger() {
	local __service
	for __service in "$@"; do
		_procd_add_eq_trigger service.data.update name "$__service" "/etc/init.d/$_PROCD_SERVICE" reload
	done
}

# EVENT TIMEOUT COMMAND...: [EVENT, [["run_script", COMMAND...]], TIMEOUT]
_procd_add_raw_trigger() {
	local __event="$1" __timeout="$2"
	shift 2
	_procd_open_trigger
	json_add_array
	json_add_string "" "$__event"
	json_add_array
	json_add_array
	json_add_string "" run_script
	_procd_add_array_data "$@"
	json_close_array
	json_close_array
	json_add_int "" "$__timeout"
	json_close_array
	_procd_close_trigger
}

# EVENT ACTION TARGET...: one target is an eq, several an or of eqs. The
# script is /etc/init.d/$name, which only the action triggers below set
# (OpenWrt's kit behaves the same).
_procd_add_mount_trigger() {
	local __event="$1" __action="$2" __target
	shift 2
	_procd_open_trigger
	json_add_array
	json_add_string "" "$__event"
	json_add_array
	json_add_string "" if
	if [ "$#" -gt 1 ]; then
		json_add_array
		json_add_string "" or
	fi
	for __target in "$@"; do
		json_add_array
		json_add_string "" eq
		json_add_string "" target
		json_add_string "" "$__target"
		json_close_array
	done
	[ "$#" -gt 1 ] && json_close_array
	json_add_array
	json_add_string "" run_script
	json_add_string "" "/etc/init.d/$name"
	json_add_string "" "$__action"
	json_close_array
	json_close_array
	_procd_add_timeout
	json_close_array
	_procd_close_trigger
}

# the fstab mount points (in fstab order) that contain any of the paths
procd_get_mountpoints() {
	(
		__procd_mountpoint() {
			local __section="$1" __target __path
			shift
			config_get __target "$__section" target
			__target="${__target%/}"
			[ -n "$__target" ] || return 0
			for __path in "$@"; do
				case "${__path%/}/" in
				"$__target"/*)
					echo "$__target"
					return 0
					;;
				esac
			done
		}
		config_load fstab
		config_foreach __procd_mountpoint mount "$@"
	)
}

_procd_add_action_mount_trigger() {
	local __action="$1" __mountpoints name="$_PROCD_SERVICE"
	shift
	__mountpoints="$(procd_get_mountpoints "$@")"
	[ -n "$__mountpoints" ] || return 0
	_procd_add_mount_trigger mount.add "$__action" "$__mountpoints"
}

_procd_add_reload_mount_trigger() { _procd_add_action_mount_trigger reload "$@"; }
_procd_add_restart_mount_trigger() { _procd_add_action_mount_trigger restart "$@"; }

# validation rules: a "validate" array next to "triggers"
_procd_open_validate() {
	json_select ..
	json_add_array validate
}

_procd_close_validate() {
	json_close_array
	json_select triggers
}

_procd_add_validation() {
	_procd_open_validate
	"$@"
	_procd_close_validate
}

# instance or service "data"; stays in the procd namespace until procd_close_data
procd_open_data() {
	json_set_namespace procd __procd_data_saved
	json_add_object data
}

procd_close_data() {
	json_close_object
	json_set_namespace "$__procd_data_saved"
}

# SERVICE PROTO PORT [TXT...] as an mDNS record (empty TXT entries are skipped)
procd_add_mdns_service() {
	local __service="$1" __proto="$2" __port="$3" __txt
	shift 3
	json_add_object "${__service}_$__port"
	json_add_string service "_$__service._$__proto.local"
	json_add_int port "$__port"
	[ -n "$MDNS_INSTANCE_NAME" ] && json_add_string instance "$MDNS_INSTANCE_NAME"
	json_add_array txt
	for __txt in "$@"; do
		[ -n "$__txt" ] && json_add_string "" "$__txt"
	done
	json_close_array
	json_close_object
}

procd_add_mdns() {
	procd_open_data
	json_add_object mdns
	procd_add_mdns_service "$@"
	json_close_object
	procd_close_data
}

_procd_set_config_changed() {
	json_init
	json_add_string type config.change
	json_add_object data
	json_add_string package "$1"
	json_close_object
	ubus call service event "$(json_dump)"
	json_cleanup
}

_procd_kill() {
	json_init
	json_add_string name "$1"
	[ -n "$2" ] && json_add_string instance "$2"
	_procd_ubus_call delete
}

# SERVICE [INSTANCE|*] [SIGNAL]: names (HUP, SIGHUP) become numbers
_procd_send_signal() {
	local __service="$1" __instance="$2" __signal="$3"
	case "$__signal" in
	[A-Za-z]*) __signal="$(kill -l "$__signal" 2>/dev/null)" || return 1 ;;
	esac
	json_init
	json_add_string name "$__service"
	[ -n "$__instance" ] && [ "$__instance" != "*" ] && json_add_string instance "$__instance"
	[ -n "$__signal" ] && json_add_int signal "$__signal"
	_procd_ubus_call signal
}

# the `service list` answer for SERVICE, loaded as the namespace's document
_procd_list_service() {
	local __reply
	json_init
	json_add_string name "$1"
	__reply="$(_procd_ubus_call list)"
	json_load "$__reply"
}

# true if the (first, or the named) instance of SERVICE runs
_procd_running() {
	local __keys __running=
	_procd_list_service "$1"
	json_select "$1" && json_select instances || return 1
	if [ -n "$2" ] && [ "$2" != "*" ]; then
		json_select "$2" || return 1
	else
		json_get_keys __keys
		set -- $__keys
		[ -n "$1" ] && json_select "$1" || return 1
	fi
	json_get_var __running running
	[ "$__running" = 1 ]
}

procd_running() {
	local _json_no_warning=1 __procd_saved __ret
	json_set_namespace procd __procd_saved
	_procd_running "$@"
	__ret=$?
	json_cleanup
	json_set_namespace "$__procd_saved"
	return "$__ret"
}

# `status` text and exit code: inactive 3, no instances 0, running 0,
# running (n/m) 0, not running 5, unknown instance 4
_procd_status() {
	local __service="$1" __instance="$2" __keys __key __var __total=0 __up=0
	_procd_list_service "$__service"
	json_select "$__service" || {
		echo "inactive"
		return 3
	}
	if json_select instances && json_get_keys __keys && [ -n "$__keys" ]; then
		:
	else
		__keys=
		if [ -z "$__instance" ]; then
			echo "active with no instances"
			return 0
		fi
	fi
	if [ -n "$__instance" ]; then
		if [ -z "$__keys" ] || ! json_is_a "$__instance" object; then
			echo "unknown instance \"$__instance\""
			return 4
		fi
		json_select "$__instance"
		json_get_var __var running
		__total=1
		[ "$__var" = 1 ] && __up=1
	else
		for __key in $__keys; do
			json_select "$__key"
			json_get_var __var running
			json_select ..
			__total=$((__total + 1))
			[ "$__var" = 1 ] && __up=$((__up + 1))
		done
	fi
	if [ "$__up" = 0 ]; then
		echo "not running"
		return 5
	elif [ "$__total" -gt 1 ] && [ "$__up" != "$__total" ]; then
		echo "running ($__up/$__total)"
	else
		echo "running"
	fi
	return 0
}

_procd_info() {
	json_init
	json_add_string name "$1"
	json_add_boolean verbose 1
	_procd_ubus_call list
}

# serialize the actions of one service: an exclusive lock on
# /var/lock/procd_<service>.lock, held on fd 1000 (9 where the shell has no
# descriptors above 9, e.g. dash) until the script ends; a no-op if held
procd_lock() {
	local __base __service
	__base="$(readlink "$initscript")"
	__service="$(basename "${__base:-$initscript}")"
	if [ -z "$_procd_lock_fd" ]; then
		if (exec 1000>/dev/null) 2>/dev/null; then _procd_lock_fd=1000; else _procd_lock_fd=9; fi
	fi
	flock -n "$_procd_lock_fd" >/dev/null 2>&1 && return 0
	eval "exec $_procd_lock_fd>\"\${PYPROCD_KIT_ROOT:-\$IPKG_INSTROOT}/var/lock/procd_\$__service.lock\""
	flock "$_procd_lock_fd" || logger "warning: procd flock for $__service failed"
}

# uci_validate_section PACKAGE TYPE SECTION RULE...: sets one variable per
# rule; on failure runs validate_data again so that its report reaches stderr
uci_validate_section() {
	local __package="$1" __type="$2" __section="$3" __result __error
	shift 3
	__result="$("$PYPROCD_KIT_ROOT"/sbin/validate_data "$__package" "$__type" "$__section" "$@" 2>/dev/null)"
	__error=$?
	eval "$__result"
	[ "$__error" = 0 ] || "$PYPROCD_KIT_ROOT"/sbin/validate_data "$__package" "$__type" "$__section" "$@" >/dev/null
	return "$__error"
}

# uci_load_validate PACKAGE TYPE SECTION CALLBACK RULE...: the rule
# variables are local here and seen by CALLBACK SECTION RESULT; an empty
# SECTION adds the rules to the message instead (procd_add_validation)
uci_load_validate() {
	local __package="$1" __type="$2" __section="$3" __callback="$4" __rule __result
	shift 4
	for __rule in "$@"; do
		eval "local ${__rule%%:*}"
	done
	uci_validate_section "$__package" "$__type" "$__section" "$@"
	__result=$?
	[ -n "$__callback" ] || return "$__result"
	"$__callback" "$__section" "$__result"
}

procd_open_service() { _procd_in_namespace _procd_open_service "$@"; }
procd_close_service() { _procd_in_namespace _procd_close_service "$@"; }
procd_open_instance() { _procd_in_namespace _procd_open_instance "$@"; }
procd_close_instance() { _procd_in_namespace _procd_close_instance "$@"; }
procd_add_instance() { _procd_in_namespace _procd_add_instance "$@"; }
procd_set_param() { _procd_in_namespace _procd_set_param "$@"; }
procd_append_param() { _procd_in_namespace _procd_append_param "$@"; }
procd_add_jail() { _procd_in_namespace _procd_add_jail "$@"; }
procd_add_jail_mount() { _procd_in_namespace _procd_add_jail_mount "$@"; }
procd_add_jail_mount_rw() { _procd_in_namespace _procd_add_jail_mount_rw "$@"; }
procd_open_trigger() { _procd_in_namespace _procd_open_trigger "$@"; }
procd_close_trigger() { _procd_in_namespace _procd_close_trigger "$@"; }
procd_add_config_trigger() { _procd_in_namespace _procd_add_config_trigger "$@"; }
procd_add_reload_trigger() { _procd_in_namespace _procd_add_reload_trigger "$@"; }
procd_add_interface_trigger() { _procd_in_namespace _procd_add_interface_trigger "$@"; }
procd_add_reload_interface_trigger() { _procd_in_namespace _procd_add_reload_interface_trigger "$@"; }
procd_add_reload_data_trigger() { _procd_in_namespace _procd_add_reload_data_trigger "$@"; }
procd_add_raw_trigger() { _procd_in_namespace _procd_add_raw_trigger "$@"; }
procd_add_mount_trigger() { _procd_in_namespace _procd_add_mount_trigger "$@"; }
procd_add_action_mount_trigger() { _procd_in_namespace _procd_add_action_mount_trigger "$@"; }
procd_add_reload_mount_trigger() { _procd_in_namespace _procd_add_reload_mount_trigger "$@"; }
procd_add_restart_mount_trigger() { _procd_in_namespace _procd_add_restart_mount_trigger "$@"; }
procd_open_validate() { _procd_in_namespace _procd_open_validate "$@"; }
procd_close_validate() { _procd_in_namespace _procd_close_validate "$@"; }
procd_add_validation() { _procd_in_namespace _procd_add_validation "$@"; }
procd_set_config_changed() { _procd_in_namespace _procd_set_config_changed "$@"; }
procd_kill() { _procd_in_namespace _procd_kill "$@"; }
procd_send_signal() { _procd_in_namespace _procd_send_signal "$@"; }
