"""coord's version (the distribution reads it from here)."""

VERSION = "0.1.0"
