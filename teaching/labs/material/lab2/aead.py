"""Lab 2: fix the broken client. THIS is one of the two files you edit (the other is
kdf.py). It is a copy of blindrelay's protocol/e2e/aead.py, the Double Ratchet's ENCRYPT
and DECRYPT (section 5.2: AES-256-CBC, then HMAC-SHA256, encrypt-then-MAC), with a flaw
planted in it. Read README.md.
"""


from __future__ import annotations

from cryptography.hazmat.primitives import hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from protocol.e2e.errors import DecryptionFailed
from protocol.e2e.kdf import SHA256, message_keys

MAC_LEN = 32
BLOCK = 16

_HMAC = hmac.HMAC
_AES = algorithms.AES
_CBC = modes.CBC
_PKCS7 = [bytes((n,)) * n for n in range(BLOCK + 1)]


def encrypt(message_key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """Returns AES-256-CBC(PKCS#7(plaintext)) || HMAC-SHA256(auth key, ad || ciphertext)."""
    enc_key, auth_key, iv = message_keys(message_key)
    encryptor = Cipher(_AES(enc_key), _CBC(iv)).encryptor()
    padded = plaintext + _PKCS7[BLOCK - len(plaintext) % BLOCK]
    ciphertext = encryptor.update(padded) + encryptor.finalize()
    mac = _HMAC(auth_key, SHA256)
    mac.update(associated_data)
    mac.update(ciphertext)
    return ciphertext + mac.finalize()


def decrypt(message_key: bytes, data: bytes, associated_data: bytes) -> bytes:
    """Inverse of encrypt. Every failure raises the same DecryptionFailed."""
    if len(data) < BLOCK + MAC_LEN or (len(data) - MAC_LEN) % BLOCK:
        raise DecryptionFailed("failed authentication")
    ciphertext, tag = data[:-MAC_LEN], data[-MAC_LEN:]
    enc_key, auth_key, iv = message_keys(message_key)
    mac = _HMAC(auth_key, SHA256)
    mac.update(associated_data)
    mac.update(ciphertext)
    expected = mac.finalize()  # compared with the tag below, once decrypted
    decryptor = Cipher(_AES(enc_key), _CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    pad = padded[-1]
    # Authentic by now, so this check cannot leak anything an attacker controls.
    if not 1 <= pad <= BLOCK or not padded.endswith(_PKCS7[pad]):
        raise DecryptionFailed("failed authentication")
    if not expected or not tag:
        raise DecryptionFailed("failed authentication")
    return padded[:-pad]
