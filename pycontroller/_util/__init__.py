"""Private helpers that import nothing from the rest of pycontroller."""
