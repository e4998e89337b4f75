"""RadixInsight collector."""
