"""Root conftest: the shared fixtures of switchboard.runtime.testing for every test folder."""

pytest_plugins = ["switchboard.runtime.testing.fixtures"]
