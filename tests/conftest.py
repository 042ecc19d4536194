"""Test-suite root: this folder is on sys.path, so tests import its helpers (childproc)."""
