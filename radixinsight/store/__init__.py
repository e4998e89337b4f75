"""The ClickHouse store: how every component connects, migrates and serves it."""

from radixinsight.store.client import STORE_ENV, StoreError, connect, default_url

__all__ = ["STORE_ENV", "StoreError", "connect", "default_url"]
