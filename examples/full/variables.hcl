# Inputs. Secrets come from the environment or a -var-file kept out of git:
#   export SLUICE_VAR_pg_password=...   STRIPE_API_KEY=...   STRIPE_WHSEC=...

variable "pg_password" {
  type        = string
  description = "password of the sluice role on the production database"
  sensitive   = true
}

variable "bastion_key_path" {
  type    = string
  default = "~/.ssh/id_ed25519"
}

variable "environment" {
  type    = string
  default = "prod"
}

variable "hourly_tables" {
  type    = list(string)
  default = ["orders", "order_items"]
}

locals {
  db_host      = "db.${var.environment}.example.com"
  prefix       = "pg_${var.environment}"
  runner_url   = "https://sluice.${var.environment}.example.com"
  snapshot_day = "daily@02:30"
}
