variable "pg_password" {
  type      = string
  sensitive = true
}

source "postgres" "prod" {
  host     = "db.example.com"
  password = var.pg_pasword
  sslmode  = "required"

  table "orders" {
    sync = "incremental"
  }
}
