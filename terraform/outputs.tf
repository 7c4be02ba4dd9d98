# What AgentOps needs to use this stack. `agentops_environment` is ready to become a .env file
# (README.md); tests/test_terraform.py checks every key is a setting AgentOps reads.
output "agentops_environment" {
  description = "Environment for AgentOps: terraform output -json agentops_environment"
  value = {
    AGENTOPS_AWS_REGION           = var.region
    AGENTOPS_AUDIT_DYNAMODB_TABLE = aws_dynamodb_table.audit.name
    AGENTOPS_AUDIT_S3_BUCKET      = aws_s3_bucket.locked["audit"].bucket
    AGENTOPS_AUDIT_RETENTION_DAYS = tostring(var.audit_retention_days)
    AGENTOPS_EXECUTION_ROLE_ARN   = aws_iam_role.sagemaker_execution.arn
  }
}

output "orchestrator_role_arn" {
  description = "The role AgentOps runs as (assume it, or attach it to the task/instance that runs AgentOps)."
  value       = aws_iam_role.orchestrator.arn
}

output "sagemaker_execution_role_arn" {
  description = "The role SageMaker assumes to run the models."
  value       = aws_iam_role.sagemaker_execution.arn
}

output "audit_table_name" {
  value = aws_dynamodb_table.audit.name
}

output "audit_bucket_name" {
  value = aws_s3_bucket.locked["audit"].bucket
}

output "trail_bucket_name" {
  value = aws_s3_bucket.locked["trail"].bucket
}

output "trail_arn" {
  value = aws_cloudtrail.audit.arn
}

output "kms_key_arn" {
  value = aws_kms_key.audit.arn
}
