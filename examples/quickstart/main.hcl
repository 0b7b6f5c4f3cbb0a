# The quickstart: a small shop database synced into a local Parquet warehouse.
# `make demo` runs it against a throwaway PostgreSQL; point pg_url at your own
# database to try it for real.

variable "pg_url" {
  type        = string
  description = "libpq URL of the shop database"
  sensitive   = true
  default     = "postgres://postgres@127.0.0.1:5432/shop?sslmode=disable"
}

state {
  backend = "local"
  path    = ".sluice/state.json"
}

warehouse {
  backend = "parquet"
  path    = "warehouse"
}

source "postgres" "shop" {
  prefix            = "shop"
  connection_string = var.pg_url
  schema            = "public"
  sslmode           = "disable"
  frequency         = "1h"

  table "customers" {
    sync       = "cdc"
    cdc_output = "both"
  }

  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
    primary_key       = ["id"]
  }

  table "events" {
    sync              = "append"
    incremental_field = "id"
  }
}
