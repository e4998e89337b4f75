"""RadixInsight analytics."""
