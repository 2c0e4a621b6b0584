"""Products for teachers: the demo (Alice, Bob and what the relay sees), the hostile
relay its scenarios use, the protocol walk-through (`demo --text`) and `prove`.

This package may compose everything: it is the one place where a relay does
cryptography, on purpose, to show what a hostile operator can and cannot do.
"""
