pytest_plugins = ["tests.fixtures.store"]
