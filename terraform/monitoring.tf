# Alarms, all to one KMS-encrypted SNS topic (with an optional e-mail subscription):
#
#   ingest lag          MSK's own consumer-lag metric (MaxOffsetLag) of the ingest consumer
#                       group. medallion commits the group's offsets after every bronze commit
#                       for exactly this; it keeps working when ingest is down (unlike anything
#                       ingest reports itself) and needs no agent.
#   DLQ growth          medallion_dlq_records_total from ingest's /metrics, scraped by the
#                       CloudWatch agent sidecar (compute.tf) into namespace metrics_namespace.
#                       medallion logs no line per dead letter (its 5-second "progress" line
#                       carries a running total), so the counter, not a log filter, is the source.
#   ingest not running  Container Insights' RunningTaskCount of the service below 1.
#   job failed          EventBridge: a silver/gold/maintain task stopped with a non-zero exit
#                       code, or could not start (image, secret, capacity) -> SNS.
#   broker disk         the fullest MSK broker data volume above kafka_disk_alarm_percent.

resource "aws_sns_topic" "alarms" {
  name              = "${local.prefix}-alarms"
  display_name      = "medallion ${var.name} alarms"
  kms_master_key_id = aws_kms_key.ops.arn
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministersTheTopic"
        Effect    = "Allow"
        Principal = { AWS = "arn:${local.partition}:iam::${local.account_id}:root" }
        Action = [
          "sns:GetTopicAttributes",
          "sns:SetTopicAttributes",
          "sns:AddPermission",
          "sns:RemovePermission",
          "sns:DeleteTopic",
          "sns:Subscribe",
          "sns:ListSubscriptionsByTopic",
          "sns:Publish",
        ]
        Resource = aws_sns_topic.alarms.arn
      },
      {
        Sid       = "CloudWatchAlarmsOfThisAccountPublish"
        Effect    = "Allow"
        Principal = { Service = "cloudwatch.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:cloudwatch:${local.region}:${local.account_id}:alarm:${local.prefix}-*" }
        }
      },
      {
        Sid       = "FailedJobRulePublishes"
        Effect    = "Allow"
        Principal = { Service = "events.amazonaws.com" }
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = {
          ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.job_failed.arn }
        }
      },
      {
        Sid       = "DenyInsecureTransport"
        Effect    = "Deny"
        Principal = "*"
        Action    = "sns:Publish"
        Resource  = aws_sns_topic.alarms.arn
        Condition = { Bool = { "aws:SecureTransport" = "false" } }
      },
    ]
  })
}

resource "aws_sns_topic_subscription" "email" {
  count = var.alarm_email == null ? 0 : 1

  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

locals {
  alarm_actions = [aws_sns_topic.alarms.arn]
}

# --- (a) ingest lag -----------------------------------------------------------------------

# One number for all topics: a Metrics Insights query over MSK's per-topic lag of the group.
resource "aws_cloudwatch_metric_alarm" "ingest_lag" {
  alarm_name          = "${local.prefix}-ingest-lag"
  alarm_description   = "Consumer group ${var.kafka_consumer_group} is more than ${var.ingest_lag_alarm_records} records behind on some topic of ${aws_msk_cluster.this.cluster_name} for ${var.ingest_lag_alarm_minutes} minutes: ingest is stuck, too slow or down (check the ingest-not-running alarm and /ecs/${local.prefix}/ingest)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.ingest_lag_alarm_records
  evaluation_periods  = var.ingest_lag_alarm_minutes
  datapoints_to_alarm = var.ingest_lag_alarm_minutes
  treat_missing_data  = "notBreaching" # no lag metrics while the group rebalances
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "lag"
    label       = "MaxOffsetLag of ${var.kafka_consumer_group}"
    return_data = true
    period      = 60
    expression  = "SELECT MAX(MaxOffsetLag) FROM SCHEMA(\"AWS/Kafka\", \"Cluster Name\", \"Consumer Group\", Topic) WHERE \"Cluster Name\" = '${aws_msk_cluster.this.cluster_name}' AND \"Consumer Group\" = '${var.kafka_consumer_group}'"
  }
}

# --- (b) DLQ growth -----------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "dlq_growth" {
  alarm_name          = "${local.prefix}-dlq-growth"
  alarm_description   = "More than ${var.dlq_alarm_threshold} records went to the DLQ table in ${var.dlq_alarm_period_minutes} minutes. `medallion dlq list` shows why; fix the route or config, then `medallion dlq replay`."
  namespace           = var.metrics_namespace
  metric_name         = "medallion_dlq_records_total"
  dimensions          = { pipeline = var.name }
  statistic           = "Sum"
  period              = var.dlq_alarm_period_minutes * 60
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.dlq_alarm_threshold
  treat_missing_data  = "notBreaching" # no datapoint = nothing dead-lettered (or no scrape yet)
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# --- (c) ingest not running, failed jobs --------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "ingest_not_running" {
  alarm_name          = "${local.prefix}-ingest-not-running"
  alarm_description   = "The ingest service ${aws_ecs_service.ingest.name} has had no running task for 3 minutes (crash loop, image or secret problem): see its events and /ecs/${local.prefix}/ingest."
  namespace           = "ECS/ContainerInsights"
  metric_name         = "RunningTaskCount"
  dimensions          = { ClusterName = aws_ecs_cluster.this.name, ServiceName = aws_ecs_service.ingest.name }
  statistic           = "Minimum"
  period              = 60
  evaluation_periods  = 3
  comparison_operator = "LessThanThreshold"
  threshold           = 1
  treat_missing_data  = "breaching" # no datapoint means no task reports
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions
}

# A job task stopped with a non-zero exit code (medallion: 1 failure, 2 bad configuration,
# 75 temporary - Airflow's retries handle 75, the mail says which), or never started. The job
# task definitions have one container each, so "some container exited non-zero" is "medallion
# did". The ingest service is left out: its restarts are the alarm above.
resource "aws_cloudwatch_event_rule" "job_failed" {
  name        = "${local.prefix}-job-failed"
  description = "A medallion silver/gold/maintain task of ${aws_ecs_cluster.this.name} failed"

  event_pattern = jsonencode({
    source        = ["aws.ecs"]
    "detail-type" = ["ECS Task State Change"]
    detail = {
      clusterArn = [aws_ecs_cluster.this.arn]
      lastStatus = ["STOPPED"]
      taskDefinitionArn = [
        for job in local.jobs : { prefix = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${local.task_family[job]}:" }
      ]
      "$or" = [
        { containers = { exitCode = [{ "anything-but" = 0 }] } },
        { stopCode = ["TaskFailedToStart"] },
      ]
    }
  })
}

resource "aws_cloudwatch_event_target" "job_failed" {
  rule      = aws_cloudwatch_event_rule.job_failed.name
  target_id = "alarm-topic"
  arn       = aws_sns_topic.alarms.arn

  input_transformer {
    input_paths = {
      group    = "$.detail.group"
      task     = "$.detail.taskArn"
      exitCode = "$.detail.containers[0].exitCode"
      stopCode = "$.detail.stopCode"
      reason   = "$.detail.stoppedReason"
    }
    input_template = "\"medallion job failed: <group> stopped (<stopCode>) with exit code <exitCode>: <reason>. Task <task>. Exit 2 = bad configuration (do not retry), 75 = temporary (retry later), 1 = failure (see the task's log stream).\""
  }
}

# --- Kafka broker disk --------------------------------------------------------------------

resource "aws_cloudwatch_metric_alarm" "kafka_disk" {
  alarm_name          = "${local.prefix}-kafka-disk"
  alarm_description   = "An MSK broker of ${aws_msk_cluster.this.cluster_name} has used more than ${var.kafka_disk_alarm_percent}% of its data volume: raise kafka_broker_volume_gib or lower kafka_log_retention_hours."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.kafka_disk_alarm_percent
  evaluation_periods  = 3
  datapoints_to_alarm = 3
  treat_missing_data  = "missing"
  alarm_actions       = local.alarm_actions
  ok_actions          = local.alarm_actions

  metric_query {
    id          = "disk"
    label       = "KafkaDataLogsDiskUsed, fullest broker"
    return_data = true
    period      = 300
    expression  = "SELECT MAX(KafkaDataLogsDiskUsed) FROM SCHEMA(\"AWS/Kafka\", \"Cluster Name\", \"Broker ID\") WHERE \"Cluster Name\" = '${aws_msk_cluster.this.cluster_name}'"
  }
}
