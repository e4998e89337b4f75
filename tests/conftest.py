pytest_plugins = ["tests.fixtures.kafka", "tests.fixtures.store", "tests.fixtures.redis"]
