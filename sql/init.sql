-- The source database of the local stack (./run.sh start loads it into PostgreSQL): the shop
-- that `medallion generate` imitates and the gold models in sql/gold read. Debezium captures
-- these tables (./run.sh connectors); `./run.sh load` then changes them at a chosen rate.
--
-- REPLICA IDENTITY FULL: updates and deletes carry the whole old row (Debezium's `before`),
-- which silver's history and the data-quality checks use; without it `before` holds only the key.

DROP TABLE IF EXISTS orders, products, users;
DROP TYPE IF EXISTS product_category, order_status;

CREATE TYPE product_category AS ENUM ('books', 'electronics', 'garden', 'toys', 'grocery', 'apparel');
CREATE TYPE order_status AS ENUM ('pending', 'paid', 'shipped', 'delivered', 'cancelled');

CREATE TABLE users (
  id         serial PRIMARY KEY,
  email      text NOT NULL,
  full_name  text,
  country    text,
  created_at timestamptz NOT NULL DEFAULT now(),
  is_active  boolean NOT NULL DEFAULT true,
  bio        text
);

CREATE TABLE products (
  id          serial PRIMARY KEY,
  sku         text NOT NULL UNIQUE,
  name        text NOT NULL,
  category    product_category NOT NULL,
  price       numeric(10,2) NOT NULL CHECK (price >= 0),
  stock       int NOT NULL,
  description text
);

CREATE TABLE orders (
  id          bigserial PRIMARY KEY,
  user_id     int NOT NULL,
  product_id  int NOT NULL,
  quantity    int NOT NULL,
  unit_price  numeric(10,2) NOT NULL,
  status      order_status NOT NULL DEFAULT 'pending',
  ordered_at  timestamp NOT NULL DEFAULT now(),
  shipped_on  date,
  notes       text
);

ALTER TABLE users REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;

-- Seed data, the same on every run: 200 users, 60 products, 800 orders.
SELECT setseed(0.42);

INSERT INTO users (email, full_name, country, created_at, is_active)
SELECT lower(n) || '.' || i || '@example.com',
       CASE WHEN i % 17 = 0 THEN NULL ELSE n || ' ' || s END,
       CASE WHEN i % 9 = 0 THEN NULL
            ELSE (ARRAY['US','DE','FR','GB','JP','BR','IN','CA','PL','ES'])[1 + (i * 7) % 10] END,
       timestamptz '2025-01-01 00:00:00+00' + (i * interval '37 hours'),
       i % 11 <> 0
FROM generate_series(1, 200) AS i,
     LATERAL (SELECT (ARRAY['Ada','Bob','Chloé','Dmitri','Eve','Hana','Kenji','Łucja','Mateo','Priya'])[1 + i % 10] AS n,
                     (ARRAY['Smith','Müller','Rossi','Nguyen','Kim','Silva','Patel','Dubois'])[1 + (i / 10) % 8] AS s) AS names;

INSERT INTO products (sku, name, category, price, stock, description)
SELECT 'SKU-' || lpad(i::text, 5, '0'),
       initcap(c::text) || ' item ' || i,
       c,
       round((5 + (random() + 0 * i) * 195)::numeric, 2),
       (random() * 500)::int,
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'A fine ' || c::text || ' product' END
FROM generate_series(1, 60) AS i,
     LATERAL (SELECT (enum_range(NULL::product_category))[1 + i % 6] AS c) AS cat;

INSERT INTO orders (user_id, product_id, quantity, unit_price, status, ordered_at, shipped_on)
SELECT u, p, q, pr.price, st,
       timestamp '2025-06-01 00:00:00' + (i * interval '47 minutes'),
       CASE WHEN st IN ('shipped', 'delivered') THEN date '2025-06-02' + i / 30 END
FROM generate_series(1, 800) AS i,
     -- `0 * i` makes the subquery correlated, so random() is drawn per order.
     LATERAL (SELECT 1 + ((random() + 0 * i) * 199)::int AS u, 1 + (random() * 59)::int AS p,
                     1 + (random() * 3)::int AS q,
                     (enum_range(NULL::order_status))[1 + (random() * 4)::int] AS st) AS r
JOIN products pr ON pr.id = r.p;
