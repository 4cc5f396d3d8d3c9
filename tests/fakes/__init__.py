"""Scripted stand-ins for external services, served for real on 127.0.0.1."""
