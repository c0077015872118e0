# Terraform and provider versions, the provider itself, and the values every other file uses.

terraform {
  required_version = ">= 1.5.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
    # Only for the Kafka SCRAM passwords (kafka.tf).
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }

  # Keep the state remote and encrypted: it holds the generated Kafka passwords. Fill in and
  # uncomment, or pass the same keys with `terraform init -backend-config=...` (README.md).
  # backend "s3" {
  #   bucket         = "my-terraform-state"
  #   key            = "medallion/prod.tfstate"
  #   region         = "eu-west-1"
  #   encrypt        = true
  #   dynamodb_table = "terraform-locks"
  # }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = merge(var.tags, {
      Project  = "medallion"
      Pipeline = var.name
    })
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

# The zones are named, not discovered: a zone AWS adds (or one that is briefly impaired) never
# shifts the subnets. The data source only proves at plan time that each named zone exists.
data "aws_availability_zones" "selected" {
  state = "available"

  filter {
    name   = "zone-name"
    values = local.azs
  }

  lifecycle {
    precondition {
      condition     = length(local.azs) == length(var.private_subnet_cidrs)
      error_message = "availability_zones needs one zone per entry of private_subnet_cidrs."
    }

    postcondition {
      condition     = length(self.names) == length(local.azs)
      error_message = "Not every zone in ${join(", ", local.azs)} is available in ${var.region}; set availability_zones."
    }
  }
}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = var.region
  dns_suffix = data.aws_partition.current.dns_suffix

  # AWS resource names: S3, MSK and others take no underscores.
  prefix = replace(var.name, "_", "-")

  # One private subnet per zone: the given zones, or the region's zones a, b, c, ...
  azs = (var.availability_zones != null ? var.availability_zones
    : [for i in range(length(var.private_subnet_cidrs)) : "${var.region}${substr("abcdef", i, 1)}"])

  # One Glue database (Iceberg namespace) per layer.
  namespaces = {
    bronze = coalesce(var.bronze_database_name, "${var.name}_bronze")
    silver = coalesce(var.silver_database_name, "${var.name}_silver")
    gold   = coalesce(var.gold_database_name, "${var.name}_gold")
  }

  # Bucket names are global: the account and region make the defaults unique.
  warehouse_bucket_name = coalesce(var.warehouse_bucket_name, "${local.prefix}-warehouse-${local.account_id}-${var.region}")
  results_bucket_name   = coalesce(var.athena_results_bucket_name, "${local.prefix}-athena-${local.account_id}-${var.region}")
  log_bucket_name       = coalesce(var.log_bucket_name, "${local.prefix}-logs-${local.account_id}-${var.region}")

  # s3://BUCKET/PREFIX is the warehouse; a table lives at s3://BUCKET/PREFIX/<namespace>/<table>.
  warehouse_location = "s3://${local.warehouse_bucket_name}/${var.warehouse_prefix}"
}
