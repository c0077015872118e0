"""A workload on the local stack's PostgreSQL (`./run.sh load`): realistic inserts, updates and
deletes on users, products and orders, one transaction per change, at a chosen rate.

Mix per change: 35% new order, 30% order status moves on (pending → paid → shipped → delivered,
shipped orders get shipped_on), 10% order cancelled, 5% order deleted, 8% new user, 7% user
updated (country, name, deactivated), 5% product price or stock changed.

Usage: load.py [--rate N per second] [--changes N | --seconds S] [--seed N]
Connection from PGHOST, PGPORT, PGUSER, PGDATABASE (`eval "$(./run.sh env)"`).
"""

import argparse
import random
import sys
import time

import psycopg2

NEXT_STATUS = {"pending": "paid", "paid": "shipped", "shipped": "delivered"}
COUNTRIES = ["US", "DE", "FR", "GB", "JP", "BR", "IN", "CA", "PL", "ES", None]


def change(cur, rnd):
    """One change; returns its kind."""
    x = rnd.random()
    if x < 0.35:
        cur.execute(
            "INSERT INTO orders (user_id, product_id, quantity, unit_price, status) "
            "SELECT u.id, p.id, %s, p.price, 'pending' FROM "
            "(SELECT id FROM users WHERE is_active ORDER BY random() LIMIT 1) u, "
            "(SELECT id, price FROM products ORDER BY random() LIMIT 1) p",
            (rnd.randint(1, 4),))
        return "order"
    if x < 0.65:
        cur.execute("SELECT id, status FROM orders WHERE status IN ('pending','paid','shipped') "
                    "ORDER BY random() LIMIT 1")
        row = cur.fetchone()
        if row:
            new = NEXT_STATUS[row[1]]
            cur.execute("UPDATE orders SET status = %s, shipped_on = CASE WHEN %s = 'shipped' "
                        "THEN current_date ELSE shipped_on END WHERE id = %s", (new, new, row[0]))
        return "status"
    if x < 0.75:
        cur.execute("UPDATE orders SET status = 'cancelled' WHERE id = "
                    "(SELECT id FROM orders WHERE status IN ('pending','paid') ORDER BY random() LIMIT 1)")
        return "cancel"
    if x < 0.80:
        cur.execute("DELETE FROM orders WHERE id = (SELECT id FROM orders ORDER BY random() LIMIT 1)")
        return "delete"
    if x < 0.88:
        n = rnd.randint(1, 10**9)
        cur.execute("INSERT INTO users (email, full_name, country) VALUES (%s, %s, %s)",
                    (f"user{n}@example.com", rnd.choice(["Ada Li", "Bob Kim", None]), rnd.choice(COUNTRIES)))
        return "user"
    if x < 0.95:
        col, val = rnd.choice([("country", rnd.choice(COUNTRIES)), ("full_name", "Renamed User"),
                               ("is_active", False)])
        cur.execute(f"UPDATE users SET {col} = %s WHERE id = "
                    "(SELECT id FROM users ORDER BY random() LIMIT 1)", (val,))
        return "user_update"
    cur.execute("UPDATE products SET price = round((price * (0.9 + random() * 0.2))::numeric, 2), "
                "stock = greatest(0, stock + %s) WHERE id = (SELECT id FROM products ORDER BY random() LIMIT 1)",
                (rnd.randint(-20, 20),))
    return "product"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rate", type=float, default=20.0, help="changes per second (default 20)")
    ap.add_argument("--changes", type=int, help="stop after this many changes")
    ap.add_argument("--seconds", type=float, help="stop after this long (default: until Ctrl-C)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    conn = psycopg2.connect("")  # libpq reads PGHOST, PGPORT, PGUSER, PGDATABASE
    conn.autocommit = False
    cur = conn.cursor()
    counts = {}
    start = time.monotonic()
    done = 0
    last_report = start
    try:
        while (a.changes is None or done < a.changes) and \
                (a.seconds is None or time.monotonic() - start < a.seconds):
            kind = change(cur, rnd)
            conn.commit()
            counts[kind] = counts.get(kind, 0) + 1
            done += 1
            # Pace: change number `done` is due at start + done / rate.
            delay = start + done / a.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                print(f"load: {done} changes ({done / (last_report - start):.1f}/s)", flush=True)
    except KeyboardInterrupt:
        pass
    took = time.monotonic() - start
    mix = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"load: {done} changes in {took:.1f}s ({done / max(took, 1e-9):.1f}/s): {mix}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
