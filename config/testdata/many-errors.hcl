# Every error in this file must be reported in one run of validate.
source "postgres" "prod" {
  host      = "db.example.com"
  pasword   = "oops"
  frequency = "every hour"

  table "orders" {
    sync = "incremntal"
  }
  table "events" {
    sync = "append"
  }
  table "hooks" {
    sync = "webhook"
  }
}

source "postgres" "analytics" {
  prefix = "Analytics"
}
