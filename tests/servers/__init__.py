"""Real servers the test suite runs as separate processes (an OAuth 2.0 authorization server)."""
