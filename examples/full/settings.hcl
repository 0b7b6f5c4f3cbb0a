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
  # fleet     = true   # the default with the postgres state backend: several
  #                    # `sluice run` share the work; needs the postgres or
  #                    # iceberg warehouse (false: one runner, Parquet allowed)
}
