"""Pipeline steps: plain functions over files that plans call and libraries import."""
