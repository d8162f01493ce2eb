"""Rendering: template text + context in, strings out. Imports nothing of emails."""
