"""WSGI entry point for the tests' Keystone: keystone parses sys.argv with
oslo.config at import time, and gunicorn's own arguments would make it
fail, so hide them first."""
import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
