"""wire: blob/blobmsg codec and ubus message framing (bytes only, no sockets)."""
