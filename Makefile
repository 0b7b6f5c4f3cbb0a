# sluice developer tasks. `make test` is what CI runs (.ci/run); it installs
# the PostgreSQL 15 server the integration tests start when it is missing.

GO ?= go

.PHONY: build test demo bench lint fuzz clean ensure-postgres ensure-sshd ensure-stripe-mock ensure-duckdb ensure-versitygw

build:
	$(GO) build -o bin/sluice ./cmd/sluice

ensure-postgres:
	bash scripts/ensure-postgres.sh

# The SSH tunnel tests start their own sshd.
ensure-sshd:
	bash scripts/ensure-sshd.sh

# The Stripe tests run against stripe-mock.
ensure-stripe-mock:
	bash scripts/ensure-stripe-mock.sh

# The Iceberg warehouse's S3 tests run against Versity's S3 gateway.
ensure-versitygw:
	bash scripts/ensure-versitygw.sh

# DuckDB (from npm) reads the Parquet warehouse in the tests, as users do.
ensure-duckdb:
	bash scripts/ensure-duckdb.sh

# go test output is left as is: CI reads its closing lines.
test: ensure-postgres ensure-sshd ensure-stripe-mock
	$(GO) mod download
	$(GO) vet ./...
	SLUICE_TEST_DUCKDB="$$(bash scripts/ensure-duckdb.sh | tail -n 1)" SLUICE_TEST_ICEBIRD="$$(bash scripts/ensure-icebird.sh | tail -n 1)" SLUICE_TEST_VERSITYGW="$$(bash scripts/ensure-versitygw.sh | tail -n 1)" $(GO) test -count=1 -timeout 30m ./...

demo: ensure-postgres build
	$(GO) run ./cmd/sluice-demo

# Benchmarks print figures: the package benchmarks (inspect of 5,000 tables,
# COPY decoding, Parquet writes, merges), then the end-to-end table of
# sluice syncs against PostgreSQL's own COPY of the same table, then CDC
# under pgbench (catch-up against pg_recvlogical, freshness, memory), then
# 200 small tables synced by fleets of 1, 2 and 3 runners against one
# runner with fleet = false.
bench: ensure-postgres build
	$(GO) test -run '^$$' -bench . -benchmem ./...
	$(GO) run ./cmd/sluice-bench
	$(GO) run ./cmd/sluice-cdcbench
	$(GO) run ./cmd/sluice-cdcbench -warehouse=postgres
	$(GO) run ./cmd/sluice-cdcbench -warehouse=iceberg -scale=1,50
	$(GO) run ./cmd/sluice-fleetbench

lint:
	@unformatted="$$(gofmt -l .)"; \
	if [ -n "$$unformatted" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...

# Every parser of outside bytes, a minute each (FUZZTIME=10m for longer).
FUZZTIME ?= 60s
fuzz: ensure-postgres ensure-stripe-mock
	$(GO) test -run '^$$' -fuzz='^FuzzLoad$$' -fuzztime=$(FUZZTIME) ./config
	$(GO) test -run '^$$' -fuzz='^FuzzCopyDecode$$' -fuzztime=$(FUZZTIME) ./providers/postgres
	$(GO) test -run '^$$' -fuzz='^FuzzPgoutput$$' -fuzztime=$(FUZZTIME) ./providers/postgres
	$(GO) test -run '^$$' -fuzz='^FuzzTextDecode$$' -fuzztime=$(FUZZTIME) ./internal/pg/codec
	$(GO) test -run '^$$' -fuzz='^FuzzParseEvent$$' -fuzztime=$(FUZZTIME) ./providers/stripe
	$(GO) test -run '^$$' -fuzz='^FuzzVerifySignature$$' -fuzztime=$(FUZZTIME) ./providers/stripe
	$(GO) test -run '^$$' -fuzz='^FuzzBinaryEncoders$$' -fuzztime=$(FUZZTIME) ./internal/pg/codec

clean:
	rm -rf bin .demo
