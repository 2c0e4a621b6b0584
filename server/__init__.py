"""blindrelay's relay server: stores and forwards opaque envelopes and key bundles.

It imports only the encodings and signature verification from `protocol`, never
the ratchet, the session code or any private-key operation (tests/test_layering.py
checks this), so "the relay cannot decrypt" is a property of the code.
"""
