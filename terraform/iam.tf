# Two roles, least privilege:
# - sagemaker_execution: what SageMaker itself assumes to run a model (AGENTOPS_EXECUTION_ROLE_ARN);
# - orchestrator: what AgentOps runs as. It may write the audit trail but never edit or delete it,
#   may pass only the execution role and only to SageMaker, and may change only what it created itself:
#   every model, endpoint config, endpoint, monitoring resource, alarm and scalable target AgentOps
#   creates carries the tag `agentops:endpoint` (tools/sagemaker/calls.py TAG_ENDPOINT), so creating
#   requires that tag in the request (aws:RequestTag) and changing or deleting requires it on the
#   resource (aws:ResourceTag). Endpoints are named from the intent, so a name prefix cannot scope them.
locals {
  container_repository_arns = length(var.container_repository_arns) > 0 ? var.container_repository_arns : [
    # AWS Deep Learning Containers (AGENTOPS_DEFAULT_IMAGE_URI lives here).
    "arn:${local.partition}:ecr:${var.region}:763104351884:repository/*",
  ]
  orchestrator_principals = length(var.orchestrator_principal_arns) > 0 ? var.orchestrator_principal_arns : [
    "arn:${local.partition}:iam::${local.account_id}:root",
  ]
  sagemaker_arn = "arn:${local.partition}:sagemaker:${var.region}:${local.account_id}"
  sagemaker_resources = [
    "${local.sagemaker_arn}:model/*",
    "${local.sagemaker_arn}:endpoint-config/*",
    "${local.sagemaker_arn}:endpoint/*",
    "${local.sagemaker_arn}:data-quality-job-definition/*",
    "${local.sagemaker_arn}:monitoring-schedule/*",
  ]
  alarm_arns = "arn:${local.partition}:cloudwatch:${var.region}:${local.account_id}:alarm:*"
  # The ownership tag (TAG_ENDPOINT) and the tags AgentOps writes later on its own endpoints (TAG_PREVIOUS_CONFIG,
  # TAG_PLAN). Creating may set only the first two; re-tagging only the last two, so the role can never claim
  # someone else's resource by tagging it.
  owner_tag         = "agentops:endpoint"
  create_tag_keys   = ["agentops:endpoint", "agentops:plan"]
  version_tag_keys  = ["agentops:previous-endpoint-config", "agentops:plan"]
  scalable_target_arns = "arn:${local.partition}:application-autoscaling:${var.region}:${local.account_id}:scalable-target/*"
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
    sid = "SageMakerCreateOnlyWithTheOwnerTag"
    actions = [
      "sagemaker:CreateModel", "sagemaker:CreateEndpointConfig", "sagemaker:CreateEndpoint",
      "sagemaker:CreateDataQualityJobDefinition", "sagemaker:CreateMonitoringSchedule",
      "sagemaker:AddTags", # SageMaker authorises the Tags of a Create* call as AddTags
    ]
    resources = local.sagemaker_resources

    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = ["false"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = local.create_tag_keys
    }
  }

  statement {
    sid = "SageMakerChangeOnlyWhatCarriesTheOwnerTag"
    actions = [
      "sagemaker:DeleteModel", "sagemaker:DeleteEndpointConfig",
      "sagemaker:UpdateEndpoint", "sagemaker:DeleteEndpoint",
      "sagemaker:UpdateEndpointWeightsAndCapacities", # what Application Auto Scaling calls as the orchestrator
      "sagemaker:DeleteDataQualityJobDefinition",
      "sagemaker:UpdateMonitoringSchedule", "sagemaker:DeleteMonitoringSchedule",
    ]
    resources = local.sagemaker_resources

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "SageMakerRecordVersionsOnlyOnOwnEndpoints"
    actions   = ["sagemaker:AddTags"]
    resources = ["${local.sagemaker_arn}:endpoint/*"]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }

    condition {
      test     = "ForAllValues:StringEquals"
      variable = "aws:TagKeys"
      values   = local.version_tag_keys
    }
  }

  statement {
    sid = "SageMakerRead"
    # Reading is not scoped by tag: the orchestrator must see an endpoint it did not create to refuse it by
    # name, and read every config's and model's tags to find all versions of its own (teardown).
    actions = [
      "sagemaker:DescribeModel", "sagemaker:DescribeEndpointConfig", "sagemaker:DescribeEndpoint",
      "sagemaker:DescribeDataQualityJobDefinition", "sagemaker:DescribeMonitoringSchedule", "sagemaker:ListTags",
    ]
    resources = local.sagemaker_resources
  }

  statement {
    sid = "SageMakerListForTheInventory"
    actions = [
      "sagemaker:ListModels", "sagemaker:ListEndpointConfigs", "sagemaker:ListDataQualityJobDefinitions",
    ]
    resources = ["*"] # List* calls support no resource-level permission
  }

  statement {
    sid       = "AutoscalingRegisterOnlyWithTheOwnerTag"
    actions   = ["application-autoscaling:RegisterScalableTarget", "application-autoscaling:TagResource"]
    resources = [local.scalable_target_arns]

    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid = "AutoscalingChangeOnlyWhatCarriesTheOwnerTag"
    actions = [
      "application-autoscaling:PutScalingPolicy", "application-autoscaling:DeleteScalingPolicy",
      "application-autoscaling:DeregisterScalableTarget",
    ]
    resources = [local.scalable_target_arns]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "AutoscalingRead"
    actions   = ["application-autoscaling:DescribeScalableTargets", "application-autoscaling:DescribeScalingPolicies"]
    resources = ["*"] # Describe* calls support no resource-level permission
  }

  statement {
    sid       = "AutoscalingServiceLinkedRoleForSageMakerOnly"
    actions   = ["iam:CreateServiceLinkedRole"]
    resources = ["arn:${local.partition}:iam::${local.account_id}:role/aws-service-role/sagemaker.application-autoscaling.amazonaws.com/*"]

    condition {
      test     = "StringEquals"
      variable = "iam:AWSServiceName"
      values   = ["sagemaker.application-autoscaling.amazonaws.com"]
    }
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
    sid       = "RollbackAlarmsCreateOnlyWithTheOwnerTag"
    actions   = ["cloudwatch:PutMetricAlarm", "cloudwatch:TagResource"]
    resources = [local.alarm_arns]

    condition {
      test     = "Null"
      variable = "aws:RequestTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "RollbackAlarmsDeleteOnlyWhatCarriesTheOwnerTag"
    actions   = ["cloudwatch:DeleteAlarms"]
    resources = [local.alarm_arns]

    condition {
      test     = "Null"
      variable = "aws:ResourceTag/${local.owner_tag}"
      values   = ["false"]
    }
  }

  statement {
    sid       = "RollbackAlarmsRead"
    actions   = ["cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"]
    resources = [local.alarm_arns]
  }
}
