"""State rules: native scheduler states mapped to one common state set, with a cause."""
