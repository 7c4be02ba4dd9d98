# The AWS side of the audit trail (DynamoDB mirror, S3 Object Lock digests, CloudTrail over both, one
# KMS key) and the two IAM roles AgentOps needs. See README.md for apply and teardown.
terraform {
  required_version = ">= 1.6"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.70"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, { "agentops:component" = "audit" })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  # Bucket names are global: the account and region keep them unique without asking the user.
  audit_bucket_name = "${var.name_prefix}-audit-${local.account_id}-${var.region}"
  trail_bucket_name = "${var.name_prefix}-trail-${local.account_id}-${var.region}"
  trail_name        = "${var.name_prefix}-audit"
  trail_log_group   = "/aws/cloudtrail/${var.name_prefix}-audit"
  # Built, not read from the trail resource: the trail bucket's policy must exist before the trail.
  trail_arn = "arn:${local.partition}:cloudtrail:${var.region}:${local.account_id}:trail/${local.trail_name}"
}
