"""blindrelay's client: the library that holds the secrets, the CLI and the Textual app."""
