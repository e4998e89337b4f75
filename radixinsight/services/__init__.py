"""Local stand-ins for the stack's external services (Kafka broker, ...), run as child processes."""
