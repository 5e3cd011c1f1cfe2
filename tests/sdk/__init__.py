"""Tests of the Python SDK: the HTTP client and the in-process Bridge."""
