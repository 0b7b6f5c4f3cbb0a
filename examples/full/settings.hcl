# Where state and data go, and how the runner runs.

state {
  backend = "local"
  path    = ".sluice/state.json"
  # backend = "postgres"
  # url     = env("SLUICE_STATE_URL")
}

warehouse {
  backend = "parquet"
  path    = "warehouse"
}

runner {
  listen      = "127.0.0.1:8080"
  concurrency = 4
}
