"""Async UWS jobs: what they do (actions) and who runs them (runner)."""
