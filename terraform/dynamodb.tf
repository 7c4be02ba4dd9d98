# Audit events, mirrored from the local log for queries (tools/audit/dynamodb.py):
# - table key plan_id + seq            -> all events of a plan, in order (one Query)
# - index by_day: day (UTC date) + seq -> events of a day, in order (one Query)
# Items are written with attribute_not_exists and never updated; the orchestrator role below cannot
# update or delete them, CloudTrail records every data event, and an alarm fires on any edit.
resource "aws_dynamodb_table" "audit" {
  name                        = "${var.name_prefix}-audit"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "plan_id"
  range_key                   = "seq"
  deletion_protection_enabled = var.audit_table_deletion_protection

  attribute {
    name = "plan_id"
    type = "S"
  }

  attribute {
    name = "seq"
    type = "N"
  }

  attribute {
    name = "day"
    type = "S"
  }

  global_secondary_index {
    name            = "by_day"
    hash_key        = "day"
    range_key       = "seq"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.audit.arn
  }
}
