package main

// shopSQL creates and fills the sample shop database. Every value derives
// from generate_series, never from random(), so that each run of the demo
// syncs the same rows. orders.updated_at (the incremental cursor of the
// quickstart) is indexed, as it would be in a real database.
const shopSQL = `
CREATE TABLE customers (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name       text NOT NULL,
	email      text NOT NULL UNIQUE,
	country    char(2) NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL
);

CREATE TABLE orders (
	id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	customer_id bigint NOT NULL REFERENCES customers (id),
	status      text NOT NULL,
	total       numeric(12,2) NOT NULL,
	items       jsonb NOT NULL,
	created_at  timestamptz NOT NULL,
	updated_at  timestamptz NOT NULL
);
CREATE INDEX orders_updated_at_idx ON orders (updated_at);

CREATE TABLE events (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	order_id   bigint NOT NULL,
	kind       text NOT NULL,
	payload    jsonb NOT NULL,
	created_at timestamptz NOT NULL
);

INSERT INTO customers (name, email, country, created_at, updated_at)
SELECT 'Customer ' || g,
       'customer' || g || '@example.com',
       (ARRAY['US', 'DE', 'FR', 'GB', 'JP', 'BR', 'IN', 'CA'])[1 + g % 8],
       timestamptz '2024-01-01 00:00:00+00' + g * interval '6 hours',
       timestamptz '2024-01-01 00:00:00+00' + g * interval '6 hours' + (g % 5) * interval '1 day'
FROM generate_series(1, 200) AS g;

INSERT INTO orders (customer_id, status, total, items, created_at, updated_at)
SELECT 1 + (g * 7) % 200,
       (ARRAY['pending', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + g % 5],
       ((g * 7919) % 50000) / 100.0 + 5,
       jsonb_build_array(
           jsonb_build_object('sku', 'SKU-' || (g % 50), 'qty', 1 + g % 3, 'price', ((g * 31) % 9000) / 100.0 + 1),
           jsonb_build_object('sku', 'SKU-' || ((g * 3) % 50), 'qty', 1, 'price', ((g * 17) % 4000) / 100.0 + 1)),
       timestamptz '2024-03-01 00:00:00+00' + g * interval '1 hour',
       timestamptz '2024-03-01 00:00:00+00' + g * interval '1 hour' + (g % 10) * interval '30 minutes'
FROM generate_series(1, 1000) AS g;

INSERT INTO events (order_id, kind, payload, created_at)
SELECT 1 + (g - 1) / 5,
       (ARRAY['created', 'paid', 'packed', 'shipped', 'delivered'])[1 + (g - 1) % 5],
       jsonb_build_object('seq', g, 'source', CASE WHEN g % 3 = 0 THEN 'web' ELSE 'app' END),
       timestamptz '2024-03-01 00:00:00+00' + g * interval '12 minutes'
FROM generate_series(1, 5000) AS g;

ANALYZE;
`
