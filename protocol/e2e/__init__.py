"""What only endpoints run: private keys, PQXDH, the Double Ratchet, padding, sealed
sender, message content, safety numbers and the session record.

The relay never imports this package (tests/test_layering.py enforces it).
"""
