"""Thin, checked wrappers around the host's commands (the only place that spawns `ip`, `bridge`, ...)."""
