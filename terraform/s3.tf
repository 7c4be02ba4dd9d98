# Two write-once buckets, hardened alike:
# - audit: the digests (and optionally events) AgentOps writes (tools/audit/s3.py);
# - trail: CloudTrail's log files and its own digest files.
# Object Lock in COMPLIANCE mode: no version can be deleted or overwritten by anyone, root included,
# before its retention ends. AgentOps also sets the same mode on each object it writes and
# `agentops audit verify` checks it with head_object.
locals {
  locked_buckets = {
    audit = { name = local.audit_bucket_name, retention_days = var.audit_retention_days }
    trail = { name = local.trail_bucket_name, retention_days = var.trail_retention_days }
  }
}

resource "aws_s3_bucket" "locked" {
  #checkov:skip=CKV_AWS_18:Object-level access is recorded by CloudTrail data events (cloudtrail.tf) for the audit bucket; the trail bucket is the log destination itself, and logging it would need yet another bucket.
  #checkov:skip=CKV_AWS_144:Single-region by design; Object Lock and versioning already prevent deletion. Replicate from a second stack if region loss is in scope.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: verification reads the bucket, and edits raise the CloudWatch alarm in cloudtrail.tf.
  for_each = local.locked_buckets

  bucket              = each.value.name
  object_lock_enabled = true
  # Never force: locked versions cannot be deleted anyway, and an audit bucket must not vanish with a plan.
  force_destroy = false
}

resource "aws_s3_bucket_versioning" "locked" {
  for_each = local.locked_buckets

  bucket = aws_s3_bucket.locked[each.key].id

  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_object_lock_configuration" "locked" {
  for_each = local.locked_buckets

  bucket = aws_s3_bucket.locked[each.key].id

  rule {
    default_retention {
      mode = "COMPLIANCE"
      days = each.value.retention_days
    }
  }

  depends_on = [aws_s3_bucket_versioning.locked]
}

resource "aws_s3_bucket_server_side_encryption_configuration" "locked" {
  for_each = local.locked_buckets

  bucket = aws_s3_bucket.locked[each.key].id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.audit.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_public_access_block" "locked" {
  for_each = local.locked_buckets

  bucket                  = aws_s3_bucket.locked[each.key].id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "locked" {
  for_each = local.locked_buckets

  bucket = aws_s3_bucket.locked[each.key].id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

# No expiration rule, on purpose: expiring a current version adds a delete marker, which
# `agentops audit verify` reports as a deletion. Only abandoned uploads are cleaned.
resource "aws_s3_bucket_lifecycle_configuration" "locked" {
  for_each = local.locked_buckets

  bucket = aws_s3_bucket.locked[each.key].id

  rule {
    id     = "abort-incomplete-uploads"
    status = "Enabled"

    filter {}

    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_policy" "locked" {
  for_each = local.locked_buckets

  bucket = aws_s3_bucket.locked[each.key].id
  policy = each.key == "trail" ? data.aws_iam_policy_document.trail_bucket.json : data.aws_iam_policy_document.audit_bucket.json

  depends_on = [aws_s3_bucket_public_access_block.locked]
}

data "aws_iam_policy_document" "audit_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.locked["audit"].arn, "${aws_s3_bucket.locked["audit"].arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "trail_bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.locked["trail"].arn, "${aws_s3_bucket.locked["trail"].arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }

  statement {
    sid       = "CloudTrailChecksTheBucketAcl"
    actions   = ["s3:GetBucketAcl"]
    resources = [aws_s3_bucket.locked["trail"].arn]

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

  statement {
    sid       = "CloudTrailWritesThisTrailsLogs"
    actions   = ["s3:PutObject"]
    resources = ["${aws_s3_bucket.locked["trail"].arn}/AWSLogs/${local.account_id}/*"]

    principals {
      type        = "Service"
      identifiers = ["cloudtrail.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceArn"
      values   = [local.trail_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "s3:x-amz-acl"
      values   = ["bucket-owner-full-control"]
    }
  }
}
