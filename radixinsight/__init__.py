"""RadixInsight radixinsight."""
