"""What an operator's tooling asks of a running Mailroom: is it alive, is it ready."""
