"""Messages to users (email now; SMS with the providers issue), sent by durable jobs."""
