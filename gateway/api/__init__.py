"""The supervisor API and live wallboard (issue 6, docs/api.md)."""
