"""Domain services shared by handlers: small, I/O through the GitHub client passed in."""
