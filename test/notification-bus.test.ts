/**
 * The notification bus: local delivery on both engines; on PostgreSQL, two
 * buses on one database stand for two processes — delivery between them, no
 * echo of a process's own notifications, and recovery after the listening
 * connection is killed.
 */
import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import pg from "pg";
import type { DatabaseConfig } from "../src/config/config-schema.js";
import { createNotificationBus, type NotificationBus } from "../src/db/notification-bus.js";
import { createLogger } from "../src/logging/logger.js";
import { forEachEngine, freshDatabaseConfig } from "./support/databases.js";

const logger = createLogger("silent");

/** Collects a subscriber's payloads; `next(p)` resolves once `p` has arrived. */
function recorder(bus: NotificationBus) {
  const got: string[] = [];
  const waiting = new Map<string, () => void>();
  bus.subscribe("mxcd_feed", (payload) => {
    got.push(payload);
    waiting.get(payload)?.();
  });
  const next = (payload: string) =>
    got.includes(payload)
      ? Promise.resolve()
      : new Promise<void>((resolve) => waiting.set(payload, resolve));
  return { got, next };
}

forEachEngine("notification bus", (engine) => {
  let config: DatabaseConfig;
  const buses: NotificationBus[] = [];
  const open = async () => {
    const bus = createNotificationBus(config, logger);
    await bus.start();
    buses.push(bus);
    return bus;
  };
  before(async () => {
    config = await freshDatabaseConfig(engine);
  });
  after(async () => {
    await Promise.all(buses.map((bus) => bus.stop()));
  });

  it("delivers to this process's subscribers before publish returns", async () => {
    const bus = await open();
    const seen: string[] = [];
    const unsubscribe = bus.subscribe("mxcd_upload_done", (id) => seen.push(id));
    bus.publish("mxcd_upload_done", "abc");
    assert.deepEqual(seen, ["abc"]);
    unsubscribe();
    bus.publish("mxcd_upload_done", "def");
    assert.deepEqual(seen, ["abc"]);
  });

  if (engine !== "postgres") return;

  it("reaches another process, and never echoes a process's own notification", async () => {
    const [a, b] = [await open(), await open()];
    const atA = recorder(a);
    const atB = recorder(b);
    a.publish("mxcd_feed", "x");
    a.publish("mxcd_feed", "y");
    await atB.next("y");
    assert.deepEqual(atB.got, ["x", "y"]);
    // B's "sync" commits after A's NOTIFYs, so A gets it after any echo of them.
    b.publish("mxcd_feed", "sync");
    await atA.next("sync");
    assert.deepEqual(atA.got, ["x", "y", "sync"]);
  });

  it("listens again after its connection is killed", async () => {
    const [a, b] = [await open(), await open()];
    const atB = recorder(b);
    const admin = new pg.Client({ connectionString: (config as { url: string }).url });
    await admin.connect();
    try {
      const { rowCount } = await admin.query(
        `select pg_terminate_backend(pid) from pg_stat_activity
          where application_name = 'mxcd-notifications' and datname = current_database()`,
      );
      assert.ok((rowCount ?? 0) >= 2);
    } finally {
      await admin.end();
    }
    // Both buses reconnect with back-off; until then notifications are lost,
    // so keep publishing until one gets through.
    let n = 0;
    let arrived = false;
    void atB.next("after-kill").then(() => {
      arrived = true;
    });
    while (!arrived) {
      a.publish("mxcd_feed", n++ === 0 ? "first" : "after-kill");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(atB.got.includes("after-kill"));
  });
});
