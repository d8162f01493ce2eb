"""Intake: Logto's request -> one stored, committed message (view, accept policy, the INSERT,
rate limits, address normalisation). See docs/ARCHITECTURE.md."""
