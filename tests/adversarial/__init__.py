"""Attack scripts from issue 9, kept as regression tests."""
