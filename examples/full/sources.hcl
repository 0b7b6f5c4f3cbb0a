# Every feature of a PostgreSQL source and a Stripe source.

source "postgres" "prod" {
  prefix    = local.prefix
  host      = local.db_host
  port      = 5432
  database  = "app"
  user      = "sluice"
  password  = var.pg_password
  schema    = "public"
  sslmode   = "verify-full"
  frequency = "6h"
  # sslrootcert = "certs/root.crt"
  # sslcert     = "certs/client.crt"
  # sslkey      = "certs/client.key"
  connect_timeout = "15s"

  ssh_tunnel {
    host        = "bastion.example.com"
    port        = 22
    user        = "tunnel"
    private_key = file(var.bastion_key_path)
    known_hosts = "~/.ssh/known_hosts"
    require_tls = true
  }

  cdc {
    management     = "managed"
    publication    = "sluice_pub_prod"
    slot           = "sluice_prod"
    lag_warning    = "1GiB"
    lag_critical   = "10GiB"
    auto_drop_slot = true
  }

  table "orders" {
    sync              = "incremental"
    incremental_field = "updated_at"
    primary_key       = ["id"]
    frequency         = "1h"
    columns           = ["id", "customer_id", "status", "total", "updated_at"]
    new_columns       = "sync_forward"
  }

  table "order_items" {
    sync              = "incremental"
    incremental_field = "updated_at"
    frequency         = contains(var.hourly_tables, "order_items") ? "1h" : "6h"
    new_columns       = "full_resync"
  }

  table "events" {
    sync       = "cdc"
    cdc_output = "both"
  }

  table "page_views" {
    sync              = "append"
    incremental_field = "id"
    frequency         = "15m"
  }

  table "sales.refunds" {
    sync = "xmin"
  }

  table "countries" {
    sync      = "full_refresh"
    frequency = local.snapshot_day
  }

  table "audit_log" {
    sync    = "full_refresh"
    enabled = false
  }
}

source "stripe" "billing" {
  prefix    = "stripe"
  api_key   = env("STRIPE_API_KEY")
  frequency = "24h"
  # api_base = "http://127.0.0.1:12111"

  table "charges" { sync = "webhook" }
  table "customers" { sync = "incremental" }
  table "invoices" { sync = "full_refresh" }

  webhook {
    url            = local.runner_url
    signing_secret = env("STRIPE_WHSEC", "")
  }
}
