"""coord roles package."""
