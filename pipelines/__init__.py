"""RadixInsight pipelines."""
