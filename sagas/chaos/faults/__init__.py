"""Fault families. Each module defines `FAULTS: dict[str, Fault]` (kind -> function)."""
