"""Test-only builders of scans in many encodings (importable as ``helpers``)."""
