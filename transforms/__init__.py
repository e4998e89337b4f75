"""RadixInsight transforms."""
