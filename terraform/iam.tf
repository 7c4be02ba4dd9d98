# Two roles, least privilege:
# - sagemaker_execution: what SageMaker itself assumes to run a model (AGENTOPS_EXECUTION_ROLE_ARN);
# - orchestrator: what AgentOps runs as. It may write the audit trail but never edit or delete it,
#   may pass only the execution role and only to SageMaker, and may touch only SageMaker resources
#   and alarms whose names start with var.sagemaker_name_prefix.
locals {
  container_repository_arns = length(var.container_repository_arns) > 0 ? var.container_repository_arns : [
    # AWS Deep Learning Containers (AGENTOPS_DEFAULT_IMAGE_URI lives here).
    "arn:${local.partition}:ecr:${var.region}:763104351884:repository/*",
  ]
  orchestrator_principals = length(var.orchestrator_principal_arns) > 0 ? var.orchestrator_principal_arns : [
    "arn:${local.partition}:iam::${local.account_id}:root",
  ]
  sagemaker_arn = "arn:${local.partition}:sagemaker:${var.region}:${local.account_id}"
  # SageMaker puts names into ARNs in lower case.
  sagemaker_prefix = lower(var.sagemaker_name_prefix)
}

# --- SageMaker execution role ---------------------------------------------------------------------

resource "aws_iam_role" "sagemaker_execution" {
  name               = "${var.name_prefix}-sagemaker-execution"
  assume_role_policy = data.aws_iam_policy_document.sagemaker_assume.json
}

data "aws_iam_policy_document" "sagemaker_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["sagemaker.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role_policy" "sagemaker_execution" {
  name   = "run-models"
  role   = aws_iam_role.sagemaker_execution.id
  policy = data.aws_iam_policy_document.sagemaker_execution.json
}

data "aws_iam_policy_document" "sagemaker_execution" {
  statement {
    sid       = "ReadModelArtifacts"
    actions   = ["s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::${var.model_artifact_bucket}/*"]
  }

  statement {
    sid       = "WriteDataCaptureAndMonitorOutput"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::${var.data_capture_bucket}/*"]
  }

  statement {
    sid       = "ListArtifactAndCaptureBuckets"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.model_artifact_bucket}", "arn:${local.partition}:s3:::${var.data_capture_bucket}"]
  }

  statement {
    sid       = "PullInferenceImages"
    actions   = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"]
    resources = local.container_repository_arns
  }

  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken supports no resource-level permission
  }

  statement {
    sid       = "ContainerLogs"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/sagemaker/*"]
  }

  statement {
    sid       = "ContainerMetrics"
    actions   = ["cloudwatch:PutMetricData"]
    resources = ["*"] # PutMetricData supports no resource-level permission; the namespace condition bounds it

    condition {
      test     = "StringLike"
      variable = "cloudwatch:namespace"
      values   = ["/aws/sagemaker/*", "aws/sagemaker/*"]
    }
  }
}

# --- The orchestrator's own role -----------------------------------------------------------------

resource "aws_iam_role" "orchestrator" {
  name               = "${var.name_prefix}-orchestrator"
  assume_role_policy = data.aws_iam_policy_document.orchestrator_assume.json
}

data "aws_iam_policy_document" "orchestrator_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = local.orchestrator_principals
    }
  }
}

resource "aws_iam_role_policy" "orchestrator" {
  name   = "orchestrate"
  role   = aws_iam_role.orchestrator.id
  policy = data.aws_iam_policy_document.orchestrator.json
}

data "aws_iam_policy_document" "orchestrator" {
  statement {
    sid = "AuditTableAppendAndRead"
    # No UpdateItem, DeleteItem or BatchWriteItem: AgentOps itself cannot rewrite the record.
    actions   = ["dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable"]
    resources = [aws_dynamodb_table.audit.arn, "${aws_dynamodb_table.audit.arn}/index/*"]
  }

  statement {
    sid = "AuditBucketWriteOnceAndRead"
    # PutObjectRetention is what setting a lock on a new object needs; COMPLIANCE locks cannot be
    # shortened with it. No DeleteObject*, no BypassGovernanceRetention.
    actions   = ["s3:PutObject", "s3:PutObjectRetention", "s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectRetention"]
    resources = ["${aws_s3_bucket.locked["audit"].arn}/*"]
  }

  statement {
    sid       = "AuditBucketList"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
    resources = [aws_s3_bucket.locked["audit"].arn]
  }

  statement {
    sid       = "AuditKeyThroughTableAndBucketOnly"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    resources = [aws_kms_key.audit.arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${var.region}.amazonaws.com", "s3.${var.region}.amazonaws.com"]
    }
  }

  statement {
    sid = "SageMakerOnOwnNamesOnly"
    actions = [
      "sagemaker:CreateModel", "sagemaker:DescribeModel", "sagemaker:DeleteModel",
      "sagemaker:CreateEndpointConfig", "sagemaker:DescribeEndpointConfig", "sagemaker:DeleteEndpointConfig",
      "sagemaker:CreateEndpoint", "sagemaker:UpdateEndpoint", "sagemaker:DescribeEndpoint", "sagemaker:DeleteEndpoint",
      "sagemaker:CreateDataQualityJobDefinition", "sagemaker:DescribeDataQualityJobDefinition", "sagemaker:DeleteDataQualityJobDefinition",
      "sagemaker:CreateMonitoringSchedule", "sagemaker:DescribeMonitoringSchedule", "sagemaker:DeleteMonitoringSchedule",
      "sagemaker:AddTags",
    ]
    resources = [
      "${local.sagemaker_arn}:model/${local.sagemaker_prefix}*",
      "${local.sagemaker_arn}:endpoint-config/${local.sagemaker_prefix}*",
      "${local.sagemaker_arn}:endpoint/${local.sagemaker_prefix}*",
      "${local.sagemaker_arn}:data-quality-job-definition/${local.sagemaker_prefix}*",
      "${local.sagemaker_arn}:monitoring-schedule/${local.sagemaker_prefix}*",
    ]
  }

  statement {
    sid       = "PassOnlyTheExecutionRoleOnlyToSageMaker"
    actions   = ["iam:PassRole"]
    resources = [aws_iam_role.sagemaker_execution.arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["sagemaker.amazonaws.com"]
    }
  }

  statement {
    sid       = "RollbackAlarmsOnOwnNamesOnly"
    actions   = ["cloudwatch:PutMetricAlarm", "cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"]
    resources = ["arn:${local.partition}:cloudwatch:${var.region}:${local.account_id}:alarm:${var.sagemaker_name_prefix}*"]
  }
}
