# medallion on ECS Fargate: the image repository, the cluster, one long-running service for
# `medallion ingest --follow`, and task definitions for the batch jobs (silver, gold, maintain)
# that Airflow starts with EcsRunTaskOperator (README.md, "Airflow / MWAA").

locals {
  jobs = ["silver", "gold", "maintain"]

  task_family = {
    ingest   = "${local.prefix}-ingest"
    silver   = "${local.prefix}-silver"
    gold     = "${local.prefix}-gold"
    maintain = "${local.prefix}-maintain"
  }

  image = "${aws_ecr_repository.medallion.repository_url}:${var.image_tag}"

  # The public CloudWatch agent image, reached through this registry's pull-through cache
  # (ECR fetches it from ECR Public on the first pull; the tasks need no internet access).
  ecr_cache_prefix = "${local.prefix}-pub"
  agent_image = coalesce(
    var.cloudwatch_agent_image,
    "${local.account_id}.dkr.ecr.${local.region}.${local.dns_suffix}/${local.ecr_cache_prefix}/cloudwatch-agent/cloudwatch-agent:${var.cloudwatch_agent_image_tag}",
  )

  metrics_port = 9464

  # medallion's configuration: the TOML in the image, with every deployment-specific key
  # overridden here (MEDALLION__SECTION__KEY=value). The Kafka password is not here: it is an
  # ECS secret of the ingest container only.
  medallion_environment = merge(
    {
      MEDALLION_CONFIG                                        = var.medallion_config_file
      MEDALLION_LOG_JSON                                      = "true"
      MEDALLION_LOG                                           = var.log_level
      TMPDIR                                                  = "/tmp"
      MEDALLION__PIPELINE__NAME                               = var.name
      MEDALLION__CATALOG__KIND                                = "glue"
      MEDALLION__CATALOG__REGION                              = local.region
      MEDALLION__WAREHOUSE__LOCATION                          = local.warehouse_location
      MEDALLION__WAREHOUSE__S3__REGION                        = local.region
      MEDALLION__NAMESPACES__BRONZE                           = local.namespaces.bronze
      MEDALLION__NAMESPACES__SILVER                           = local.namespaces.silver
      MEDALLION__NAMESPACES__GOLD                             = local.namespaces.gold
      MEDALLION__BRONZE__DLQ_TABLE                            = var.dlq_table
      MEDALLION__SOURCE__KIND                                 = "kafka"
      MEDALLION__SOURCE__KAFKA__BOOTSTRAP_SERVERS             = aws_msk_cluster.this.bootstrap_brokers_sasl_scram
      MEDALLION__SOURCE__KAFKA__TOPIC_PATTERN                 = var.kafka_topic_pattern
      MEDALLION__SOURCE__KAFKA__GROUP_ID                      = var.kafka_consumer_group
      "MEDALLION__SOURCE__KAFKA__PROPERTIES__SECURITY.PROTOCOL" = "SASL_SSL"
      "MEDALLION__SOURCE__KAFKA__PROPERTIES__SASL.MECHANISM"    = "SCRAM-SHA-512"
      "MEDALLION__SOURCE__KAFKA__PROPERTIES__SASL.USERNAME"     = var.kafka_username
    },
    var.extra_environment,
  )

  environment_list = [for k in sort(keys(local.medallion_environment)) : { name = k, value = local.medallion_environment[k] }]

  jobs_config = {
    silver   = { cpu = var.silver_cpu, memory = var.silver_memory, role = aws_iam_role.transform.arn, command = ["silver"] }
    gold     = { cpu = var.gold_cpu, memory = var.gold_memory, role = aws_iam_role.transform.arn, command = ["gold"] }
    maintain = { cpu = var.maintain_cpu, memory = var.maintain_memory, role = aws_iam_role.maintain.arn, command = ["maintain"] }
  }
}

# --- image repository ---------------------------------------------------------------------

resource "aws_ecr_repository" "medallion" {
  name                 = "${local.prefix}/medallion"
  image_tag_mutability = "IMMUTABLE" # a tag always means the same image: deploy = new tag
  force_delete         = false

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = aws_kms_key.ops.arn
  }
}

resource "aws_ecr_lifecycle_policy" "medallion" {
  repository = aws_ecr_repository.medallion.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the newest ${var.ecr_keep_images} images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.ecr_keep_images
      }
      action = { type = "expire" }
    }]
  })
}

resource "aws_ecr_pull_through_cache_rule" "ecr_public" {
  ecr_repository_prefix = local.ecr_cache_prefix
  upstream_registry_url = "public.ecr.aws"
}

# --- cluster ------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "exec" {
  name              = "/ecs/${local.prefix}/exec"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.ops.arn
}

resource "aws_ecs_cluster" "this" {
  name = local.prefix

  # Container Insights: RunningTaskCount per service, which the "ingest not running" alarm uses.
  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  # ECS Exec is off on every task; should someone turn it on, sessions are encrypted and logged.
  configuration {
    execute_command_configuration {
      kms_key_id = aws_kms_key.ops.arn
      logging    = "OVERRIDE"

      log_configuration {
        cloud_watch_encryption_enabled = true
        cloud_watch_log_group_name     = aws_cloudwatch_log_group.exec.name
      }
    }
  }
}

# Fargate by default; silver and gold are safe to interrupt and re-run, so Airflow may ask for
# FARGATE_SPOT per task (capacity_provider_strategy in EcsRunTaskOperator).
resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "medallion" {
  for_each = local.task_family

  name              = "/ecs/${local.prefix}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.ops.arn
}

# --- ingest: a service with one task ------------------------------------------------------

# Scraped metrics, as embedded-metric-format events (CloudWatch extracts the metrics).
resource "aws_cloudwatch_log_group" "metrics" {
  name              = "/ecs/${local.prefix}/metrics"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.ops.arn
}

# The sidecar's two configurations, injected by ECS as the environment variables the agent
# reads (CW_CONFIG_CONTENT, PROMETHEUS_CONFIG_CONTENT).
resource "aws_ssm_parameter" "prometheus_config" {
  name        = "/${local.prefix}/cloudwatch-agent/prometheus"
  description = "Prometheus scrape configuration of the ingest metrics sidecar"
  type        = "SecureString"
  key_id      = aws_kms_key.ops.arn
  value = yamlencode({
    global = {
      scrape_interval = "30s"
      scrape_timeout  = "10s"
    }
    scrape_configs = [{
      job_name     = "medallion-ingest"
      metrics_path = "/metrics"
      static_configs = [{
        # awsvpc: the containers of a task share one network namespace.
        targets = ["localhost:${local.metrics_port}"]
        labels  = { pipeline = var.name }
      }]
    }]
  })
}

resource "aws_ssm_parameter" "agent_config" {
  name        = "/${local.prefix}/cloudwatch-agent/config"
  description = "CloudWatch agent configuration of the ingest metrics sidecar"
  type        = "SecureString"
  key_id      = aws_kms_key.ops.arn
  value = jsonencode({
    logs = {
      force_flush_interval = 5
      metrics_collected = {
        prometheus = {
          cluster_name           = aws_ecs_cluster.this.name
          log_group_name         = aws_cloudwatch_log_group.metrics.name
          prometheus_config_path = "env:PROMETHEUS_CONFIG_CONTENT"
          emf_processor = {
            metric_declaration_dedup = true
            metric_namespace         = var.metrics_namespace
            # Counters arrive as the increase since the previous scrape (the agent computes the
            # delta), so Sum over a period is "how many in that period".
            metric_declaration = [
              {
                source_labels    = ["job"]
                label_matcher    = "^medallion-ingest$"
                dimensions       = [["pipeline"], ["pipeline", "topic"]]
                metric_selectors = ["^medallion_dlq_records_total$", "^medallion_records_consumed_total$"]
              },
              {
                source_labels    = ["job"]
                label_matcher    = "^medallion-ingest$"
                dimensions       = [["pipeline"], ["pipeline", "table"]]
                metric_selectors = ["^medallion_records_committed_total$", "^medallion_commits_total$"]
              },
              {
                # Per-partition lag, aggregated per topic (Maximum = the partition furthest behind).
                source_labels    = ["job"]
                label_matcher    = "^medallion-ingest$"
                dimensions       = [["pipeline"], ["pipeline", "topic"]]
                metric_selectors = ["^medallion_partition_lag$"]
              },
              {
                source_labels    = ["job"]
                label_matcher    = "^medallion-ingest$"
                dimensions       = [["pipeline"]]
                metric_selectors = ["^medallion_paused$", "^medallion_batch_rows$", "^process_resident_memory_bytes$"]
              },
            ]
          }
        }
      }
    }
  })
}

resource "aws_ecs_task_definition" "ingest" {
  #checkov:skip=CKV_AWS_336:The medallion container's root filesystem is read-only (scratch space is a /tmp volume); only the CloudWatch agent sidecar writes, because it renders its configuration and keeps state under /opt/aws/amazon-cloudwatch-agent at start-up.
  family                   = local.task_family.ingest
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.ingest_cpu
  memory                   = var.ingest_memory
  execution_role_arn       = aws_iam_role.ingest_execution.arn
  task_role_arn            = aws_iam_role.ingest.arn

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    {
      name       = "medallion"
      image      = local.image
      essential  = true
      entryPoint = [var.medallion_entrypoint]
      command    = ["ingest", "--follow", "--metrics-addr", "0.0.0.0:${local.metrics_port}"]

      environment = local.environment_list
      secrets = [{
        name      = "MEDALLION__SOURCE__KAFKA__SECRET_PROPERTIES__SASL.PASSWORD"
        valueFrom = "${aws_secretsmanager_secret.kafka[var.kafka_username].arn}:password::"
      }]

      readonlyRootFilesystem = true
      mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      linuxParameters        = { initProcessEnabled = true }

      # On SIGTERM (deploy, scale-in) ingest commits the open batch and exits 0; 120 s is the
      # Fargate maximum and well above bronze.max_interval.
      stopTimeout = 120

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.medallion["ingest"].name
          awslogs-region        = local.region
          awslogs-stream-prefix = "ingest"
        }
      }
    },
    {
      # Not essential: if the agent dies, ingest goes on (the lag alarm reads MSK's metrics,
      # not the sidecar's).
      name      = "cloudwatch-agent"
      image     = local.agent_image
      essential = false
      cpu       = 128

      memoryReservation = 128

      secrets = [
        { name = "CW_CONFIG_CONTENT", valueFrom = aws_ssm_parameter.agent_config.arn },
        { name = "PROMETHEUS_CONFIG_CONTENT", valueFrom = aws_ssm_parameter.prometheus_config.arn },
      ]

      readonlyRootFilesystem = false

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.medallion["ingest"].name
          awslogs-region        = local.region
          awslogs-stream-prefix = "cloudwatch-agent"
        }
      }
    },
  ])
}

# desired_count = 1: bronze, not the consumer group, holds the positions, and every worker of
# the group commits into the same bronze tables, so a second worker adds commit conflicts
# (retried, never duplicated) rather than throughput; one 2-vCPU task lands ~130k records/s
# (README, "Performance": its reader and writer threads each use about one core). Deployments start the new task before stopping the old one
# (200 % / 100 %): the group rebalances, the old task commits its open batch inside the revoke
# callback, and the new one resumes from the offsets recorded in bronze - exactly once either way.
resource "aws_ecs_service" "ingest" {
  name             = "${local.prefix}-ingest"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.ingest.arn
  desired_count    = 1
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"

  enable_execute_command             = false
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = aws_subnet.private[*].id
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }

  depends_on = [aws_msk_scram_secret_association.this, aws_iam_role_policy.ingest_execution]
}

# --- batch jobs: task definitions only (Airflow runs them) -----------------------------------

resource "aws_ecs_task_definition" "job" {
  for_each = local.jobs_config

  family                   = local.task_family[each.key]
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.jobs_execution.arn
  task_role_arn            = each.value.role

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # gold spills sorts and aggregates to /tmp.
  dynamic "ephemeral_storage" {
    for_each = each.key == "gold" ? [var.gold_ephemeral_storage_gib] : []
    content {
      size_in_gib = ephemeral_storage.value
    }
  }

  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([{
    name       = "medallion"
    image      = local.image
    essential  = true
    entryPoint = [var.medallion_entrypoint]
    # Airflow overrides the command per run, e.g. ["gold", "--model", "orders_daily"].
    command     = each.value.command
    environment = local.environment_list

    readonlyRootFilesystem = true
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    linuxParameters        = { initProcessEnabled = true }
    stopTimeout            = 120

    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.medallion[each.key].name
        awslogs-region        = local.region
        awslogs-stream-prefix = each.key
      }
    }
  }])
}
