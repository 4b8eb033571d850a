"""uci: UCI config files, deltas and commits (libuci compatible), pure Python."""
