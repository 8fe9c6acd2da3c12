"""arc: a POSIX directory tree; node properties live in ``user.*`` extended attributes."""
