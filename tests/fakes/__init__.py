"""Local stand-ins for external services (Alpaca), started by the tests on 127.0.0.1."""
