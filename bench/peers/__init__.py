"""Peer comparison: pyprocd against supervisord, circus, runit and s6."""
