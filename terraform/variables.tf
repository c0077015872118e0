# Inputs. terraform.tfvars.example shows a typical production set; everything not listed
# there has a default that suits one pipeline in one account.

# --- naming and placement ------------------------------------------------------------------

variable "name" {
  description = "Pipeline name: medallion's pipeline.name, the default Glue database names (<name>_bronze, ...) and, with underscores as hyphens, the prefix of every AWS resource name. Lowercase letters, digits and underscores (Glue and Athena take it unquoted), at most 24 so the default bucket names fit."
  type        = string
  default     = "cdc_prod"

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{1,23}$", var.name))
    error_message = "name must be 2-24 characters: a lowercase letter, then lowercase letters, digits or underscores."
  }
}

variable "region" {
  description = "AWS region for everything (warehouse, Glue, Athena, MSK, ECS)."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must look like eu-west-1."
  }
}

variable "tags" {
  description = "Extra tags for every resource (Project and Pipeline are always set)."
  type        = map(string)
  default     = {}
}

# --- network ------------------------------------------------------------------------------

variable "vpc_cidr" {
  description = "CIDR of the VPC."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0))
    error_message = "vpc_cidr must be a valid IPv4 CIDR block."
  }
}

variable "private_subnet_cidrs" {
  description = "One private subnet per availability zone (at least two; ECS tasks and MSK brokers). Must lie inside vpc_cidr."
  type        = list(string)
  default     = ["10.40.0.0/20", "10.40.16.0/20"]

  validation {
    condition     = length(var.private_subnet_cidrs) >= 2 && alltrue([for c in var.private_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "private_subnet_cidrs needs at least two valid IPv4 CIDR blocks (two availability zones)."
  }
}

variable "availability_zones" {
  description = "Availability zones of the private subnets, one per entry of private_subnet_cidrs. Null: <region>a, <region>b, ... (set it where those do not exist for the account, e.g. us-west-1)."
  type        = list(string)
  default     = null

  validation {
    condition     = var.availability_zones == null || alltrue([for z in coalesce(var.availability_zones, []) : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", z))])
    error_message = "availability_zones must be zone names such as eu-west-1a."
  }
}

variable "enable_nat_gateway" {
  description = "Add public subnets, an internet gateway and one NAT gateway for outbound internet access. Not needed: every AWS API medallion uses is reached through VPC endpoints. Turn on only to reach something outside AWS (e.g. a source database for Debezium elsewhere)."
  type        = bool
  default     = false
}

variable "public_subnet_cidrs" {
  description = "Public subnets for the NAT gateway (used only when enable_nat_gateway is true)."
  type        = list(string)
  default     = ["10.40.240.0/24", "10.40.241.0/24"]

  validation {
    condition     = alltrue([for c in var.public_subnet_cidrs : can(cidrhost(c, 0))])
    error_message = "public_subnet_cidrs must be valid IPv4 CIDR blocks."
  }
}

variable "interface_endpoints" {
  description = "AWS services reached through interface VPC endpoints (S3 always has a free gateway endpoint). The defaults are exactly what the tasks call with no NAT: ecr.api and ecr.dkr (image pulls), logs (awslogs driver, metrics sidecar), secretsmanager and ssm (values ECS injects at start), glue (medallion's catalog) and sts (the AWS SDK's credential chain). Each one is billed per zone-hour: add monitoring, kms, athena or sns only if something in the VPC calls them."
  type        = list(string)
  default     = ["ecr.api", "ecr.dkr", "logs", "secretsmanager", "ssm", "glue", "sts"]

  validation {
    condition     = alltrue([for s in var.interface_endpoints : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "interface_endpoints are service names such as ecr.api or logs."
  }
}

variable "flow_log_traffic_type" {
  description = "Which traffic VPC flow logs record: ACCEPT, REJECT or ALL."
  type        = string
  default     = "ALL"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

# --- storage ------------------------------------------------------------------------------

variable "warehouse_bucket_name" {
  description = "Name of the warehouse bucket (default <name>-warehouse-<account>-<region>, underscores of name as hyphens)."
  type        = string
  default     = null

  validation {
    condition     = var.warehouse_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.warehouse_bucket_name, "xxx")))
    error_message = "warehouse_bucket_name must be a valid S3 bucket name."
  }
}

variable "athena_results_bucket_name" {
  description = "Name of the Athena query results bucket (default <name>-athena-<account>-<region>)."
  type        = string
  default     = null

  validation {
    condition     = var.athena_results_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.athena_results_bucket_name, "xxx")))
    error_message = "athena_results_bucket_name must be a valid S3 bucket name."
  }
}

variable "log_bucket_name" {
  description = "Name of the bucket receiving S3 access logs and VPC flow logs (default <name>-logs-<account>-<region>)."
  type        = string
  default     = null

  validation {
    condition     = var.log_bucket_name == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", coalesce(var.log_bucket_name, "xxx")))
    error_message = "log_bucket_name must be a valid S3 bucket name."
  }
}

variable "warehouse_prefix" {
  description = "Key prefix of the warehouse inside the bucket, without slashes at either end: tables live at s3://BUCKET/PREFIX/<glue database>/<table>."
  type        = string
  default     = "warehouse"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]+(/[a-zA-Z0-9_-]+)*$", var.warehouse_prefix))
    error_message = "warehouse_prefix must be one or more path segments without leading or trailing slashes."
  }
}

variable "warehouse_noncurrent_version_days" {
  description = "Days a deleted or overwritten warehouse object (data file, manifest, old metadata.json removed by snapshot expiry) stays recoverable as a noncurrent version before S3 deletes it."
  type        = number
  default     = 30

  validation {
    condition     = var.warehouse_noncurrent_version_days >= 1
    error_message = "warehouse_noncurrent_version_days must be at least 1."
  }
}

variable "dlq_table" {
  description = "Name of medallion's dead-letter table in the bronze Glue database; must equal medallion's `bronze.dlq_table` (default _dlq). The DLQ lifecycle rule covers s3://BUCKET/PREFIX/<bronze database>/<dlq_table>/."
  type        = string
  default     = "_dlq"

  validation {
    condition     = can(regex("^[a-z_][a-z0-9_]{0,254}$", var.dlq_table))
    error_message = "dlq_table must be lowercase letters, digits and _, starting with a letter or _ (as medallion requires of bronze.dlq_table)."
  }
}

variable "dlq_noncurrent_version_days" {
  description = "Days a dead-letter file deleted by table maintenance (`medallion maintain`: snapshot expiry, then orphan cleanup) stays as a noncurrent version under the _dlq table's prefix before S3 deletes it. Dead letters can hold personal data from malformed source records, so once maintenance deletes them they should not linger for the warehouse's longer undo window (warehouse_noncurrent_version_days). Overlapping noncurrent expirations resolve to the shorter one, so a value above warehouse_noncurrent_version_days has no effect. Current files of the table are never expired by age."
  type        = number
  default     = 7

  validation {
    condition     = var.dlq_noncurrent_version_days >= 1
    error_message = "dlq_noncurrent_version_days must be at least 1."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which incomplete multipart uploads (a writer killed mid-upload) are aborted in every bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1
    error_message = "abort_incomplete_multipart_days must be at least 1."
  }
}

variable "athena_results_expiration_days" {
  description = "Days after which Athena query results expire."
  type        = number
  default     = 30

  validation {
    condition     = var.athena_results_expiration_days >= 1
    error_message = "athena_results_expiration_days must be at least 1."
  }
}

variable "access_log_expiration_days" {
  description = "Days after which S3 access logs and VPC flow logs in the log bucket expire."
  type        = number
  default     = 365

  validation {
    condition     = var.access_log_expiration_days >= 1
    error_message = "access_log_expiration_days must be at least 1."
  }
}

variable "kms_deletion_window_days" {
  description = "Waiting period before a KMS key scheduled for deletion is deleted."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30
    error_message = "kms_deletion_window_days must be between 7 and 30."
  }
}

# --- Glue ---------------------------------------------------------------------------------

variable "bronze_database_name" {
  description = "Glue database of the bronze layer (default <name>_bronze); medallion's namespaces.bronze."
  type        = string
  default     = null

  validation {
    condition     = var.bronze_database_name == null || can(regex("^[a-z0-9_]{1,255}$", coalesce(var.bronze_database_name, "x")))
    error_message = "Glue database names are lowercase letters, digits and underscores."
  }
}

variable "silver_database_name" {
  description = "Glue database of the silver layer (default <name>_silver); medallion's namespaces.silver."
  type        = string
  default     = null

  validation {
    condition     = var.silver_database_name == null || can(regex("^[a-z0-9_]{1,255}$", coalesce(var.silver_database_name, "x")))
    error_message = "Glue database names are lowercase letters, digits and underscores."
  }
}

variable "gold_database_name" {
  description = "Glue database of the gold layer (default <name>_gold); medallion's namespaces.gold."
  type        = string
  default     = null

  validation {
    condition     = var.gold_database_name == null || can(regex("^[a-z0-9_]{1,255}$", coalesce(var.gold_database_name, "x")))
    error_message = "Glue database names are lowercase letters, digits and underscores."
  }
}

# --- Athena and analysts ------------------------------------------------------------------

variable "athena_bytes_scanned_cutoff" {
  description = "Athena cancels a query of the workgroup that scans more than this many bytes (minimum 10 MB)."
  type        = number
  default     = 107374182400 # 100 GiB

  validation {
    condition     = var.athena_bytes_scanned_cutoff >= 10485760
    error_message = "athena_bytes_scanned_cutoff must be at least 10485760 (10 MB)."
  }
}

variable "analyst_principal_arns" {
  description = "IAM principals (users, roles, or an SSO permission set's role) allowed to assume the analyst role. Empty: the account root, i.e. any principal of this account whose own IAM policy allows sts:AssumeRole on it."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for a in var.analyst_principal_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", a))])
    error_message = "analyst_principal_arns must be IAM ARNs."
  }
}

# --- Kafka (MSK) --------------------------------------------------------------------------

variable "kafka_version" {
  description = "Apache Kafka version of the MSK cluster."
  type        = string
  default     = "3.6.0"
}

variable "kafka_broker_instance_type" {
  description = "MSK broker instance type (kafka.t3.small for a trial; kafka.m5.large or larger for production)."
  type        = string
  default     = "kafka.m5.large"

  validation {
    condition     = can(regex("^kafka\\.", var.kafka_broker_instance_type))
    error_message = "kafka_broker_instance_type must be an MSK instance type such as kafka.m5.large."
  }
}

variable "kafka_broker_count" {
  description = "Number of MSK brokers: a multiple of the number of private subnets (one per zone at least)."
  type        = number
  default     = 2

  validation {
    condition     = var.kafka_broker_count >= 2
    error_message = "kafka_broker_count must be at least 2."
  }
}

variable "kafka_broker_volume_gib" {
  description = "EBS storage per broker, GiB."
  type        = number
  default     = 100

  validation {
    condition     = var.kafka_broker_volume_gib >= 1 && var.kafka_broker_volume_gib <= 16384
    error_message = "kafka_broker_volume_gib must be between 1 and 16384."
  }
}

variable "kafka_log_retention_hours" {
  description = "How long the brokers keep records. Bronze holds the history once ingested; this only bounds how long ingest may be down before events are lost."
  type        = number
  default     = 168

  validation {
    condition     = var.kafka_log_retention_hours >= 24
    error_message = "kafka_log_retention_hours must be at least 24."
  }
}

variable "kafka_enhanced_monitoring" {
  description = "MSK monitoring level (DEFAULT already includes the consumer-lag metrics the lag alarm uses)."
  type        = string
  default     = "DEFAULT"

  validation {
    condition     = contains(["DEFAULT", "PER_BROKER", "PER_TOPIC_PER_BROKER", "PER_TOPIC_PER_PARTITION"], var.kafka_enhanced_monitoring)
    error_message = "kafka_enhanced_monitoring must be DEFAULT, PER_BROKER, PER_TOPIC_PER_BROKER or PER_TOPIC_PER_PARTITION."
  }
}

variable "kafka_username" {
  description = "SASL/SCRAM user medallion consumes as."
  type        = string
  default     = "medallion"

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,64}$", var.kafka_username))
    error_message = "kafka_username must be letters, digits, - or _."
  }
}

variable "kafka_extra_scram_users" {
  description = "More SASL/SCRAM users, each with its own AmazonMSK_ secret: by default one for the Debezium producer (MSK Connect or Debezium Server)."
  type        = list(string)
  default     = ["debezium"]

  validation {
    condition     = alltrue([for u in var.kafka_extra_scram_users : can(regex("^[a-zA-Z0-9_-]{1,64}$", u))])
    error_message = "kafka_extra_scram_users must be letters, digits, - or _."
  }
}

variable "kafka_client_cidrs" {
  description = "Extra CIDR blocks allowed to reach the brokers on 9096 (SASL/SCRAM over TLS), e.g. MSK Connect or a Debezium host in another subnet. The ECS tasks are always allowed."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.kafka_client_cidrs : can(cidrhost(c, 0))])
    error_message = "kafka_client_cidrs must be valid IPv4 CIDR blocks."
  }
}

variable "secret_recovery_window_days" {
  description = "Days a deleted Secrets Manager secret can still be restored (0 deletes at once)."
  type        = number
  default     = 7

  validation {
    condition     = var.secret_recovery_window_days == 0 || (var.secret_recovery_window_days >= 7 && var.secret_recovery_window_days <= 30)
    error_message = "secret_recovery_window_days must be 0 or between 7 and 30."
  }
}

# --- medallion on ECS ---------------------------------------------------------------------

variable "image_tag" {
  description = "Tag of the medallion image in the ECR repository this creates (tags are immutable: push a new tag per release)."
  type        = string

  validation {
    condition     = can(regex("^[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid Docker tag other than latest (the repository's tags are immutable)."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the medallion image: X86_64 or ARM64 (Graviton, cheaper per vCPU)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "medallion_entrypoint" {
  description = "The medallion binary inside the image (the container's entryPoint; commands such as [\"silver\"] follow it)."
  type        = string
  default     = "medallion"
}

variable "medallion_config_file" {
  description = "Path of the pipeline TOML inside the image (MEDALLION_CONFIG). Everything that depends on this deployment (catalog, warehouse, namespaces, brokers, credentials) is overridden by MEDALLION__* environment variables, so the file holds only routes, topics and tuning."
  type        = string
  default     = "jobs/aws.example.toml"
}

variable "kafka_topic_pattern" {
  description = "Regex of the Debezium topics ingest subscribes to (source.kafka.topic_pattern)."
  type        = string
  default     = "^dbserver1\\.public\\..*"
}

variable "kafka_consumer_group" {
  description = "Consumer group of ingest (source.kafka.group_id); also the group the lag alarm watches."
  type        = string
  default     = "medallion-bronze"

  validation {
    condition     = can(regex("^[a-zA-Z0-9._-]+$", var.kafka_consumer_group))
    error_message = "kafka_consumer_group must be ASCII letters, digits, '.', '_' or '-' (MSK drops lag metrics of groups with other characters)."
  }
}

variable "extra_environment" {
  description = "More environment variables for every medallion container, e.g. { MEDALLION__BRONZE__MAX_ROWS = \"500000\" }."
  type        = map(string)
  default     = {}
}

variable "log_level" {
  description = "medallion's log filter (MEDALLION_LOG), e.g. info or medallion=debug,info."
  type        = string
  default     = "info"
}

variable "ingest_cpu" {
  description = "Fargate CPU units of the ingest task (1024 = 1 vCPU). Its reader and writer threads each use about one core at full speed."
  type        = number
  default     = 2048

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.ingest_cpu)
    error_message = "ingest_cpu must be a Fargate CPU value: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "ingest_memory" {
  description = "Fargate memory (MiB) of the ingest task; about 3 x bronze.max_bytes plus the metrics sidecar."
  type        = number
  default     = 4096
}

variable "silver_cpu" {
  description = "Fargate CPU units of the silver task."
  type        = number
  default     = 2048

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.silver_cpu)
    error_message = "silver_cpu must be a Fargate CPU value: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "silver_memory" {
  description = "Fargate memory (MiB) of the silver task; peak is about 3-4 x silver.max_step_bytes (1 GiB by default)."
  type        = number
  default     = 8192
}

variable "gold_cpu" {
  description = "Fargate CPU units of the gold task."
  type        = number
  default     = 2048

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.gold_cpu)
    error_message = "gold_cpu must be a Fargate CPU value: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "gold_memory" {
  description = "Fargate memory (MiB) of the gold task (gold.max_memory defaults to half of it)."
  type        = number
  default     = 8192
}

variable "gold_ephemeral_storage_gib" {
  description = "Fargate ephemeral storage (GiB, 21-200) of the gold task, where its sorts and aggregates spill."
  type        = number
  default     = 50

  validation {
    condition     = var.gold_ephemeral_storage_gib >= 21 && var.gold_ephemeral_storage_gib <= 200
    error_message = "gold_ephemeral_storage_gib must be between 21 and 200."
  }
}

variable "maintain_cpu" {
  description = "Fargate CPU units of the maintain task."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.maintain_cpu)
    error_message = "maintain_cpu must be a Fargate CPU value: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "maintain_memory" {
  description = "Fargate memory (MiB) of the maintain task."
  type        = number
  default     = 4096
}

variable "cloudwatch_agent_image" {
  description = "Image of the CloudWatch agent sidecar that turns ingest's Prometheus metrics into CloudWatch metrics. Default (null): the public agent image through this account's ECR pull-through cache, so no NAT is needed."
  type        = string
  default     = null
}

variable "cloudwatch_agent_image_tag" {
  description = "Tag of the public CloudWatch agent image pulled through the cache (used when cloudwatch_agent_image is null)."
  type        = string
  default     = "1.300062.0b1304"
}

variable "ecr_keep_images" {
  description = "How many medallion images the ECR lifecycle policy keeps."
  type        = number
  default     = 30

  validation {
    condition     = var.ecr_keep_images >= 1
    error_message = "ecr_keep_images must be at least 1."
  }
}

variable "airflow_role_name" {
  description = "Name of an existing IAM role (e.g. the MWAA execution role) to attach the policy that lets Airflow run the silver/gold/maintain tasks. Null: the policy is only created (output airflow_policy_arn)."
  type        = string
  default     = null
}

# --- logs, metrics, alarms ----------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (medallion, metrics sidecar, MSK brokers, ECS Exec)."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

variable "metrics_namespace" {
  description = "CloudWatch namespace of the metrics scraped from ingest's /metrics."
  type        = string
  default     = "Medallion"
}

variable "alarm_email" {
  description = "E-mail address subscribed to the alarm topic (AWS sends a confirmation mail). Null: no subscription."
  type        = string
  default     = null

  validation {
    condition     = var.alarm_email == null || can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", coalesce(var.alarm_email, "a@b.c")))
    error_message = "alarm_email must be an e-mail address."
  }
}

variable "ingest_lag_alarm_records" {
  description = "Alarm when the ingest consumer group is more than this many records behind on any topic (MSK MaxOffsetLag) ..."
  type        = number
  default     = 1000000
}

variable "ingest_lag_alarm_minutes" {
  description = "... for this many consecutive minutes. The group's offsets move once per bronze commit, so keep this well above bronze.max_interval."
  type        = number
  default     = 15

  validation {
    condition     = var.ingest_lag_alarm_minutes >= 1
    error_message = "ingest_lag_alarm_minutes must be at least 1."
  }
}

variable "dlq_alarm_threshold" {
  description = "Alarm when more than this many records go to the DLQ within dlq_alarm_period_minutes (0: any dead letter)."
  type        = number
  default     = 0
}

variable "dlq_alarm_period_minutes" {
  description = "Window of the DLQ growth alarm, minutes."
  type        = number
  default     = 5

  validation {
    condition     = var.dlq_alarm_period_minutes >= 1
    error_message = "dlq_alarm_period_minutes must be at least 1."
  }
}

variable "kafka_disk_alarm_percent" {
  description = "Alarm when a broker's data volume is fuller than this percentage."
  type        = number
  default     = 80

  validation {
    condition     = var.kafka_disk_alarm_percent > 0 && var.kafka_disk_alarm_percent < 100
    error_message = "kafka_disk_alarm_percent must be between 0 and 100."
  }
}
