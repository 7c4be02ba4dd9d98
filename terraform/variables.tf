variable "region" {
  description = "AWS region of every resource here; AgentOps reads it as AGENTOPS_AWS_REGION."
  type        = string
  default     = "us-east-1"
}

variable "name_prefix" {
  description = "Prefix of every resource name (table, buckets, trail, roles, key alias)."
  type        = string
  default     = "agentops"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,20}$", var.name_prefix))
    error_message = "name_prefix: 2-21 lowercase letters, digits or hyphens, starting with a letter (it goes into bucket names)."
  }
}

variable "audit_retention_days" {
  description = "COMPLIANCE-mode Object Lock retention of the audit bucket's objects. Nobody, not even the account root, can delete an object or the bucket before it ends: use 1 for a throwaway stack."
  type        = number
  default     = 365

  validation {
    condition     = var.audit_retention_days >= 1
    error_message = "audit_retention_days must be at least 1."
  }
}

variable "trail_retention_days" {
  description = "COMPLIANCE-mode Object Lock retention of the CloudTrail log files."
  type        = number
  default     = 365
}

variable "log_retention_days" {
  description = "How long the CloudWatch Logs copy of the trail is kept (the S3 copy is the record)."
  type        = number
  default     = 365
}

variable "audit_table_deletion_protection" {
  description = "Refuse DeleteTable on the audit table. Set false only to tear the stack down."
  type        = bool
  default     = true
}

variable "model_artifact_bucket" {
  description = "Bucket the SageMaker execution role reads model artifacts from (AGENTOPS_ARTIFACT_BUCKET)."
  type        = string
  default     = "agentops-model-artifacts"
}

variable "data_capture_bucket" {
  description = "Bucket the SageMaker execution role writes data capture and Model Monitor output to (AGENTOPS_DATA_CAPTURE_BUCKET)."
  type        = string
  default     = "agentops-data-capture"
}

variable "container_repository_arns" {
  description = "ECR repositories the execution role may pull inference images from. Empty: AWS Deep Learning Containers in var.region."
  type        = list(string)
  default     = []
}

variable "orchestrator_principal_arns" {
  description = "Who may assume the orchestrator role (e.g. the CI role, an ECS task role). Empty: principals of this account that IAM allows to."
  type        = list(string)
  default     = []
}

variable "alarm_actions" {
  description = "ARNs (e.g. an SNS topic) notified when someone edits or deletes audit items or objects."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
