# Apache Iceberg tables on S3-compatible object storage, with the SQL catalog
# in PostgreSQL so that Spark, Trino, DuckDB or PyIceberg find the tables
# through the same catalog. For a local directory instead, set
# path = "lake" and leave out the s3 block (and the catalog block for a
# SQLite catalog beside the state).

variable "pg_url" {
  type        = string
  description = "libpq URL of the source database"
  sensitive   = true
}

variable "catalog_url" {
  type        = string
  description = "postgres:// URL of the Iceberg SQL catalog's database"
  sensitive   = true
}

variable "s3_access_key_id" {
  type      = string
  sensitive = true
}

variable "s3_secret_access_key" {
  type      = string
  sensitive = true
}

warehouse {
  backend   = "iceberg"
  path      = "s3://lake/sluice"
  namespace = "sluice"
  retention = "24h" # how long replaced snapshots stay readable (time travel)

  catalog {
    type = "sql"
    url  = var.catalog_url
  }

  s3 {
    endpoint          = "http://127.0.0.1:7070" # leave out for AWS S3
    region            = "us-east-1"
    path_style        = true
    access_key_id     = var.s3_access_key_id # leave both keys out for the AWS SDK's chain
    secret_access_key = var.s3_secret_access_key
  }
}

source "postgres" "shop" {
  prefix            = "shop"
  connection_string = var.pg_url
  frequency         = "1h"

  table "customers" {
    sync       = "cdc"
    cdc_output = "both"
  }

  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
  }

  table "events" {
    sync              = "append"
    incremental_field = "id"
  }
}
