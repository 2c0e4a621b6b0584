"""Key transparency building blocks (docs/PROTOCOL.md section 19): public, sans-I/O."""
