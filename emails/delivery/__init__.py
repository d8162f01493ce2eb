"""Delivery: stored message -> provider (dispatch is the only broker code; deliver, relay,
sweeper, tracking). See docs/ARCHITECTURE.md."""
