"""coord reviews package."""
