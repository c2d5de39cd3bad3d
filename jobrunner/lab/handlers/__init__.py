"""Handlers that ship with jobrunner."""
