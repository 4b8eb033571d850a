# jshn.sh - JSON documents in shell variables (pyprocd's init-script kit).
#
# A document lives in variables named after its tables: J_V is the root
# object, J_T<n> / J_A<n> the n-th object / array opened since json_init.
#   <table>_<key>    the value (for a container: the name of its table)
#   T_<table>_<key>  its type: string int boolean double null object array
#   K_<table>        the keys of the table, in order, space separated
#   N_<table>_<key>  the original key where it is not a shell name
#   U_<table>        the parent table; S_<array> the element counter
# Values, types, key lists and names are exported: the `jshn` program reads
# them from its environment to write the JSON text (json_dump).
# JSON_PREFIX (json_set_namespace) prefixes every one of these names, so
# several documents can live side by side.

_json_get_var() {
	eval "$1=\"\${${JSON_PREFIX}$2}\""
}

_json_set_var() {
	eval "${JSON_PREFIX}$1=\"\$2\""
}

_json_export() {
	export -- "${JSON_PREFIX}$1=$2"
}

# a space-separated list; the separator is left out after an empty list
_json_append() {
	eval "${JSON_PREFIX}$1=\"\${${JSON_PREFIX}$1:+\${${JSON_PREFIX}$1} }\$2\""
}

_json_inc() {
	local __j_n
	_json_get_var __j_n "$1"
	__j_n=$((${__j_n:-0} + 1))
	_json_set_var "$1" "$__j_n"
	[ -z "$2" ] || eval "$2=\$__j_n"
}

# key -> the name used in variables: bytes outside [a-zA-Z0-9_] become '_'
_json_name() {
	case "$2" in
	*[!a-zA-Z0-9_]*) eval "$1=\$(printf '%s' \"\$2\" | tr -c 'a-zA-Z0-9_' _)" ;;
	*) eval "$1=\$2" ;;
	esac
}

_json_add_generic() {
	local __j_type="$1" __j_name="$2" __j_cur="$4" __j_var
	[ -n "$__j_cur" ] || _json_get_var __j_cur JSON_CUR
	case "$__j_cur" in
	J_A*) _json_inc "S_$__j_cur" __j_name ;;
	*)
		_json_name __j_var "$__j_name"
		[ "$__j_var" = "$__j_name" ] || _json_export "N_${__j_cur}_$__j_var" "$__j_name"
		__j_name="$__j_var"
		;;
	esac
	__j_var="${__j_cur}_$__j_name"
	_json_export "$__j_var" "$3"
	_json_export "T_$__j_var" "$__j_type"
	_json_append JSON_UNSET "$__j_var"
	_json_append "K_$__j_cur" "$__j_name"
}

_json_add_table() {
	local __j_cur __j_seq __j_table
	_json_get_var __j_cur JSON_CUR
	_json_inc JSON_SEQ __j_seq
	__j_table="J_$3$__j_seq"
	_json_set_var "U_$__j_table" "$__j_cur"
	_json_export "K_$__j_table" ""
	_json_set_var JSON_CUR "$__j_table"
	_json_append JSON_UNSET "$__j_table"
	_json_add_generic "$2" "$1" "$__j_table" "$__j_cur"
}

_json_close_table() {
	local __j_cur __j_parent
	_json_get_var __j_cur JSON_CUR
	_json_get_var __j_parent "U_$__j_cur"
	_json_set_var JSON_CUR "$__j_parent"
}

_json_push() {
	local __j_cur
	_json_get_var __j_cur JSON_CUR
	case "$__j_cur" in
	J_A*) _json_add_generic "$1" "" "$2" "$__j_cur" ;;
	*)
		[ -n "$_json_no_warning" ] || echo "WARNING: Not in an array" >&2
		return 1
		;;
	esac
}

json_set_namespace() {
	local __j_old="$JSON_PREFIX"
	JSON_PREFIX="$1"
	[ -z "$2" ] || eval "$2=\"\$__j_old\""
}

json_cleanup() {
	local __j_unset __j_v
	_json_get_var __j_unset JSON_UNSET
	for __j_v in $__j_unset J_V; do
		unset "${JSON_PREFIX}U_$__j_v" "${JSON_PREFIX}K_$__j_v" "${JSON_PREFIX}S_$__j_v" \
			"${JSON_PREFIX}T_$__j_v" "${JSON_PREFIX}N_$__j_v" "${JSON_PREFIX}$__j_v"
	done
	unset "${JSON_PREFIX}JSON_SEQ" "${JSON_PREFIX}JSON_CUR" "${JSON_PREFIX}JSON_UNSET"
}

json_init() {
	json_cleanup
	_json_set_var JSON_SEQ 0
	export -- "${JSON_PREFIX}JSON_CUR=J_V" "${JSON_PREFIX}K_J_V="
}

json_add_object() { _json_add_table "$1" object T; }
json_close_object() { _json_close_table; }
json_add_array() { _json_add_table "$1" array A; }
json_close_array() { _json_close_table; }

json_add_string() { _json_add_generic string "$1" "$2"; }
json_add_int() { _json_add_generic int "$1" "$2"; }
json_add_boolean() { _json_add_generic boolean "$1" "$2"; }
json_add_double() { _json_add_generic double "$1" "$2"; }
json_add_null() { _json_add_generic null "$1" ""; }

json_push_string() { _json_push string "$1"; }
json_push_int() { _json_push int "$1"; }
json_push_boolean() { _json_push boolean "$1"; }
json_push_double() { _json_push double "$1"; }
json_push_null() { _json_push null ""; }

# name=value (a string) or name:type=value; unknown types are skipped
json_add_fields() {
	local __j_field __j_name __j_type __j_value
	for __j_field in "$@"; do
		case "$__j_field" in
		*=*) __j_name="${__j_field%%=*}"; __j_value="${__j_field#*=}" ;;
		*) __j_name="$__j_field"; __j_value= ;;
		esac
		case "$__j_name" in
		*:*) __j_type="${__j_name#*:}"; __j_name="${__j_name%%:*}" ;;
		*) __j_type=string ;;
		esac
		case "$__j_type" in
		string|int|boolean|double) _json_add_generic "$__j_type" "$__j_name" "$__j_value" ;;
		esac
	done
}

# the key under which the current table sits in its parent array
json_get_index() {
	local __j_cur __j_parent __j_keys __j_key __j_val
	_json_get_var __j_cur JSON_CUR
	_json_get_var __j_parent "U_$__j_cur"
	case "$__j_parent" in
	J_A*) ;;
	*)
		[ -n "$_json_no_warning" ] || echo "WARNING: Not inside an array" >&2
		return 1
		;;
	esac
	_json_get_var __j_keys "K_$__j_parent"
	for __j_key in $__j_keys; do
		_json_get_var __j_val "${__j_parent}_$__j_key"
		[ "$__j_val" = "$__j_cur" ] && eval "$1=\$__j_key"
	done
	return 0
}

json_compact() {
	_json_dump_newline=-n
	_json_dump_indent=
}

json_pretty() {
	_json_dump_newline=
	_json_dump_indent=-i
}

json_dump() {
	jshn ${JSON_PREFIX:+-p "$JSON_PREFIX"} $_json_dump_newline $_json_dump_indent "$@" -w
}

json_load() {
	eval "$(jshn -r "$1")"
}

json_load_file() {
	eval "$(jshn -R "$1")"
}

json_get_type() {
	local __j_cur __j_name
	_json_get_var __j_cur JSON_CUR
	_json_name __j_name "$2"
	eval "$1=\"\${${JSON_PREFIX}T_${__j_cur}_$__j_name}\"; [ -n \"\${${JSON_PREFIX}T_${__j_cur}_$__j_name+x}\" ]"
}

json_get_var() {
	local __j_cur __j_name
	_json_get_var __j_cur JSON_CUR
	_json_name __j_name "$2"
	eval "$1=\"\${${JSON_PREFIX}${__j_cur}_$__j_name:-\$3}\"; [ -n \"\${${JSON_PREFIX}${__j_cur}_$__j_name+x}\$3\" ]"
}

# json_get_vars name... or name:default...
json_get_vars() {
	local __j_arg
	for __j_arg in "$@"; do
		case "$__j_arg" in
		*:*) json_get_var "${__j_arg%%:*}" "${__j_arg%%:*}" "${__j_arg#*:}" ;;
		*) json_get_var "$__j_arg" "$__j_arg" ;;
		esac
	done
}

json_get_keys() {
	local __j_table
	if [ -n "$2" ]; then
		json_get_var __j_table "$2"
	else
		_json_get_var __j_table JSON_CUR
	fi
	eval "$1=\"\${${JSON_PREFIX}K_$__j_table}\"; [ -n \"\${${JSON_PREFIX}K_$__j_table+x}\" ]"
}

# the values of a table joined by spaces (empty values add no separator)
json_get_values() {
	local __j_dest="$1" __j_table __j_keys __j_key __j_val
	unset "$__j_dest"
	if [ -n "$2" ]; then
		json_get_var __j_table "$2"
	else
		_json_get_var __j_table JSON_CUR
	fi
	json_get_keys __j_keys "$2" || return 1
	for __j_key in $__j_keys; do
		_json_get_var __j_val "${__j_table}_$__j_key"
		eval "$__j_dest=\"\${$__j_dest:+\${$__j_dest}\${__j_val:+ }}\$__j_val\""
	done
	return 0
}

json_select() {
	local __j_type __j_table
	case "$1" in
	"") _json_set_var JSON_CUR J_V; return 0 ;;
	..) _json_close_table; return 0 ;;
	esac
	json_get_type __j_type "$1"
	case "$__j_type" in
	object|array)
		json_get_var __j_table "$1"
		_json_set_var JSON_CUR "$__j_table"
		;;
	*)
		[ -n "$_json_no_warning" ] || echo "WARNING: Variable '$1' does not exist or is not an array/object" >&2
		return 1
		;;
	esac
}

json_is_a() {
	local __j_type
	json_get_type __j_type "$1"
	[ "$__j_type" = "$2" ]
}

# json_for_each_item function target [args...]: function value key args...
json_for_each_item() {
	[ "$#" -ge 2 ] || return 0
	local __j_fn="$1" __j_target="$2" __j_type __j_keys __j_key __j_val
	shift 2
	json_get_type __j_type "$__j_target"
	case "$__j_type" in
	object|array)
		json_select "$__j_target"
		json_get_keys __j_keys
		for __j_key in $__j_keys; do
			json_get_var __j_val "$__j_key"
			"$__j_fn" "$__j_val" "$__j_key" "$@"
		done
		json_select ..
		;;
	*)
		json_get_var __j_val "$__j_target"
		"$__j_fn" "$__j_val" "" "$@"
		;;
	esac
}
