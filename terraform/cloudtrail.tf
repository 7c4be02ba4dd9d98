# CloudTrail over the audit trail itself: every API call on the table and on the audit bucket's
# objects (data events) plus all management events, with log file validation (CloudTrail's own
# signed digest files), encrypted with the audit key, into the locked trail bucket. A copy goes to
# CloudWatch Logs so that an edit of the audit record raises an alarm within minutes.
resource "aws_cloudtrail" "audit" {
  #checkov:skip=CKV_AWS_252:Delivery notifications (SNS) would have no consumer; tampering is alarmed on below and log file validation proves delivery.
  name                          = local.trail_name
  s3_bucket_name                = aws_s3_bucket.locked["trail"].id
  kms_key_id                    = aws_kms_key.audit.arn
  enable_log_file_validation    = true
  is_multi_region_trail         = true
  include_global_service_events = true
  cloud_watch_logs_group_arn    = "${aws_cloudwatch_log_group.trail.arn}:*"
  cloud_watch_logs_role_arn     = aws_iam_role.cloudtrail_logs.arn

  advanced_event_selector {
    name = "Management events"

    field_selector {
      field  = "eventCategory"
      equals = ["Management"]
    }
  }

  advanced_event_selector {
    name = "Audit table data events"

    field_selector {
      field  = "eventCategory"
      equals = ["Data"]
    }

    field_selector {
      field  = "resources.type"
      equals = ["AWS::DynamoDB::Table"]
    }

    field_selector {
      field  = "resources.ARN"
      equals = [aws_dynamodb_table.audit.arn]
    }
  }

  advanced_event_selector {
    name = "Audit bucket data events"

    field_selector {
      field  = "eventCategory"
      equals = ["Data"]
    }

    field_selector {
      field  = "resources.type"
      equals = ["AWS::S3::Object"]
    }

    field_selector {
      field       = "resources.ARN"
      starts_with = ["${aws_s3_bucket.locked["audit"].arn}/"]
    }
  }

  depends_on = [aws_s3_bucket_policy.locked]
}

resource "aws_cloudwatch_log_group" "trail" {
  name              = local.trail_log_group
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.audit.arn
}

resource "aws_iam_role" "cloudtrail_logs" {
  name               = "${var.name_prefix}-cloudtrail-logs"
  assume_role_policy = data.aws_iam_policy_document.cloudtrail_assume.json
}

data "aws_iam_policy_document" "cloudtrail_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }
  }
}

resource "aws_iam_role_policy" "cloudtrail_logs" {
  name   = "write-trail-log-group"
  role   = aws_iam_role.cloudtrail_logs.id
  policy = data.aws_iam_policy_document.cloudtrail_logs.json
}

data "aws_iam_policy_document" "cloudtrail_logs" {
  statement {
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.trail.arn}:log-stream:*"]
  }
}

# AgentOps only ever puts audit items and objects; anything else touching them is an incident.
resource "aws_cloudwatch_log_metric_filter" "audit_tampering" {
  name           = "${var.name_prefix}-audit-tampering"
  log_group_name = aws_cloudwatch_log_group.trail.name
  pattern        = "{ (($.eventSource = \"dynamodb.amazonaws.com\") && ($.eventName = \"UpdateItem\" || $.eventName = \"DeleteItem\" || $.eventName = \"BatchWriteItem\" || $.eventName = \"DeleteTable\" || $.eventName = \"UpdateTable\") && ($.requestParameters.tableName = \"${aws_dynamodb_table.audit.name}\")) || (($.eventSource = \"s3.amazonaws.com\") && ($.eventName = \"DeleteObject\" || $.eventName = \"DeleteObjects\" || $.eventName = \"PutObjectRetention\" || $.eventName = \"PutObjectLegalHold\" || $.eventName = \"DeleteBucketPolicy\" || $.eventName = \"PutBucketPolicy\") && ($.requestParameters.bucketName = \"${local.audit_bucket_name}\")) }"

  metric_transformation {
    name      = "AuditTampering"
    namespace = "AgentOps/Audit"
    value     = "1"
  }
}

resource "aws_cloudwatch_metric_alarm" "audit_tampering" {
  alarm_name          = "${var.name_prefix}-audit-tampering"
  alarm_description   = "Someone edited or deleted AgentOps audit items or objects: run `agentops audit verify` and read the trail."
  namespace           = "AgentOps/Audit"
  metric_name         = "AuditTampering"
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = var.alarm_actions
}
