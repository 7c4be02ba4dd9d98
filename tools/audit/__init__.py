"""The tamper-evident audit trail: the hash chain, the local log, and its copies in DynamoDB and S3."""
