"""Final checks of a chaos run. Each module defines ``CHECKS: list[Check]``."""
