"""Outbound: turns send commands into provider calls at the providers' real limits."""
